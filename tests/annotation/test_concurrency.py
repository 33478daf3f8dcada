"""Concurrency against the real PostgreSQL: many threads saving one annotation, and many readers pressing
"next" at once. Real threads with their own database connections, released together by a barrier; each
thread closes its connection at the end so that the test database can be dropped."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token

from annotation import services
from annotation.labels import encode_mask, load_example_schema
from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Case,
    MaskFile,
    Membership,
    Project,
    ReadingRole,
    Role,
)
from imaging.models import Study
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import generate_ct_study
from tests.conftest import dataset_bytes
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, place_studies

FIRST = ReadingRole.FIRST_READER
SECOND = ReadingRole.SECOND_READER
SHAPE = (8, 32, 32)  # slices, rows, columns of the synthetic series


# --- Helpers -------------------------------------------------------------------------------------------------


def new_project(readers_per_case: int = 2) -> Project:
    project = cast(Project, ProjectFactory(slug="race", name="Race", readers_per_case=readers_per_case))
    services.schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    return project


def member(project: Project, username: str, *roles: str) -> User:
    user = cast(User, UserFactory(username=username))
    for role in roles:
        MembershipFactory(project=project, user=user, role=role)
    return user


def bare_cases(project: Project, count: int) -> list[Case]:
    uids = [f"1.2.826.0.1.3680043.8.498.88.{i}" for i in range(count)]
    Study.objects.bulk_create([Study(store=project.image_store, study_instance_uid=uid) for uid in uids])
    return services.cases_create(project=project, study_uids=uids)


def imaged_case(project: Project) -> tuple[Case, str]:
    study = generate_ct_study(seed=61, rows=SHAPE[1], columns=SHAPE[2], slices=SHAPE[0], n_lesions=0)
    report = ingest_files([IncomingFile(f"{k}.dcm", dataset_bytes(ds)) for k, ds in enumerate(study.datasets())])
    assert {f.status for f in report.files} == {STORED}
    place_studies(project, [study.study_uid])
    [case] = services.cases_create(project=project, study_uids=[study.study_uid])
    return case, study.series_uid


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) in as many threads, released at once; their results (or exceptions) in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(index: int) -> None:
        try:
            results[index] = work_with_barrier(index)
        except BaseException as exc:  # handed to the test, which decides
            results[index] = exc
        finally:
            connection.close()

    def work_with_barrier(index: int) -> Any:
        ready = work(index)  # set-up of this thread (its own queries), then the racing call
        barrier.wait(timeout=60)
        return ready()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results


# --- Saving one annotation from many threads ----------------------------------------------------------------


@dataclass
class Saved:
    base: int
    number: int


@dataclass
class Stale:
    base: int
    current: int
    status_code: int


def concurrent_saves(
    case: Case, reader: User, bases: list[int], values_for: Callable[[int], dict[str, Any]]
) -> list[Saved | Stale]:
    def work(index: int) -> Callable[[], Saved | Stale]:
        my_case = Case.objects.select_related("project", "study", "series").get(pk=case.pk)
        my_reader = User.objects.get(pk=reader.pk)
        values = values_for(index)
        geometry = services.study_geometry(my_case)

        def save() -> Saved | Stale:
            try:
                revision = services.annotation_save(
                    case=my_case,
                    reader=my_reader,
                    role=FIRST,
                    base_revision=bases[index],
                    values=values,
                    geometry=geometry,
                )
            except services.StaleRevisionError as exc:
                return Stale(bases[index], exc.extra["current_revision"], exc.status_code)
            return Saved(bases[index], revision.number)

        return save

    results = run_together(len(bases), work)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors
    return cast(list[Saved | Stale], results)


def check_chain(annotation: Annotation) -> list[AnnotationRevision]:
    """Revision numbers 1..N without gaps, each one's parent the one before: a chain, no fork."""
    revisions = list(AnnotationRevision.objects.filter(annotation=annotation).order_by("number"))
    assert [r.number for r in revisions] == list(range(1, len(revisions) + 1))
    assert revisions[0].parent_id is None
    for previous, revision in zip(revisions, revisions[1:], strict=False):
        assert revision.parent_id == previous.pk, f"revision {revision.number} forks"
    assert Counter(r.parent_id for r in revisions).most_common(1)[0][1] == 1  # no two children of one parent
    annotation.refresh_from_db()
    assert annotation.revision_count == len(revisions)
    assert annotation.current_revision_id == revisions[-1].pk
    return revisions


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_saves_on_one_annotation() -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    case, series_uid = imaged_case(project)
    services.assignment_create(case=case, user=reader, role=FIRST, assigned_by=None)
    successes = 0
    for base in (0, 1):  # revisions 1 and 2, one after the other
        values = {"items": [{"label": "nodule_present", "value": "no"}]}
        services.annotation_save(case=case, reader=reader, role=FIRST, base_revision=base, values=values)
        successes += 1
    n = 2

    def mask_values(round_: int) -> Callable[[int], dict[str, Any]]:
        """Every thread of every round its own mask (another voxel run), so stored masks can be counted."""

        def values(index: int) -> dict[str, Any]:
            mask = np.zeros(SHAPE, dtype=np.uint8)
            start = (round_ * 100 + index) * 7
            mask.reshape(-1)[start : start + 5] = 1
            item = {"label": "nodule_mask", "series_instance_uid": series_uid, "mask": encode_mask(mask)}
            return {"items": [{"label": "nodule_present", "value": "yes"}, item]}

        return values

    # Round 1: 50 threads, all from the current revision n.
    results = concurrent_saves(case, reader, [n] * 50, mask_values(1))
    saved = [r for r in results if isinstance(r, Saved)]
    stale = [r for r in results if isinstance(r, Stale)]
    assert [s.number for s in saved] == [n + 1]
    assert len(stale) == 49
    assert {(s.current, s.status_code) for s in stale} == {(n + 1, 409)}
    successes += len(saved)
    # A refused save stores nothing: only the winner's mask is there.
    assert MaskFile.objects.count() == 1
    winner = AnnotationRevision.objects.get(number=n + 1)
    assert list(winner.masks.all()) == list(MaskFile.objects.all())

    # Round 2, mixed: one third from the current revision n+1, the others from stale n and n-1.
    bases = [n + 1, n, n - 1] * 20
    results = concurrent_saves(case, reader, bases, mask_values(2))
    saved = [r for r in results if isinstance(r, Saved)]
    assert [(s.base, s.number) for s in saved] == [(n + 1, n + 2)]
    stale = [r for r in results if isinstance(r, Stale)]
    assert len(stale) == len(bases) - 1
    # A stale base may be refused before or after the winner's save: either way it is told the truth.
    assert {s.current for s in stale} <= {n + 1, n + 2}
    assert all(s.current == n + 2 for s in stale if s.base == n + 1)
    successes += len(saved)
    assert MaskFile.objects.count() == 2

    # Round 3: every base from 1 to the current one, six threads each.
    bases = [b for b in range(1, n + 3) for _ in range(6)]
    results = concurrent_saves(case, reader, bases, mask_values(3))
    saved = [r for r in results if isinstance(r, Saved)]
    assert [(s.base, s.number) for s in saved] == [(n + 2, n + 3)]
    assert MaskFile.objects.count() == 3
    successes += len(saved)

    annotation = Annotation.objects.get()
    revisions = check_chain(annotation)
    assert len(revisions) == successes == n + 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_saves_create_one_annotation() -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    [case] = bare_cases(project, 1)
    services.assignment_create(case=case, user=reader, role=FIRST, assigned_by=None)

    results = concurrent_saves(
        case, reader, [0] * 20, lambda i: {"items": [{"label": "comment", "value": f"thread {i}"}]}
    )

    assert [r.number for r in results if isinstance(r, Saved)] == [1]
    assert {(r.current, r.status_code) for r in results if isinstance(r, Stale)} == {(1, 409)}
    [annotation] = Annotation.objects.all()
    assert len(check_chain(annotation)) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_saves_through_the_api_answer_409_with_the_current_revision(live_server: Any) -> None:
    project = new_project()
    reader = member(project, "reader", Role.ANNOTATOR)
    [case] = bare_cases(project, 1)
    services.assignment_create(case=case, user=reader, role=FIRST, assigned_by=None)
    token = Token.objects.create(user=reader).key
    url = f"{str(live_server.url).replace('://localhost:', '://127.0.0.1:')}/api/v1/cases/{case.pk}/revisions/"
    services.annotation_save(
        case=case, reader=reader, role=FIRST, base_revision=0, values={"items": [{"label": "comment", "value": "a"}]}
    )

    def work(index: int) -> Callable[[], requests.Response]:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        body = {"role": FIRST, "base_revision": 1, "values": {"items": [{"label": "comment", "value": f"t{index}"}]}}
        return lambda: session.post(url, json=body, timeout=60)

    responses = run_together(16, work)
    assert not [r for r in responses if isinstance(r, BaseException)]
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 409: 15}, [r.text for r in responses]
    [created] = [r.json() for r in responses if r.status_code == 201]
    assert created["number"] == 2 and created["parent"] == 1
    for response in responses:
        if response.status_code == 409:
            body = response.json()
            assert body["code"] == "stale_revision"
            assert body["current_revision"] == 2
            assert body["annotation"] == created["annotation"]
    assert len(check_chain(Annotation.objects.get())) == 2


# --- Many readers pressing "next" at once -------------------------------------------------------------------


def claim_together(project: Project, users: list[User], role: str) -> dict[int, Assignment | None]:
    def work(index: int) -> Callable[[], Assignment | None]:
        my_project = Project.objects.get(pk=project.pk)
        user = User.objects.get(pk=users[index].pk)
        return lambda: services.assignment_claim_next(project=my_project, user=user, role=role)

    results = run_together(len(users), work)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors
    return {user.pk: result for user, result in zip(users, results, strict=True)}


def check_slots(project: Project) -> list[Assignment]:
    assignments = list(Assignment.objects.filter(case__project=project))
    slots = [(a.case_id, a.role, a.slot) for a in assignments]
    assert len(set(slots)) == len(slots), "two readers share a slot"
    readers = [(a.case_id, a.user_id) for a in assignments]
    assert len(set(readers)) == len(readers), "someone reads a case twice"
    return assignments


@pytest.mark.django_db(transaction=True)
def test_twenty_readers_claim_ten_cases_at_once() -> None:
    project = new_project(readers_per_case=3)  # one first reader and two second readers per case
    cases = bare_cases(project, 10)
    annotators = [member(project, f"annotator{i:02d}", Role.ANNOTATOR) for i in range(20)]

    claimed = claim_together(project, annotators, FIRST)

    assignments = check_slots(project)
    assert len(assignments) == min(20, len(cases))
    got = {user_pk: a for user_pk, a in claimed.items() if a is not None}
    assert len(got) == 10, "exactly one reader per case, the others were told nothing is left"
    per_reader = Counter(a.user_id for a in assignments)
    assert max(per_reader.values()) == 1
    assert {a.case_id for a in got.values()} == {c.pk for c in cases}
    assert all(a.role == FIRST and a.slot == 0 and a.how == "claimed" for a in assignments)
    assert {user_pk: a.pk for user_pk, a in got.items()} == {a.user_id: a.pk for a in assignments}

    # Second readers: five of the first readers are also reviewers, fifteen reviewers are not annotators.
    first_readers = {a.user_id: a.case_id for a in assignments}
    dual = [u for u in annotators if u.pk in first_readers][:5]
    for user in dual:
        Membership.objects.create(project=project, user=user, role=Role.REVIEWER)
    reviewers = dual + [member(project, f"reviewer{i:02d}", Role.REVIEWER) for i in range(15)]

    second = claim_together(project, reviewers, SECOND)

    assignments = check_slots(project)
    by_case: dict[int, list[Assignment]] = defaultdict(list)
    for assignment in assignments:
        by_case[assignment.case_id].append(assignment)
    for on_case in by_case.values():
        seconds = [a for a in on_case if a.role == SECOND]
        assert len(seconds) <= 2
        assert sorted(a.slot for a in seconds) == list(range(len(seconds)))
        [first] = [a for a in on_case if a.role == FIRST]
        assert first.user_id not in {a.user_id for a in seconds}, "an author reviews their own reading"
    for user in dual:
        mine = second[user.pk]
        assert mine is None or mine.case_id != first_readers[user.pk]
    per_reviewer = Counter(a.user_id for a in assignments if a.role == SECOND)
    assert max(per_reviewer.values()) == 1
    # Nobody was turned away while a slot they could take was free.
    open_cases = {case_id for case_id, on in by_case.items() if sum(a.role == SECOND for a in on) < 2}
    for user in reviewers:
        if second[user.pk] is None:
            reading = {a.case_id for a in assignments if a.user_id == user.pk}
            assert open_cases <= reading, f"{user.username} got nothing while {open_cases - reading} were open"
    assert 18 <= len(per_reviewer) <= 20


@pytest.mark.django_db(transaction=True)
def test_one_reader_pressing_next_many_times_at_once_gets_one_case() -> None:
    project = new_project()
    bare_cases(project, 10)
    reader = member(project, "reader", Role.ANNOTATOR)

    def work(index: int) -> Callable[[], Assignment | None]:
        my_project = Project.objects.get(pk=project.pk)
        user = User.objects.get(pk=reader.pk)
        return lambda: services.assignment_claim_next(project=my_project, user=user, role=FIRST)

    results = run_together(8, work)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assignments = check_slots(project)
    assert len(assignments) == 1, f"a double click hoarded {len(assignments)} cases"
    assert {r.pk for r in results} == {assignments[0].pk}
