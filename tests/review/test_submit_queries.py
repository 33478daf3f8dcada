"""A submission makes a fixed number of queries, however many regions the reading has and however many other
readings the case has (issue 19): each step of the hand-over is measured twice, small (2 regions, 2 readers) and
large (10 regions, 3 or more readers and other readings), through the API as a reader's browser submits, and the
two counts must be equal (and small)."""

from __future__ import annotations

import functools
import itertools
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import load_example_schema
from annotation.models import Annotation, Assignment, Case, CaseStatus, LabelSchema, Project, ReadingRole, Role
from review import agreement_checks
from review.models import AgreementResult, CaseEvent, ReviewPolicy
from tests.annotation.test_api_queries import _reading_of, count_queries, imaged_case, new_user, regions
from tests.factories import MembershipFactory, ProjectFactory

API = "/api/v1"
FIRST = ReadingRole.FIRST_READER
SECOND = ReadingRole.SECOND_READER
# The most queries a submission may make at each step of the workflow (on 2026-12-06; before issue 19's work: 40,
# 26, 61-62 and 79-83, growing with the readings). Every submission: session, user, the case and its permission
# checks, the schema, the study's geometry, the lock and checks of the reading, the rows written, the case's lock
# and policy, and the savepoints of the nested transactions. Then each transition is its lock, event and status;
# the agreement check reads the readings with their masks (one query each) and the images' geometry, writes the
# result and the consensus label; a disputed case seats its panel (one insert per seat, a fixed panel size).
# One more than before gold cases: a submission looks up whether its case is gold (review.gold), a fixed query.
# An agreed case one more again: whether its project retrains automatically (inference.hooks.on_case_labelled).
# Then fewer (32, 27, 49, 60 before): the reading is created and locked in one lookup, its previous revision linked
# by id, the case locked once by the hand-over for every transition it makes (workflow.case_transition(locked=)),
# a new revision's masks linked with one insert, and the answer no longer reads mask rows it does not send.
# A disputed case one more: seating its panel writes the assignments' trail (AssignmentEvent, one bulk insert).
# Then fewer again (29, 25, 45, 57 before): the reader's assignment read with the case, its project, study, series
# and latest schema id in one query (four before: the case, two permission checks, the assignment), a schema version
# read once per process, the policy with the case's lock, no savepoint around the save inside the submission's
# transaction, and the answer no longer reads the previous revision back for its number. The last reading one more:
# the submitted readings are counted before they are read whole (every other submission reads less).
MAX_FIRST, MAX_WAITING, MAX_AGREED, MAX_DISPUTED = 23, 18, 47, 58
# Then the last reading's agreement check left the reader's request (review.agreement_checks): what the reader waits
# for is the submission and one transition (to checking_agreement: 22 queries, against 39 and 50 with the check).
# The check runs once the answer is sent, in its own transaction: the case locked again, and the sweep's one query
# for checks left behind; with the transition to checking_agreement, eight more in all.
MAX_LAST_REQUEST = 22

_serial = itertools.count(1)


def reading_project(readers: int) -> tuple[Project, LabelSchema]:
    manager = new_user("manager")
    project = cast(Project, ProjectFactory(slug=f"submit-{next(_serial)}", readers_per_case=readers))
    MembershipFactory(project=project, user=manager, role=Role.MANAGER)
    schema = LabelSchema.objects.create(
        project=project, version=1, definition=load_example_schema("chest_ct_nodules"), created_by=manager
    )
    ReviewPolicy.objects.create(project=project)
    return project, schema


def reader_of(project: Project, case: Case, role: str) -> tuple[User, Client]:
    reader = new_user()
    slot = Assignment.objects.filter(case=case, role=role).count()
    MembershipFactory(project=project, user=reader, role=Role.ANNOTATOR if role == FIRST else Role.REVIEWER)
    Assignment.objects.create(case=case, user=reader, role=role, slot=slot)
    client = Client()
    client.force_login(reader)
    client.get(f"{API}/me/")  # the session is loaded once before counting, as in a running reader
    return reader, client


def submit(client: Client, case: Case, role: str, items: list[dict[str, Any]]) -> Any:
    body = {"role": role, "base_revision": 0, "submit": True, "values": {"items": items}}
    return client.post(f"{API}/cases/{case.pk}/revisions/", body, content_type="application/json")


def assert_same_and_small(counts: dict[int, int], captured: dict[int, list[str]], most: int) -> None:
    small, large = sorted(counts)
    assert counts[small] == counts[large], "\n".join([f"small: {counts[small]}, large:", *captured[large]])
    assert counts[large] <= most, "\n".join(captured[large])


@pytest.mark.django_db
def test_first_submission_queries_do_not_grow_with_regions_or_readings() -> None:
    """The first reading moves the case to cross-verification; other readers' drafts are on the case."""
    counts: dict[int, int] = {}
    captured: dict[int, list[str]] = {}
    for n in (2, 10):
        project, schema = reading_project(readers=2 if n == 2 else 3)
        case, _series, sops = imaged_case(project)
        _reader, client = reader_of(project, case, FIRST)
        for _ in range(n):
            _reading_of(case, schema, submitted=False)
        counts[n], captured[n], response = count_queries(
            functools.partial(submit, client, case, FIRST, regions(sops, n))
        )
        assert response.status_code == 201, response.content
        assert Case.objects.get(pk=case.pk).status == CaseStatus.AWAITING_CROSS_VERIFICATION
    assert_same_and_small(counts, captured, MAX_FIRST)


@pytest.mark.django_db
def test_submission_that_completes_no_step_queries_do_not_grow_with_regions_or_readings() -> None:
    """A second reading of three: the case waits for the third, nothing is evaluated."""
    counts: dict[int, int] = {}
    captured: dict[int, list[str]] = {}
    for n in (2, 10):
        project, _schema = reading_project(readers=3 if n == 2 else 11)
        case, _series, sops = imaged_case(project)
        _first, first = reader_of(project, case, FIRST)
        assert submit(first, case, FIRST, regions(sops, n)).status_code == 201
        for _ in range(n - 2):  # other second readers' submitted readings (more with the larger case)
            _other, other = reader_of(project, case, SECOND)
            assert submit(other, case, SECOND, regions(sops, n)).status_code == 201
        _reader, client = reader_of(project, case, SECOND)
        counts[n], captured[n], response = count_queries(
            functools.partial(submit, client, case, SECOND, regions(sops, n))
        )
        assert response.status_code == 201, response.content
        assert Case.objects.get(pk=case.pk).status == CaseStatus.AWAITING_CROSS_VERIFICATION
        assert not AgreementResult.objects.filter(case=case).exists()
    assert_same_and_small(counts, captured, MAX_WAITING)


@pytest.mark.parametrize("agree", [True, False], ids=["agreed", "disputed"])
@pytest.mark.django_db
def test_last_submission_queries_do_not_grow_with_regions_or_readings(agree: bool) -> None:
    """The last reading starts the agreement check: 2 readers with 2 regions against 3 readers with 10. The
    readings agree (a consensus label is stored) or not (the case goes to the panel, whose experts are seated)."""
    counts: dict[int, int] = {}
    requests: dict[int, int] = {}
    captured: dict[int, list[str]] = {}
    for n in (2, 10):
        readers = 2 if n == 2 else 3
        project, schema = reading_project(readers=readers)
        for _ in range(n + 2):  # experts for the panel (more than its three seats), more with the larger case
            MembershipFactory(project=project, user=new_user("expert"), role=Role.EXPERT)
        case, _series, sops = imaged_case(project)
        items = regions(sops, n)
        _first, first = reader_of(project, case, FIRST)
        assert submit(first, case, FIRST, items).status_code == 201
        for _ in range(readers - 2):
            _other, other = reader_of(project, case, SECOND)
            assert submit(other, case, SECOND, items).status_code == 201
        for _ in range(n):  # drafts of readers who were replaced: not counted, not compared
            _reading_of(case, schema, submitted=False)
        last_items = items if agree else [{**items[0], "value": "no"}]
        _reader, client = reader_of(project, case, SECOND)
        agreement_checks._next_sweep = 0.0  # the check's look for checks left behind (once per delay): counted too
        total, queries, response = count_queries(functools.partial(submit, client, case, SECOND, last_items))
        assert response.status_code == 201, response.content
        # The test client closes the response before handing it over, as a WSGI server does once it is sent: the
        # check's queries come after the request's, from the case's lock on.
        check_starts = next(i for i, sql in enumerate(queries) if "SKIP LOCKED" in sql) - 1  # its savepoint
        requests[n], captured[n] = check_starts, queries
        counts[n] = total
        assert Case.objects.get(pk=case.pk).status == (CaseStatus.AGREED if agree else CaseStatus.IN_PANEL)
        result = AgreementResult.objects.get(case=case)
        assert result.agreed is agree and result.revisions.count() == readers
        if agree:
            consensus = Annotation.objects.get(case=case, role="consensus")
            assert consensus.current_revision is not None
            assert sum(1 for item in consensus.current_revision.items if item["label"] == "nodule_box") == n
        else:
            assert Assignment.objects.filter(case=case, role=ReadingRole.PANEL_MEMBER).count() == 3
        assert CaseEvent.objects.filter(case=case).count() == (3 if agree else 4)
    assert_same_and_small(requests, captured, MAX_LAST_REQUEST)
    assert_same_and_small(counts, captured, MAX_AGREED if agree else MAX_DISPUTED)


@pytest.mark.django_db
def test_submission_asks_for_one_dashboards_refresh(django_capture_on_commit_callbacks: Any) -> None:
    """An agreed submission moves its case three times (to cross-verification, to checking the agreement, then
    agreed) and used to queue a whole-project dashboards refresh for the hand-over and each transition: one is queued
    per transaction (review.dashboards), the submission's and, for the last reading, its agreement check's."""
    project, _schema = reading_project(readers=2)
    case, _series, sops = imaged_case(project)
    items = regions(sops, 2)
    _first, first = reader_of(project, case, FIRST)
    with django_capture_on_commit_callbacks() as first_callbacks:
        assert submit(first, case, FIRST, items).status_code == 201
    _second, second = reader_of(project, case, SECOND)
    with django_capture_on_commit_callbacks() as last_callbacks:
        assert submit(second, case, SECOND, items).status_code == 201
    assert Case.objects.get(pk=case.pk).status == CaseStatus.AGREED
    for callbacks, transactions in ((first_callbacks, 1), (last_callbacks, 2)):
        refreshes = [c for c in callbacks if getattr(c, "dashboards_project", None) == project.pk]
        assert len(refreshes) == transactions, callbacks


@pytest.mark.django_db
def test_the_hand_overs_compiled_queries_are_the_orm_answer() -> None:
    """The case lock (with its project and policy) and the count of submitted readings, compiled once per process
    (config.compiled), answer what their ORM queries answer."""
    from django.db import transaction

    from review.services import (
        _CASE_TO_HAND_OVER,
        _SUBMITTED_READING_IDS,
        _case_to_hand_over_query,
        _submitted_readings_query,
    )

    project, _schema = reading_project(2)
    case, _series, sops = imaged_case(project)
    for role in (FIRST, SECOND):
        _reader, client = reader_of(project, case, role)
        assert submit(client, case, role, regions(sops, 2)).status_code == 201
        with transaction.atomic():
            compiled = _CASE_TO_HAND_OVER.first(case_id=case.pk)
            orm = list(_case_to_hand_over_query(case_id=case.pk))[0]
        assert vars(compiled).keys() == vars(orm).keys()
        assert (compiled.pk, compiled.status, compiled.project_id) == (orm.pk, orm.status, orm.project_id)
        assert compiled.project.review_policy.pk == orm.project.review_policy.pk
        ids = sorted(pk for (pk,) in _SUBMITTED_READING_IDS.rows(case_id=case.pk))
        assert ids == sorted(_submitted_readings_query(case).values_list("pk", flat=True))
        assert len(ids) == (1 if role == FIRST else 2)
