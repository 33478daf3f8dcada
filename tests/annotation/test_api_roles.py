"""Who may do what through the annotation API: one full reading by three users in different roles, and a
role x endpoint table in which every cell (expected status, and content where visibility matters) is a test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern

from annotation.api.urls import urlpatterns as annotation_urlpatterns
from annotation.labels import decode_mask
from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Case,
    CaseStatus,
    LabelSchema,
    MaskFile,
    Membership,
    Project,
)
from annotation.services import annotation_save, assignment_create
from imaging.synthetic import SyntheticStudy
from review.api.urls import urlpatterns as review_urlpatterns
from review.models import CaseEvent
from tests.annotation.conftest import chest_values, mask_for, post_revision
from tests.conftest import stored_files
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

API = "/api/v1"
JSON = "application/json"


def call(client: Client, method: str, path: str, body: Any = None) -> Any:
    if method == "GET":
        return client.get(path)
    return getattr(client, method.lower())(path, data=body if body is not None else {}, content_type=JSON)


def results(response: Any) -> list[dict[str, Any]]:
    """The rows of a list response, paginated or not."""
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data


# --- 1. A full reading by a manager, an annotator and a reviewer ------------------------------------------------


def test_full_reading_through_the_api_by_manager_annotator_and_reviewer(
    bare_project: Project,
    users: dict[str, User],
    ingested_studies: list[SyntheticStudy],
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
) -> None:
    manager, annotator, reviewer = (client_for(users[name]) for name in ("manager", "annotator", "reviewer"))
    project = f"{API}/projects/{bare_project.slug}"

    # The manager makes the schema from the example, the cases, and distributes first readings.
    response = manager.post(f"{project}/schemas/", {"example": "chest_ct_nodules"}, content_type=JSON)
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 1
    assert response.json()["created_by"] == "manager"
    assert [label["key"] for label in response.json()["definition"]["labels"]] == [
        "nodule_present",
        "nodule_box",
        "nodule_mask",
        "nodule_type",
        "lobe",
        "diameter",
        "malignancy",
        "findings",
        "comment",
    ]

    uids = [s.study_uid for s in ingested_studies]
    response = manager.post(f"{project}/cases/", {"study_instance_uids": uids}, content_type=JSON)
    assert response.status_code == 201, response.content
    created = response.json()
    assert sorted(c["study_instance_uid"] for c in created) == sorted(uids)
    assert {c["status"] for c in created} == {CaseStatus.AWAITING_FIRST_READ}
    target_id = next(c["id"] for c in created if c["study_instance_uid"] == uids[1])
    response = manager.patch(f"{API}/cases/{target_id}/", {"priority": 5}, content_type=JSON)
    assert response.status_code == 200, response.content
    assert (response.json()["priority"], response.json()["priority_source"]) == (5.0, "manager")

    response = manager.post(f"{project}/assignments/distribute/", {"role": "first_reader"}, content_type=JSON)
    assert response.status_code == 201, response.content
    assert (
        sorted((a["username"], a["role"], a["how"]) for a in response.json())
        == [("annotator", "first_reader", "automatic")] * 3
    )

    # The annotator presses "next": the highest-priority case comes first.
    response = annotator.post(f"{project}/worklist/next/", {"role": "first_reader"}, content_type=JSON)
    assert response.status_code == 200, response.content
    assert (response.json()["case"]["id"], response.json()["role"]) == (target_id, "first_reader")
    case = Case.objects.get(pk=target_id)

    # Draft from nothing (base 0), a second draft (base 1), then the submission (base 2).
    response = post_revision(annotator, case, {"items": [{"label": "nodule_present", "value": "yes"}]}, base_revision=0)
    assert response.status_code == 201, response.content
    first = response.json()
    assert (first["number"], first["parent"], first["is_submission"], first["author"]) == (1, None, False, "annotator")
    annotation_id = first["annotation"]

    response = post_revision(annotator, case, chest_values(case, lobe=None, malignancy=None), base_revision=1)
    assert response.status_code == 201, response.content
    assert (response.json()["number"], response.json()["parent"], response.json()["is_submission"]) == (2, 1, False)
    assert Case.objects.get(pk=target_id).status == CaseStatus.AWAITING_FIRST_READ  # drafts do not move the case

    brush = mask_for(case)
    submission = chest_values(case, mask=brush, malignancy=4, findings=["emphysema"])
    response = post_revision(annotator, case, submission, base_revision=2, submit=True)
    assert response.status_code == 201, response.content
    third = response.json()
    assert (third["number"], third["parent"], third["is_submission"], third["annotation"]) == (
        3,
        2,
        True,
        annotation_id,
    )
    [mask_item] = [item for item in third["items"] if item["label"] == "nodule_mask"]
    assert mask_item["mask"]["segments_present"] == [1]
    assert "data" not in mask_item["mask"]  # the save answer leaves the array out
    [box] = [item for item in third["items"] if item["label"] == "nodule_box"]
    assert box["sop_instance_uid"] == submission["items"][1]["sop_instance_uid"]
    assert box["frame"] == 1

    # The case moved on, with an event saying who and why; the mask is stored once.
    case.refresh_from_db()
    assert case.status == CaseStatus.AWAITING_CROSS_VERIFICATION
    event = CaseEvent.objects.get(case=case)
    assert (event.from_status, event.to_status, event.actor) == (
        CaseStatus.AWAITING_FIRST_READ,
        CaseStatus.AWAITING_CROSS_VERIFICATION,
        users["annotator"],
    )
    assert "annotator" in event.reason
    mask_file = MaskFile.objects.get()
    assert mask_file.shape == list(brush.shape)
    assert (isolated_storage / mask_file.file).is_file()
    assert Assignment.objects.get(case=case, user=users["annotator"]).status == Assignment.Status.SUBMITTED

    response = annotator.get(f"{API}/annotations/{annotation_id}/")
    assert (response.json()["status"], response.json()["current_revision"]) == ("submitted", 3)
    response = annotator.get(f"{API}/annotations/{annotation_id}/revisions/3/")
    assert response.status_code == 200
    [stored_mask] = [item for item in response.json()["items"] if item["label"] == "nodule_mask"]
    assert np.array_equal(decode_mask(stored_mask["mask"], "mask"), brush)
    response = annotator.get(f"{API}/annotations/{annotation_id}/diff/?from=2&to=3")
    assert response.status_code == 200
    assert {(c["change"], c["identity"]["label"]) for c in response.json()["changes"]} == {
        ("added", "nodule_mask"),
        ("added", "lobe"),
        ("added", "malignancy"),
        ("added", "findings"),
    }
    # Saving after the submission is refused.
    response = post_revision(annotator, case, submission, base_revision=3)
    assert response.status_code == 409
    assert AnnotationRevision.objects.count() == 3

    # The reviewer's "next" is that case, as second reader; the first reading stays hidden from them.
    response = reviewer.post(f"{project}/worklist/next/", {"role": "second_reader"}, content_type=JSON)
    assert response.status_code == 200, response.content
    assert (response.json()["case"]["id"], response.json()["role"]) == (target_id, "second_reader")
    for path in (
        f"{API}/annotations/{annotation_id}/",
        f"{API}/annotations/{annotation_id}/revisions/",
        f"{API}/annotations/{annotation_id}/revisions/3/",
        f"{API}/annotations/{annotation_id}/diff/?from=2&to=3",
    ):
        response = reviewer.get(path)
        assert response.status_code == 404, path
        assert "nodule" not in response.content.decode(), path
    assert reviewer.get(f"{API}/cases/{target_id}/annotations/").json() == []
    response = post_revision(
        reviewer, case, chest_values(case, nodule_present="no", box=False), base_revision=0, role="second_reader"
    )
    assert response.status_code == 201, response.content
    reviewer_annotation = response.json()["annotation"]
    visible = reviewer.get(f"{API}/cases/{target_id}/annotations/").json()
    assert [(a["id"], a["reader"], a["role"]) for a in visible] == [(reviewer_annotation, "reviewer", "second_reader")]
    assert [c["id"] for c in results(reviewer.get(f"{project}/cases/"))] == [target_id]

    # The manager sees both readings and the case's counts.
    both = manager.get(f"{API}/cases/{target_id}/annotations/").json()
    assert sorted((a["reader"], a["role"], a["status"]) for a in both) == [
        ("annotator", "first_reader", "submitted"),
        ("reviewer", "second_reader", "draft"),
    ]
    for annotation in (annotation_id, reviewer_annotation):
        assert manager.get(f"{API}/annotations/{annotation}/").status_code == 200
    revisions = manager.get(f"{API}/annotations/{annotation_id}/revisions/").json()
    assert [(r["number"], r["parent"], r["author"], r["is_submission"]) for r in revisions] == [
        (1, None, "annotator", False),
        (2, 1, "annotator", False),
        (3, 2, "annotator", True),
    ]
    [row] = [c for c in results(manager.get(f"{project}/cases/")) if c["id"] == target_id]
    assert (row["status"], row["readers_assigned"], row["readings_submitted"]) == (
        CaseStatus.AWAITING_CROSS_VERIFICATION,
        2,
        1,
    )


# --- 2. The role x endpoint table -------------------------------------------------------------------------------
#
# The world: project "nodules" with three cases A, B, C. The annotator is first reader of A and has a draft of
# two revisions; the reviewer is second reader of B; C is unassigned; the expert reads nothing (no case is in
# panel reading). "outsider" is signed in but in no project;
# "admin" is a superuser in no project; "anonymous" is not signed in. Paths of one case or annotation are A's.

ROLES = ("annotator", "reviewer", "expert", "manager", "outsider", "anonymous", "admin")
# The reading role each user asks for on worklist endpoints.
READING_ROLE = {"annotator": "first_reader", "reviewer": "second_reader", "expert": "panel_member"}

P = "/projects/{slug}"
# name: (URL name in annotation/api/urls.py, method, path, body)
ENDPOINTS: dict[str, tuple[str, str, str, Any]] = {
    "projects-list": ("project-list", "GET", "/projects/", None),
    "projects-create": ("project-list", "POST", "/projects/", {"slug": "new-project", "name": "New project"}),
    "project-get": ("project-detail", "GET", P + "/", None),
    "project-patch": ("project-detail", "PATCH", P + "/", {"description": "changed"}),
    "project-archive": ("project-archive", "POST", P + "/archive/", {"archived": True}),
    "members-list": ("member-list", "GET", P + "/members/", None),
    "members-add": ("member-list", "POST", P + "/members/", {"username": "outsider", "role": "expert"}),
    "members-patch": ("member-detail", "PATCH", P + "/members/{membership}/", {"role": "reviewer"}),
    "members-delete": ("member-detail", "DELETE", P + "/members/{membership}/", None),
    "schemas-list": ("schema-list", "GET", P + "/schemas/", None),
    "schemas-create": ("schema-list", "POST", P + "/schemas/", {"example": "chest_ct_nodules"}),
    "schema-get": ("schema-detail", "GET", P + "/schemas/1/", None),
    "cases-list": ("case-list", "GET", P + "/cases/", None),
    "cases-create": ("case-list", "POST", P + "/cases/", "new_case"),
    "case-get": ("case-detail", "GET", "/cases/{case}/", None),
    "case-patch": ("case-detail", "PATCH", "/cases/{case}/", {"priority": 9}),
    "case-assignments-get": ("case-assignments", "GET", "/cases/{case}/assignments/", None),
    "case-assignments-post": (
        "case-assignments",
        "POST",
        "/cases/{case}/assignments/",
        {"username": "reviewer", "role": "second_reader"},
    ),
    "distribute": ("distribute", "POST", P + "/assignments/distribute/", {"role": "second_reader"}),
    "reassign": ("reassign", "POST", P + "/assignments/reassign/", "reassign"),
    "worklist": ("worklist", "GET", P + "/worklist/?role={reading_role}", None),
    "worklist-next": ("worklist-next", "POST", P + "/worklist/next/", "reading_role"),
    "case-annotations": ("case-annotations", "GET", "/cases/{case}/annotations/", None),
    "case-revisions-post": ("case-revision-create", "POST", "/cases/{case}/revisions/", "revision"),
    "annotation-get": ("annotation-detail", "GET", "/annotations/{annotation}/", None),
    "revisions-list": ("revision-list", "GET", "/annotations/{annotation}/revisions/", None),
    "revision-get": ("revision-detail", "GET", "/annotations/{annotation}/revisions/1/", None),
    "diff": ("revision-diff", "GET", "/annotations/{annotation}/diff/?from=1&to=2", None),
}

# fmt: off
TABLE: dict[str, tuple[int, int, int, int, int, int, int]] = {
    # endpoint               annotator reviewer expert manager outsider anonymous admin
    "projects-list":         (200,      200,     200,   200,    200,     401,      200),
    "projects-create":       (403,      403,     403,   403,    403,     401,      201),
    "project-get":           (200,      200,     200,   200,    404,     401,      200),
    "project-patch":         (403,      403,     403,   200,    404,     401,      200),
    "project-archive":       (403,      403,     403,   200,    404,     401,      200),
    "members-list":          (200,      200,     200,   200,    404,     401,      200),
    "members-add":           (403,      403,     403,   201,    404,     401,      201),
    "members-patch":         (403,      403,     403,   200,    404,     401,      200),
    "members-delete":        (403,      403,     403,   204,    404,     401,      204),
    "schemas-list":          (200,      200,     200,   200,    404,     401,      200),
    "schemas-create":        (403,      403,     403,   201,    404,     401,      201),
    "schema-get":            (200,      200,     200,   200,    404,     401,      200),
    "cases-list":            (200,      200,     200,   200,    404,     401,      200),
    "cases-create":          (403,      403,     403,   201,    404,     401,      201),
    "case-get":              (200,      404,     404,   200,    404,     401,      200),
    "case-patch":            (403,      404,     404,   200,    404,     401,      200),
    "case-assignments-get":  (200,      404,     404,   200,    404,     401,      200),
    "case-assignments-post": (403,      404,     404,   201,    404,     401,      201),
    "distribute":            (403,      403,     403,   201,    404,     401,      201),
    "reassign":              (403,      403,     403,   200,    404,     401,      200),
    "worklist":              (200,      200,     200,   403,    404,     401,      403),
    "worklist-next":         (200,      200,     204,   403,    404,     401,      403),
    "case-annotations":      (200,      404,     404,   200,    404,     401,      200),
    "case-revisions-post":   (201,      404,     404,   403,    404,     401,      403),
    "annotation-get":        (200,      404,     404,   200,    404,     401,      200),
    "revisions-list":        (200,      404,     404,   200,    404,     401,      200),
    "revision-get":          (200,      404,     404,   200,    404,     401,      200),
    "diff":                  (200,      404,     404,   200,    404,     401,      200),
}
# fmt: on

CELLS = [(endpoint, role, TABLE[endpoint][k]) for endpoint in TABLE for k, role in enumerate(ROLES)]


# The reading endpoint (save a reading, submit it) is served by review, whose service hands a submission over,
# but it is the readers' own: its roles stay in this table.
urlpatterns = [
    *annotation_urlpatterns,
    *(p for p in review_urlpatterns if isinstance(p, URLPattern) and p.name == "case-revision-create"),
]


def test_table_covers_every_endpoint_of_the_annotation_api() -> None:
    assert set(TABLE) == set(ENDPOINTS)
    named = {p.name for p in urlpatterns if isinstance(p, URLPattern)}
    assert {url_name for url_name, *_ in ENDPOINTS.values()} == named
    # Every method each view implements is in the table.
    for pattern in urlpatterns:
        assert isinstance(pattern, URLPattern)
        view_class = pattern.callback.view_class  # type: ignore[attr-defined]
        methods = {m.upper() for m in ("get", "post", "patch", "put", "delete") if hasattr(view_class, m)}
        tested = {method for url_name, method, *_ in ENDPOINTS.values() if url_name == pattern.name}
        assert methods == tested, pattern.name


@pytest.fixture
def world(
    reading_project: Project,
    reading_cases: list[Case],
    users: dict[str, User],
    admin: User,
) -> dict[str, Any]:
    case_a, case_b, case_c = reading_cases
    annotator = users["annotator"]
    assignment_create(case=case_a, user=annotator, role="first_reader", assigned_by=users["manager"])
    assignment_create(case=case_b, user=users["reviewer"], role="second_reader", assigned_by=users["manager"])
    annotation_save(case=case_a, reader=annotator, role="first_reader", base_revision=0, values=chest_values(case_a))
    annotation_save(
        case=case_a, reader=annotator, role="first_reader", base_revision=1, values=chest_values(case_a, diameter=7.5)
    )
    # A second annotator, who takes over the annotator's reading in the reassign cell.
    MembershipFactory(project=reading_project, user=UserFactory(username="annotator_b"), role="annotator")
    # A study linked to the project without a case yet, for the case-creation cell.
    Case.objects.filter(pk=case_c.pk).delete()
    return {
        "slug": reading_project.slug,
        "cases": (case_a, case_b, case_c),
        "case": case_a.pk,
        "annotation": Annotation.objects.get(case=case_a).pk,
        "membership": Membership.objects.get(project=reading_project, user=users["expert"]).pk,
        "new_study": case_c.study.study_instance_uid,
        "revision_values": chest_values(case_a, diameter=8.0),
    }


def snapshot(storage: Path) -> dict[str, Any]:
    project = Project.objects.get(slug="nodules")
    return {
        "projects": sorted(
            Project.objects.values_list("slug", "name", "description", "readers_per_case", "archived_at")
        ),
        "members": sorted(Membership.objects.values_list("project_id", "user_id", "role")),
        "schemas": LabelSchema.objects.filter(project=project).count(),
        "cases": sorted(Case.objects.values_list("pk", "status", "priority")),
        "assignments": sorted(Assignment.objects.values_list("case_id", "user_id", "role", "status")),
        "annotations": Annotation.objects.count(),
        "revisions": AnnotationRevision.objects.count(),
        "files": stored_files(storage),
    }


def _body(spec: Any, world: dict[str, Any], role: str) -> Any:
    if spec == "new_case":
        return {"study_instance_uids": [world["new_study"]]}
    if spec == "reassign":
        return {"cases": [world["case"]], "from_username": "annotator", "to_username": "annotator_b"}
    if spec == "reading_role":
        return {"role": READING_ROLE.get(role, "first_reader")}
    if spec == "revision":
        return {"role": "first_reader", "base_revision": 2, "values": world["revision_values"]}
    return spec


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def check_content(endpoint: str, role: str, response: Any, world: dict[str, Any]) -> None:
    """What a successful answer must (and must not) contain for this user."""
    case_a, case_b, _ = world["cases"]
    data: Any = response.json() if response.status_code != 204 else None
    if endpoint == "projects-list":
        rows = results(response)
        if role == "outsider":
            assert rows == []
        else:
            assert [p["slug"] for p in rows] == ["nodules"]
            assert rows[0]["my_roles"] == ([] if role == "admin" else [role])
    elif endpoint == "projects-create":
        assert (data["slug"], data["name"]) == ("new-project", "New project")
        assert data["my_roles"] == ["manager"]  # the creator is the project's first manager
        assert Membership.objects.filter(project__slug="new-project", user__username=role, role="manager").exists()
    elif endpoint in ("project-get", "project-patch"):
        assert data["slug"] == "nodules"
        assert data["my_roles"] == ([] if role == "admin" else [role])
        if endpoint == "project-patch":
            assert data["description"] == "changed"
            assert Project.objects.get(slug="nodules").description == "changed"
    elif endpoint == "project-archive":
        assert data["archived"] is True
        assert Project.objects.get(slug="nodules").archived_at is not None
    elif endpoint == "members-patch":
        assert (data["username"], data["role"]) == ("expert", "reviewer")
        assert Membership.objects.get(pk=world["membership"]).role == "reviewer"
    elif endpoint == "members-list":
        assert sorted((m["username"], m["role"]) for m in data) == [
            ("annotator", "annotator"),
            ("annotator_b", "annotator"),
            ("expert", "expert"),
            ("manager", "manager"),
            ("reviewer", "reviewer"),
        ]
    elif endpoint == "members-add":
        assert (data["username"], data["role"]) == ("outsider", "expert")
        assert Membership.objects.filter(user__username="outsider", role="expert").exists()
    elif endpoint == "members-delete":
        assert not Membership.objects.filter(pk=world["membership"]).exists()
    elif endpoint == "schemas-list":
        assert [s["version"] for s in data] == [1]
    elif endpoint == "schemas-create":
        assert data["version"] == 2
    elif endpoint == "schema-get":
        assert data["version"] == 1
        assert data["definition"]["labels"][0]["key"] == "nodule_present"
    elif endpoint == "cases-list":
        expected = {"annotator": [case_a.pk], "reviewer": [case_b.pk], "expert": []}.get(
            role, sorted([case_a.pk, case_b.pk])
        )
        assert sorted(_ids(results(response))) == expected
    elif endpoint == "cases-create":
        assert [c["study_instance_uid"] for c in data] == [world["new_study"]]
        assert Case.objects.filter(study__study_instance_uid=world["new_study"]).count() == 1
    elif endpoint == "case-get":
        assert data["id"] == case_a.pk
    elif endpoint == "case-patch":
        assert data["priority"] == 9
        assert Case.objects.get(pk=case_a.pk).priority == 9
    elif endpoint == "case-assignments-get":
        assert [(a["username"], a["role"]) for a in data] == [("annotator", "first_reader")]
    elif endpoint == "case-assignments-post":
        assert (data["username"], data["role"], data["how"], data["case"]["id"]) == (
            "reviewer",
            "second_reader",
            "manual",
            case_a.pk,
        )
    elif endpoint == "distribute":
        # The reviewer already reads B (and C has no case): only A gets them; nobody reads a case twice.
        assert sorted((a["username"], a["case"]["id"]) for a in data) == [("reviewer", case_a.pk)]
    elif endpoint == "reassign":
        assert [(a["username"], a["case"]["id"]) for a in data] == [("annotator_b", case_a.pk)]
        assert Assignment.objects.get(case=case_a, role="first_reader").user.username == "annotator_b"
    elif endpoint == "worklist":
        expected_cases = {"annotator": [case_a.pk], "reviewer": [case_b.pk], "expert": []}[role]
        assert [a["case"]["id"] for a in data["assignments"]] == expected_cases
        assert data["counts"]["active"] == len(expected_cases)
    elif endpoint == "worklist-next":
        if role == "expert":  # no case is in panel reading: nothing to claim
            assert response.content == b""
            assert not Assignment.objects.filter(user__username="expert").exists()
        else:
            assert data["case"]["id"] == (case_a if role == "annotator" else case_b).pk
    elif endpoint == "case-annotations":
        assert [(a["id"], a["reader"]) for a in data] == [(world["annotation"], "annotator")]
    elif endpoint == "case-revisions-post":
        assert (data["number"], data["parent"], data["annotation"]) == (3, 2, world["annotation"])
    elif endpoint == "annotation-get":
        assert (data["id"], data["reader"], data["current_revision"]) == (world["annotation"], "annotator", 2)
    elif endpoint == "revisions-list":
        assert [r["number"] for r in data] == [1, 2]
    elif endpoint == "revision-get":
        assert data["number"] == 1
    elif endpoint == "diff":
        assert [(c["change"], c["identity"]["label"]) for c in data["changes"]] == [("changed", "diameter")]
    else:  # pragma: no cover - every endpoint has a check
        raise AssertionError(endpoint)


@pytest.mark.parametrize(("endpoint", "role", "expected"), CELLS, ids=[f"{e}-{r}" for e, r, _ in CELLS])
def test_role_endpoint_cell(
    endpoint: str,
    role: str,
    expected: int,
    world: dict[str, Any],
    users: dict[str, User],
    admin: User,
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
) -> None:
    user = {"anonymous": None, "admin": admin}.get(role, users.get(role))
    client = client_for(user)
    _, method, template, body = ENDPOINTS[endpoint]
    path = API + template.format(**world, reading_role=READING_ROLE.get(role, "first_reader"))
    before = snapshot(isolated_storage)

    response = call(client, method, path, _body(body, world, role))

    assert response.status_code == expected, response.content
    if expected >= 400:
        detail = response.json()["detail"]
        assert detail
        if role == "anonymous":
            # 401 with a challenge: the browser app sends the user to sign in, a script learns to authenticate.
            assert detail == "Authentication credentials were not provided."
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "nodule_" not in response.content.decode()  # no label content leaks in an error
        assert snapshot(isolated_storage) == before  # a refused request changes nothing
    else:
        check_content(endpoint, role, response, world)


def test_manager_of_another_project_sees_nothing_of_this_one(
    world: dict[str, Any], client_for: Callable[[User | None], Client], isolated_storage: Path
) -> None:
    other = ProjectFactory(slug="other", name="Other project")
    boss = UserFactory(username="other-manager")
    MembershipFactory(project=other, user=boss, role="manager")
    client = client_for(boss)  # type: ignore[arg-type]
    before = snapshot(isolated_storage)

    assert [p["slug"] for p in results(client.get(f"{API}/projects/"))] == ["other"]
    for name, (_, method, template, body) in ENDPOINTS.items():
        if name.startswith("projects-"):
            continue
        path = API + template.format(**world, reading_role="first_reader")
        response = call(client, method, path, _body(body, world, "manager"))
        assert response.status_code == 404, (name, response.status_code, response.content)
    assert snapshot(isolated_storage) == before
