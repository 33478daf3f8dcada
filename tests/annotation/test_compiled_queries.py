"""The reading loop's queries compiled once (config.compiled, issue 19) answer what the ORM answers, and the
revision endpoint's hand-made answer is RevisionOutput's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from rest_framework.utils.encoders import JSONEncoder

from annotation.api.serializers import RevisionOutput
from annotation.labels import load_example_schema
from annotation.models import AnnotationRevision, Assignment, Case, Project, Role
from annotation.selectors import (
    _geometry_frames_query,
    _geometry_series_query,
    _reading_assignment_query,
    reading_assignment,
    study_geometry,
)
from annotation.services import (
    _ACTIVE_ASSIGNMENT,
    _LOCKED_ANNOTATION,
    _OPEN_CASES,
    _active_assignment_query,
    _open_cases_query,
    assignment_create,
    open_statuses,
    schema_create_version,
    slots_for_role,
)
from config.compiled import CompiledQuery
from tests.annotation.conftest import chest_values, post_revision


def fields_of(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


@pytest.fixture
def assigned(reading_cases: list[Case], users: dict[str, User]) -> tuple[Case, User]:
    case = reading_cases[0]
    assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=users["manager"])
    return case, users["annotator"]


def test_reading_assignment_is_the_orm_answer_with_case_project_study_series_and_latest_schema(
    assigned: tuple[Case, User], users: dict[str, User]
) -> None:
    case, reader = assigned
    compiled = reading_assignment(reader, case.pk, "first_reader")
    orm = list(_reading_assignment_query(case_id=case.pk, user_id=reader.pk, role="first_reader"))
    assert compiled is not None and len(orm) == 1
    assert fields_of(compiled) == fields_of(orm[0])
    for related in ("case",):
        assert fields_of(getattr(compiled, related)) == fields_of(getattr(orm[0], related))
    assert fields_of(compiled.case.project) == fields_of(orm[0].case.project)
    assert fields_of(compiled.case.study) == fields_of(orm[0].case.study)
    assert compiled.case.series_id == orm[0].case.series_id
    latest = case.project.schemas.order_by("-version").first() if hasattr(case.project, "schemas") else None
    assert getattr(compiled, "latest_schema_id") == getattr(orm[0], "latest_schema_id")  # noqa: B009
    if latest is not None:
        assert getattr(compiled, "latest_schema_id") == latest.pk  # noqa: B009
    # Nobody else's, no other role, no other case.
    assert reading_assignment(users["reviewer"], case.pk, "first_reader") is None
    assert reading_assignment(reader, case.pk, "second_reader") is None
    assert reading_assignment(reader, case.pk + 100_000, "first_reader") is None
    assert reading_assignment(reader, case.pk, ["first_reader"]) is None


def test_study_geometry_is_the_orm_answer_with_and_without_a_series(reading_cases: list[Case]) -> None:
    case = reading_cases[0]
    for series_id in (None, Case.objects.get(pk=case.pk).series_id):
        case.series_id = series_id
        one = series_id is not None
        values = {"study_id": case.study_id, "series_id": series_id or 0}
        geometry = study_geometry(case)
        series = list(_geometry_series_query(one, **values))
        frames = list(_geometry_frames_query(one, **values))
        assert sorted(geometry.series) == sorted(s.series_instance_uid for s in series)
        assert sum(len(g.frames) for g in geometry.series.values()) == len(frames) > 0


def test_worklist_queries_are_the_orm_answer(reading_project: Project, users: dict[str, User]) -> None:
    reviewer = users["reviewer"]
    role = "second_reader"
    statuses = tuple(open_statuses(reading_project, role))
    values: dict[str, Any] = {"project_id": reading_project.pk, "user_id": reviewer.pk, "role": role}
    slots = slots_for_role(reading_project, role)
    compiled = _OPEN_CASES.objects(statuses, **values, slots=slots)
    orm = list(_open_cases_query(statuses, **values, slots=slots))
    assert [c.pk for c in compiled] == [c.pk for c in orm] and compiled
    assert [fields_of(c.study) for c in compiled] == [fields_of(c.study) for c in orm]
    assert _ACTIVE_ASSIGNMENT.first(**values) is None
    Assignment.objects.create(case=compiled[0], user=reviewer, role=role, slot=0)
    active = _ACTIVE_ASSIGNMENT.first(**values)
    expected = list(_active_assignment_query(**values))
    assert active is not None and fields_of(active) == fields_of(expected[0])
    assert fields_of(active.case) == fields_of(expected[0].case)
    # The case just taken is no longer open to this reader.
    assert compiled[0].pk not in [c.pk for c in _OPEN_CASES.objects(statuses, **values, slots=slots)]


def test_the_reading_is_locked_by_its_compiled_lookup(
    assigned: tuple[Case, User], client_for: Callable[[User | None], Client]
) -> None:
    case, reader = assigned
    values = {"case_id": case.pk, "reader_id": reader.pk, "role": "first_reader"}
    with transaction.atomic():
        assert _LOCKED_ANNOTATION.first(**values) is None
    saved = post_revision(client_for(reader), case, chest_values(case), base_revision=0)
    assert saved.status_code == 201, saved.content
    with transaction.atomic():
        found = _LOCKED_ANNOTATION.first(**values)
    assert found is not None and found.pk == saved.json()["annotation"] and found.revision_count == 1


def test_a_value_the_query_does_not_take_is_refused_when_compiling(db: None) -> None:
    query = CompiledQuery(lambda *, case_id, user_id: Case.objects.filter(pk=case_id), case_id=int, user_id=int)
    with pytest.raises(RuntimeError, match="user_id"):
        query.objects()


@pytest.mark.parametrize("submit", [False, True])
def test_the_saved_revision_answer_is_revision_outputs(
    assigned: tuple[Case, User], client_for: Callable[[User | None], Client], submit: bool
) -> None:
    case, reader = assigned
    client = client_for(reader)
    first = post_revision(client, case, chest_values(case, mask=True), base_revision=0)
    assert first.status_code == 201, first.content
    second = post_revision(client, case, chest_values(case, mask=True), base_revision=1, submit=submit)
    assert second.status_code == 201, second.content
    for response in (first, second):
        body = response.json()
        revision = AnnotationRevision.objects.get(annotation_id=body["annotation"], number=body["number"])
        expected = RevisionOutput(revision, context={"include_masks": False}).data
        assert body == {**expected, "annotation": revision.annotation_id}
    assert second.json()["parent"] == 1 and first.json()["parent"] is None


def test_a_save_takes_the_newest_schema_version(
    assigned: tuple[Case, User], client_for: Callable[[User | None], Client], users: dict[str, User]
) -> None:
    """The schema versions read once per process: a new version is used from the next save on."""
    case, reader = assigned
    client = client_for(reader)
    assert post_revision(client, case, chest_values(case), base_revision=0).json()["schema_version"] == 1
    schema_create_version(
        project=case.project, definition=load_example_schema("chest_ct_nodules"), created_by=users["manager"]
    )
    assert post_revision(client, case, chest_values(case), base_revision=1).json()["schema_version"] == 2


def test_a_manager_who_manages_and_reads_claims_and_sees_the_real_status(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    """worklist next reads whether the reader manages the project with the project: a manager who reads sees the
    workflow status, a reader who does not sees the reader's status (selectors.hide_case_statuses)."""
    from tests.factories import MembershipFactory

    manager = users["manager"]
    MembershipFactory(project=reading_project, user=manager, role=Role.ANNOTATOR)
    answer = client_for(manager).post(
        f"/api/v1/projects/{reading_project.slug}/worklist/next/", {"role": "first_reader"}, "application/json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["case"]["status"] == "awaiting_first_read"
    reader = client_for(users["annotator"]).post(
        f"/api/v1/projects/{reading_project.slug}/worklist/next/", {"role": "first_reader"}, "application/json"
    )
    assert reader.status_code == 200, reader.content
    assert reader.json()["case"]["status"] == "in_progress"


def test_the_reading_project_is_the_orm_answer_for_members_managers_outsiders_and_administrators(
    reading_project: Project, users: dict[str, User], admin: User
) -> None:
    from annotation.selectors import projects_for_user, with_reader_context
    from annotation.selectors import reading_project as compiled_project
    from review.services import policy_for

    slug = reading_project.slug
    for with_policy in (False, True):
        if with_policy:
            policy_for(reading_project)
        for user in (users["annotator"], users["reviewer"], users["manager"], admin):
            orm = with_reader_context(projects_for_user(user), user).get(slug=slug)
            compiled = compiled_project(user, slug)
            assert compiled is not None and fields_of(compiled) == fields_of(orm), user.username
            assert getattr(compiled, "user_is_manager") == getattr(orm, "user_is_manager")  # noqa: B009
            assert hasattr(compiled, "review_policy") is hasattr(orm, "review_policy") is with_policy
            if with_policy:
                assert fields_of(compiled.review_policy) == fields_of(orm.review_policy)
    assert getattr(compiled_project(users["manager"], slug), "user_is_manager") is True  # noqa: B009
    assert getattr(compiled_project(users["annotator"], slug), "user_is_manager") is False  # noqa: B009
    # A project the user is no member of, or no such project: none (the API answers 404 either way).
    assert compiled_project(users["outsider"], slug) is None
    assert compiled_project(users["annotator"], slug + "-other") is None


@pytest.mark.parametrize("manages", [False, True])
def test_the_claimed_assignment_answer_is_assignment_outputs(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client], manages: bool
) -> None:
    """worklist next writes its answer out (issue 19): the same as AssignmentOutput, for a new claim and for the
    unfinished assignment found again, in the reader's view (status hidden) and in a reading manager's."""
    from annotation.api.serializers import AssignmentOutput
    from annotation.selectors import hide_case_statuses
    from tests.factories import MembershipFactory

    user = users["manager"] if manages else users["annotator"]
    if manages:
        MembershipFactory(project=reading_project, user=user, role=Role.ANNOTATOR)
    client = client_for(user)
    url = f"/api/v1/projects/{reading_project.slug}/worklist/next/"
    answers = [client.post(url, {"role": "first_reader"}, "application/json") for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200], answers[0].content
    assert answers[0].json() == answers[1].json()  # found again, not claimed twice
    claimed = Assignment.objects.select_related("case__study", "case__series", "user")
    assignment = claimed.get(pk=answers[0].json()["id"])
    hide_case_statuses(user, reading_project, [assignment])
    expected = json.loads(json.dumps(AssignmentOutput(assignment).data, cls=JSONEncoder))  # as the API renders it
    assert answers[0].json() == expected
    assert expected["case"]["status"] == ("awaiting_first_read" if manages else "in_progress")
