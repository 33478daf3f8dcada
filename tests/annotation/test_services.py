"""Annotation services against the real PostgreSQL: schema versions, cases, assignments (automatic,
manual, claimed), worklist order, machine revisions and mask storage.

Small synthetic studies are ingested through the real ingest service where a test needs geometry (masks,
quality checks); otherwise studies are bare index rows linked to the project.
"""

from __future__ import annotations

import base64
import gzip
import io
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from annotation import services
from annotation.labels import decode_mask, encode_mask, encode_mask_rle, load_example_schema
from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Case,
    LabelSchema,
    MaskFile,
    Project,
    ReadingRole,
    Role,
)
from annotation.selectors import worklist
from config.errors import ApplicationError, ConflictError, PermissionDeniedError
from imaging.models import Series, Study
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import generate_ct_study
from tests.conftest import dataset_bytes, stored_files
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, place_studies

FIRST = ReadingRole.FIRST_READER
SECOND = ReadingRole.SECOND_READER
COMPLETE = {"items": [{"label": "nodule_present", "value": "no"}]}


# --- Helpers (plain functions: tests/annotation/conftest.py belongs to another module's fixtures) ------------


def new_project(slug: str = "svc", readers_per_case: int = 2, schema: bool = True) -> Project:
    project = cast(Project, ProjectFactory(slug=slug, name=slug.title(), readers_per_case=readers_per_case))
    if schema:
        services.schema_create_version(
            project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None
        )
    return project


def member(project: Project, username: str, *roles: str) -> User:
    user = cast(User, UserFactory(username=username))
    for role in roles:
        MembershipFactory(project=project, user=user, role=role)
    return user


def bare_studies(project: Project, count: int, prefix: str = "1.2.826.0.1.3680043.8.498.77") -> list[str]:
    """Index rows only (no files): enough for cases that need no geometry."""
    uids = [f"{prefix}.{i}" for i in range(count)]
    Study.objects.bulk_create([Study(store=project.image_store, study_instance_uid=uid) for uid in uids])
    return uids


def ingest_study(seed: int, *, slices: int = 8, size: int = 32, drop: int | None = None) -> tuple[str, str]:
    """Ingest a small synthetic CT series (optionally without slice ``drop``); its study and series UIDs."""
    study = generate_ct_study(seed=seed, rows=size, columns=size, slices=slices, n_lesions=0)
    datasets = list(study.datasets())
    if drop is not None:
        del datasets[drop]
    report = ingest_files([IncomingFile(f"{seed}-{k}.dcm", dataset_bytes(ds)) for k, ds in enumerate(datasets)])
    assert [f.status for f in report.files] == [STORED] * len(datasets), [f.reason for f in report.files]
    return study.study_uid, study.series_uid


def imaged_case(project: Project, seed: int) -> tuple[Case, str]:
    study_uid, series_uid = ingest_study(seed)
    place_studies(project, [study_uid])
    [case] = services.cases_create(project=project, study_uids=[study_uid])
    return case, series_uid


def named_gzip(raw: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="mask.raw", mode="wb", fileobj=buffer, compresslevel=9, mtime=1) as handle:
        handle.write(raw)
    return buffer.getvalue()


def mask_item(series_uid: str, mask: np.ndarray) -> dict[str, Any]:
    return {"label": "nodule_mask", "series_instance_uid": series_uid, "mask": encode_mask(mask)}


def sphere_mask(shape: tuple[int, int, int], centre: tuple[int, int, int], radius: float, value: int = 1) -> Any:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    inside = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2
    mask = np.zeros(shape, dtype=np.uint8)
    mask[inside] = value
    return mask


# --- Label schema versions ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_schema_versions_are_consecutive_and_old_ones_stay_unchanged() -> None:
    project = new_project(schema=False)
    chest = load_example_schema("chest_ct_nodules")
    first = services.schema_create_version(project=project, definition=chest, created_by=None)
    smaller = {**chest, "labels": [label for label in chest["labels"] if label["key"] != "comment"]}
    second = services.schema_create_version(project=project, definition=smaller, created_by=None)

    assert (first.version, second.version) == (1, 2)
    first.refresh_from_db()
    assert first.definition == chest
    assert "comment" in {label["key"] for label in first.definition["labels"]}
    assert "comment" not in {label["key"] for label in second.definition["labels"]}
    assert services.current_schema(project).pk == second.pk
    # Another project numbers its own versions from 1.
    other = new_project(slug="other")
    assert LabelSchema.objects.get(project=other).version == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_schema_versions_are_consecutive() -> None:
    project = new_project(schema=False)
    chest = load_example_schema("chest_ct_nodules")
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    versions: list[int] = []
    errors: list[BaseException] = []

    def save(index: int) -> None:
        try:
            definition = {**chest, "description": {"en": f"edit {index}"}}
            barrier.wait()
            versions.append(
                services.schema_create_version(project=project, definition=definition, created_by=None).version
            )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(versions) == list(range(1, threads_n + 1))
    stored = LabelSchema.objects.filter(project=project).order_by("version")
    assert [s.version for s in stored] == list(range(1, threads_n + 1))
    assert len({s.definition["description"]["en"] for s in stored}) == threads_n


@pytest.mark.django_db
def test_revision_keeps_its_schema_version_after_a_new_version() -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    [uid] = bare_studies(project, 1)
    [case] = services.cases_create(project=project, study_uids=[uid])
    services.assignment_create(case=case, user=reader, role=FIRST, assigned_by=None)

    first = services.annotation_save(case=case, reader=reader, role=FIRST, base_revision=0, values=COMPLETE)
    assert first.schema.version == 1
    chest = load_example_schema("chest_ct_nodules")
    services.schema_create_version(project=project, definition={**chest, "description": {"en": "v2"}}, created_by=None)
    second = services.annotation_save(case=case, reader=reader, role=FIRST, base_revision=1, values=COMPLETE)

    first = AnnotationRevision.objects.select_related("schema").get(pk=first.pk)
    assert first.schema.version == 1
    assert second.schema.version == 2
    assert [r.schema.version for r in AnnotationRevision.objects.filter(annotation=second.annotation)] == [1, 2]


# --- Cases --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cases_create_is_idempotent() -> None:
    project = new_project()
    uids = bare_studies(project, 3)
    first = services.cases_create(project=project, study_uids=uids, priority=2.0)
    again = services.cases_create(project=project, study_uids=list(reversed(uids)), priority=9.0)

    assert [c.pk for c in again] == [c.pk for c in reversed(first)]
    assert Case.objects.filter(project=project).count() == 3
    # The existing cases keep their priority: a repeated call is not an update.
    assert set(Case.objects.values_list("priority", flat=True)) == {2.0}


@pytest.mark.django_db
def test_cases_create_per_series_is_idempotent() -> None:
    project = new_project()
    study_uid, series_uid = ingest_study(31)
    place_studies(project, [study_uid])
    [first] = services.cases_create(project=project, study_uids=[study_uid], series_uids=[series_uid])
    [again] = services.cases_create(project=project, study_uids=[study_uid], series_uids=[series_uid])

    assert first.pk == again.pk
    assert first.series is not None and first.series.series_instance_uid == series_uid
    assert Case.objects.count() == 1


@pytest.mark.django_db
def test_cases_create_refuses_a_study_not_in_the_project() -> None:
    project = new_project()
    other = new_project(slug="other")
    mine = bare_studies(project, 1, prefix="1.2.826.0.1.3680043.8.498.71")
    theirs = bare_studies(other, 1, prefix="1.2.826.0.1.3680043.8.498.72")

    with pytest.raises(ApplicationError) as info:
        services.cases_create(project=project, study_uids=[*mine, *theirs])
    assert info.value.code == "unknown_study"
    assert theirs[0] in info.value.message
    with pytest.raises(ApplicationError) as info:
        services.cases_create(project=project, study_uids=["1.2.3.4.5.does.not.exist"])
    assert info.value.code == "unknown_study"
    assert Case.objects.count() == 0


@pytest.mark.django_db
def test_cases_create_refuses_a_series_that_failed_quality_checks() -> None:
    project = new_project()
    study_uid, series_uid = ingest_study(32, drop=4)  # a slice missing in the middle of the series
    series = Series.objects.get(series_instance_uid=series_uid)
    assert series.quality == Series.Quality.FAILED
    place_studies(project, [study_uid])

    with pytest.raises(ApplicationError) as info:
        services.cases_create(project=project, study_uids=[study_uid])
    assert info.value.code == "series_flagged"
    assert series_uid in info.value.message and "Missing slices" in info.value.message
    with pytest.raises(ApplicationError) as info:
        services.cases_create(project=project, study_uids=[study_uid], series_uids=[series_uid])
    assert info.value.code == "series_flagged"
    assert Case.objects.count() == 0


# --- Assignments --------------------------------------------------------------------------------------------


def assignments_by_case(project: Project) -> dict[int, list[Assignment]]:
    result: dict[int, list[Assignment]] = {}
    for assignment in Assignment.objects.filter(case__project=project):
        result.setdefault(assignment.case_id, []).append(assignment)
    return result


@pytest.mark.django_db
@pytest.mark.parametrize(("readers", "cases"), [(4, 10), (3, 3), (5, 2), (7, 23)])
def test_distribute_first_readers_is_balanced(readers: int, cases: int) -> None:
    project = new_project()
    users = [member(project, f"reader{i}", Role.ANNOTATOR) for i in range(readers)]
    services.cases_create(project=project, study_uids=bare_studies(project, cases))

    created = services.assignments_distribute(project=project, role=FIRST, assigned_by=None)

    assert len(created) == cases
    load = Counter(a.user_id for a in created)
    counts = [load.get(u.pk, 0) for u in users]
    assert max(counts) - min(counts) <= 1, counts
    for on_case in assignments_by_case(project).values():
        assert len(on_case) == 1 and on_case[0].role == FIRST and on_case[0].how == "automatic"
    # Every slot is filled: a second run has nothing left to do.
    assert services.assignments_distribute(project=project, role=FIRST, assigned_by=None) == []


@pytest.mark.django_db
@pytest.mark.parametrize("readers_per_case", [2, 3, 4])
def test_distribute_second_readers_respects_readers_per_case(readers_per_case: int) -> None:
    project = new_project(readers_per_case=readers_per_case)
    # Every reader may read first and second: the distribution alone keeps an author off their own review.
    users = [member(project, f"reader{i}", Role.ANNOTATOR, Role.REVIEWER) for i in range(5)]
    services.cases_create(project=project, study_uids=bare_studies(project, 12))

    services.assignments_distribute(project=project, role=FIRST, assigned_by=None)
    second = services.assignments_distribute(project=project, role=SECOND, assigned_by=None)

    assert len(second) == 12 * (readers_per_case - 1)
    for on_case in assignments_by_case(project).values():
        roles = Counter(a.role for a in on_case)
        assert roles == {FIRST: 1, SECOND: readers_per_case - 1}
        assert len({a.user_id for a in on_case}) == len(on_case), "someone reads a case twice"
        assert sorted(a.slot for a in on_case if a.role == SECOND) == list(range(readers_per_case - 1))
    # Balanced over everything a reader has to do in the project.
    load = Counter(Assignment.objects.filter(case__project=project).values_list("user_id", flat=True))
    counts = [load[u.pk] for u in users]
    assert max(counts) - min(counts) <= 1, counts
    assert services.assignments_distribute(project=project, role=SECOND, assigned_by=None) == []


@pytest.mark.django_db
def test_distribute_leaves_a_slot_open_rather_than_reuse_a_reader() -> None:
    project = new_project(readers_per_case=4)  # three second readers per case
    first_reader = member(project, "first", Role.ANNOTATOR, Role.REVIEWER)
    others = [member(project, f"reviewer{i}", Role.REVIEWER) for i in range(2)]
    [case] = services.cases_create(project=project, study_uids=bare_studies(project, 1))
    services.assignment_create(case=case, user=first_reader, role=FIRST, assigned_by=None)

    created = services.assignments_distribute(project=project, role=SECOND, assigned_by=None)

    assert {a.user_id for a in created} == {u.pk for u in others}
    assert case.assignments.filter(role=SECOND).count() == 2


def post_assignment(client: Client, case: Case, username: str, role: str) -> Any:
    return client.post(
        f"/api/v1/cases/{case.pk}/assignments/", {"username": username, "role": role}, content_type="application/json"
    )


@pytest.mark.django_db
def test_manual_assignment_conflicts_and_roles() -> None:
    project = new_project(readers_per_case=2)  # one second-reader slot
    boss = member(project, "boss", Role.MANAGER)
    author = member(project, "author", Role.ANNOTATOR, Role.REVIEWER)
    member(project, "reviewer", Role.REVIEWER)
    late = member(project, "late", Role.REVIEWER)
    annotator_only = member(project, "annotator", Role.ANNOTATOR)
    [case] = services.cases_create(project=project, study_uids=bare_studies(project, 1))
    client = Client()
    client.force_login(boss)

    response = post_assignment(client, case, "author", FIRST)
    assert response.status_code == 201, response.json()
    assert response.json()["how"] == "manual" and response.json()["slot"] == 0

    # The same person twice on one case (here: the author as their own reviewer).
    response = post_assignment(client, case, "author", SECOND)
    assert response.status_code == 409, response.json()
    assert "one person reads a case once" in response.json()["detail"]
    with pytest.raises(ConflictError):
        services.assignment_create(case=case, user=author, role=SECOND, assigned_by=boss)

    # The only second-reader slot goes to the reviewer; after that none is free.
    assert post_assignment(client, case, "reviewer", SECOND).status_code == 201
    response = post_assignment(client, case, "late", SECOND)
    assert response.status_code == 409, response.json()
    assert "no free second_reader slot" in response.json()["detail"]
    with pytest.raises(ConflictError):
        services.assignment_create(case=case, user=late, role=SECOND, assigned_by=boss)

    # A project role that does not allow the reading role.
    response = post_assignment(client, case, "annotator", SECOND)
    assert response.status_code == 403, response.json()
    with pytest.raises(PermissionDeniedError):
        services.assignment_create(case=case, user=annotator_only, role=SECOND, assigned_by=boss)
    response = post_assignment(client, case, "boss", FIRST)  # managers do not read unless also annotators
    assert response.status_code == 403, response.json()

    assert sorted(case.assignments.values_list("user__username", "role")) == [
        ("author", FIRST),
        ("reviewer", SECOND),
    ]


@pytest.mark.django_db
def test_claim_order_follows_priority_then_age() -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    cases = services.cases_create(project=project, study_uids=bare_studies(project, 6))
    # (priority, age in hours): higher priority first, then the older case first.
    plan = [(1.0, 5), (5.0, 1), (5.0, 3), (0.0, 9), (3.0, 2), (5.0, 2)]
    now = timezone.now()
    for case, (priority, hours) in zip(cases, plan, strict=True):
        services.case_set_priority(case=case, priority=priority)
        Case.objects.filter(pk=case.pk).update(created_at=now - timedelta(hours=hours))
    expected = [c.pk for c, _ in sorted(zip(cases, plan, strict=True), key=lambda cp: (-cp[1][0], -cp[1][1]))]

    claimed = []
    while (assignment := services.assignment_claim_next(project=project, user=reader, role=FIRST)) is not None:
        claimed.append(assignment.case_id)
        services.annotation_save(
            case=assignment.case, reader=reader, role=FIRST, base_revision=0, values=COMPLETE, submit=True
        )
        assert len(claimed) <= len(cases), "claimed a finished case again"

    assert claimed == expected
    assert [a.case_id for a in worklist(reader, project, FIRST)] == expected


@pytest.mark.django_db
def test_worklist_and_next_follow_case_priority_then_case_age() -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    cases = services.cases_create(project=project, study_uids=bare_studies(project, 4))
    now = timezone.now()
    for case, priority, hours in zip(cases, [0.5, 2.0, 2.0, 1.0], [1, 1, 4, 9], strict=True):
        Case.objects.filter(pk=case.pk).update(priority=priority, created_at=now - timedelta(hours=hours))
    # Assigned by hand in another order than the cases': the age that counts is the case's.
    for index in (0, 1, 3, 2):
        services.assignment_create(case=cases[index], user=reader, role=FIRST, assigned_by=None)
    expected = [cases[2].pk, cases[1].pk, cases[3].pk, cases[0].pk]

    assert [a.case_id for a in worklist(reader, project, FIRST)] == expected
    # "next" hands out the first unfinished case of that list, and the following one once it is submitted.
    for case_id in expected:
        assignment = services.assignment_claim_next(project=project, user=reader, role=FIRST)
        assert assignment is not None and assignment.case_id == case_id
        services.annotation_save(
            case=assignment.case, reader=reader, role=FIRST, base_revision=0, values=COMPLETE, submit=True
        )
    assert services.assignment_claim_next(project=project, user=reader, role=FIRST) is None


@pytest.mark.django_db
def test_next_twice_returns_the_same_unfinished_assignment() -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    services.cases_create(project=project, study_uids=bare_studies(project, 3))

    first = services.assignment_claim_next(project=project, user=reader, role=FIRST)
    again = services.assignment_claim_next(project=project, user=reader, role=FIRST)
    assert first is not None and again is not None
    assert again.pk == first.pk
    assert Assignment.objects.count() == 1

    client = Client()
    client.force_login(reader)
    url = f"/api/v1/projects/{project.slug}/worklist/next/"
    bodies = [client.post(url, {"role": FIRST}, content_type="application/json").json() for _ in range(2)]
    assert [b["id"] for b in bodies] == [first.pk, first.pk]
    assert Assignment.objects.count() == 1

    # Once submitted, "next" moves on to another case.
    services.annotation_save(case=first.case, reader=reader, role=FIRST, base_revision=0, values=COMPLETE, submit=True)
    following = services.assignment_claim_next(project=project, user=reader, role=FIRST)
    assert following is not None and following.case_id != first.case_id


@pytest.mark.django_db
def test_next_needs_the_project_role_and_says_when_nothing_is_left() -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    reviewer = member(project, "reviewer", Role.REVIEWER)
    with pytest.raises(PermissionDeniedError):
        services.assignment_claim_next(project=project, user=reviewer, role=FIRST)
    assert services.assignment_claim_next(project=project, user=reader, role=FIRST) is None

    client = Client()
    client.force_login(reader)
    response = client.post(
        f"/api/v1/projects/{project.slug}/worklist/next/", {"role": FIRST}, content_type="application/json"
    )
    assert response.status_code == 204


# --- Machine revisions and masks ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_annotation_save_machine_creates_an_ai_revision() -> None:
    project = new_project()
    case, series_uid = imaged_case(project, 33)
    mask = sphere_mask((8, 32, 32), (4, 16, 16), 3)
    values = {"items": [{"label": "nodule_present", "value": "yes"}, mask_item(series_uid, mask)]}

    first = services.annotation_save_machine(case=case, model_version="nodule-net 1.2.0", values=values)
    second = services.annotation_save_machine(case=case, model_version="nodule-net 1.3.0", values=COMPLETE)

    assert (first.number, second.number) == (1, 2)
    assert first.origin == second.origin == Annotation.Origin.AI
    assert (first.model_version, second.model_version) == ("nodule-net 1.2.0", "nodule-net 1.3.0")
    assert first.author is None and first.parent is None
    assert second.parent_id == first.pk
    annotation = Annotation.objects.get()
    assert annotation.reader is None and annotation.role == "ai"
    assert annotation.current_revision_id == second.pk and annotation.revision_count == 2
    [stored] = first.masks.all()
    assert np.array_equal(services.load_mask(stored), mask)
    assert first.items[1]["mask"]["sha256"] == stored.sha256
    assert first.items[1]["mask"]["segments_present"] == [1]
    # Human readings stay separate from the AI proposal.
    assert not Annotation.objects.filter(case=case, reader__isnull=False).exists()


@pytest.mark.django_db
def test_identical_mask_is_stored_once_and_round_trips(isolated_storage: Path) -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    case, series_uid = imaged_case(project, 34)
    services.assignment_create(case=case, user=reader, role=FIRST, assigned_by=None)
    rng = np.random.default_rng(5)
    mask = (rng.random((8, 32, 32)) < 0.3).astype(np.uint8)  # noisy: compression is not the point
    before = {p for p in stored_files(isolated_storage) if "masks" in p.parts}
    assert before == set()

    def save(base: int, answer: str, array: np.ndarray) -> AnnotationRevision:
        values = {"items": [{"label": "nodule_present", "value": answer}, mask_item(series_uid, array)]}
        return services.annotation_save(case=case, reader=reader, role=FIRST, base_revision=base, values=values)

    one = save(0, "yes", mask)
    two = save(1, "no", mask.copy())  # an equal array, not the same object

    assert MaskFile.objects.count() == 1
    stored = MaskFile.objects.get()
    assert list(one.masks.all()) == list(two.masks.all()) == [stored]
    assert [p for p in stored_files(isolated_storage) if "masks" in p.parts] == [isolated_storage / stored.file]
    assert stored.shape == [8, 32, 32] and stored.dtype == "uint8"
    assert 0 < stored.stored_bytes == (isolated_storage / stored.file).stat().st_size
    loaded = services.load_mask(stored)
    assert loaded.dtype == mask.dtype and loaded.shape == mask.shape
    assert loaded.tobytes() == mask.tobytes()

    # One voxel changed is another mask; the first one stays as it was.
    changed = mask.copy()
    changed[0, 0, 0] ^= 1
    three = save(2, "no", changed)
    assert MaskFile.objects.count() == 2
    [new] = three.masks.all()
    assert new.pk != stored.pk and services.load_mask(new).tobytes() == changed.tobytes()
    assert services.load_mask(stored).tobytes() == mask.tobytes()


@pytest.mark.django_db
def test_mask_is_stored_as_the_client_sent_it_never_recompressed(isolated_storage: Path) -> None:
    """Issue 19: a valid payload's bytes are the stored file (gzip stream or runs), read back to the same voxels."""
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    case, series_uid = imaged_case(project, 36)
    services.assignment_create(case=case, user=reader, role=FIRST, assigned_by=None)
    mask = sphere_mask((8, 32, 32), (3, 10, 20), 4, value=1)
    # Level 9 with a file name in the gzip header: the server's own level-1 output would differ.
    gzip_payload: dict[str, Any] = {
        "encoding": "gzip-base64",
        "shape": [8, 32, 32],
        "dtype": "uint8",
        "data": base64.b64encode(named_gzip(mask.tobytes())).decode(),
    }
    other = sphere_mask((8, 32, 32), (5, 20, 10), 3, value=1)
    rle_payload = encode_mask_rle(other)

    for base, payload, expected, suffix in ((0, gzip_payload, mask, ".raw.gz"), (1, rle_payload, other, ".rle")):
        item = {"label": "nodule_mask", "series_instance_uid": series_uid, "mask": payload}
        revision = services.annotation_save(
            case=case, reader=reader, role=FIRST, base_revision=base, values={"items": [item]}
        )
        [stored] = revision.masks.all()
        assert stored.file.endswith(suffix)
        assert (isolated_storage / stored.file).read_bytes() == base64.b64decode(payload["data"])
        assert services.load_mask(stored).tobytes() == expected.tobytes()
        [saved_item] = revision.items
        assert saved_item["mask"]["sha256"] == stored.sha256
        assert saved_item["mask"]["segments_present"] == sorted({int(v) for v in np.unique(expected)} - {0})
        # The API hands the stored bytes back in their own encoding; they decode to the same voxels.
        [output] = services.revision_items_for_output(revision, include_masks=True)
        assert output["mask"]["encoding"] == payload["encoding"] and output["mask"]["data"] == payload["data"]
        assert decode_mask(output["mask"], "mask").tobytes() == expected.tobytes()


@pytest.mark.django_db
def test_uint16_mask_round_trips_with_its_dtype() -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    case, series_uid = imaged_case(project, 35)
    services.assignment_create(case=case, user=reader, role=FIRST, assigned_by=None)
    mask = sphere_mask((8, 32, 32), (3, 10, 20), 4).astype(np.uint16)

    revision = services.annotation_save(
        case=case, reader=reader, role=FIRST, base_revision=0, values={"items": [mask_item(series_uid, mask)]}
    )

    [stored] = revision.masks.all()
    loaded = services.load_mask(stored)
    assert stored.dtype == "uint16" and loaded.dtype == np.uint16
    assert loaded.tobytes() == mask.tobytes()
    # The same voxels as uint8 are different content, stored separately.
    services.annotation_save(
        case=case,
        reader=reader,
        role=FIRST,
        base_revision=1,
        values={"items": [mask_item(series_uid, mask.astype(np.uint8))]},
    )
    assert MaskFile.objects.count() == 2
