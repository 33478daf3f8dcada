"""One submit service (issue 13, item 5): saving the final revision, marking the reading and its assignment
submitted, and moving the case on (to cross-verification, the agreement check, the panel) happen in
``review.services.reading_submit``, in one transaction, whatever calls it.

Fault injection: where a test needs the hand-over to fail or to pause at a precise point it wraps one of the
review module's own functions (never the database, the broker or the store)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Case,
    CaseStatus,
    Project,
    ReadingRole,
    Role,
)
from annotation.services import assignment_create
from review import services
from review.models import AgreementResult, CaseEvent
from tests.annotation.conftest import chest_values, post_revision
from tests.factories import MembershipFactory, UserFactory
from tests.review.conftest import case_of, ok

FIRST = ReadingRole.FIRST_READER
SECOND = ReadingRole.SECOND_READER


def stored_state(case: Case) -> dict[str, Any]:
    """What a refused or failed submission must leave as it was."""
    return {
        "case_status": Case.objects.get(pk=case.pk).status,
        "revisions": AnnotationRevision.objects.filter(annotation__case=case).count(),
        "annotations": sorted(
            Annotation.objects.filter(case=case).values_list("role", "status", "submitted_at", "revision_count")
        ),
        "assignments": sorted(
            Assignment.objects.filter(case=case).values_list("user_id", "role", "status", "submitted_at")
        ),
        "events": CaseEvent.objects.filter(case=case).count(),
        "agreements": AgreementResult.objects.filter(case=case).count(),
    }


def both_readers_assigned(project: Project, case: Case, users: dict[str, User]) -> None:
    """First and second reader of one case, both assigned up front (a manager's distribution can do that)."""
    assignment_create(case=case, user=users["annotator"], role=FIRST, assigned_by=None)
    assignment_create(case=case, user=users["reviewer"], role=SECOND, assigned_by=None)


def test_reading_submit_saves_marks_submitted_and_hands_over_in_one_call(
    reading_project: Project, reading_cases: list[Case], users: dict[str, User]
) -> None:
    case = reading_cases[0]
    both_readers_assigned(reading_project, case, users)
    revision = services.reading_submit(
        case=case, reader=users["annotator"], role=FIRST, base_revision=0, values=chest_values(case)
    )
    annotation = Annotation.objects.get(pk=revision.annotation_id)
    assignment = Assignment.objects.get(case=case, user=users["annotator"])
    assert revision.is_submission and annotation.current_revision_id == revision.pk
    assert annotation.status == Annotation.Status.SUBMITTED and annotation.submitted_at is not None
    assert assignment.status == Assignment.Status.SUBMITTED and assignment.submitted_at is not None
    assert Case.objects.get(pk=case.pk).status == CaseStatus.AWAITING_CROSS_VERIFICATION

    services.reading_submit(
        case=case, reader=users["reviewer"], role=SECOND, base_revision=0, values=chest_values(case)
    )
    assert Case.objects.get(pk=case.pk).status == CaseStatus.AGREED
    assert AgreementResult.objects.filter(case=case).count() == 1


def test_a_failed_hand_over_stores_nothing_of_the_submission(
    reading_project: Project,
    reading_cases: list[Case],
    users: dict[str, User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second reading triggers the agreement check; if that fails, the reading is not left submitted on a
    case that never moved (the reader can submit again once the fault is gone)."""
    case = reading_cases[0]
    both_readers_assigned(reading_project, case, users)
    services.reading_submit(
        case=case, reader=users["annotator"], role=FIRST, base_revision=0, values=chest_values(case)
    )
    before = stored_state(case)
    assert before["case_status"] == CaseStatus.AWAITING_CROSS_VERIFICATION

    def broken_evaluation(**_: Any) -> None:
        raise RuntimeError("agreement check failed")

    monkeypatch.setattr(services, "case_evaluate", broken_evaluation)
    with pytest.raises(RuntimeError, match="agreement check failed"):
        services.reading_submit(
            case=case, reader=users["reviewer"], role=SECOND, base_revision=0, values=chest_values(case)
        )
    assert stored_state(case) == before  # no revision, nothing submitted, no submitted_at, no event

    monkeypatch.undo()
    services.reading_submit(
        case=case, reader=users["reviewer"], role=SECOND, base_revision=0, values=chest_values(case)
    )
    assert Case.objects.get(pk=case.pk).status == CaseStatus.AGREED


def test_submitting_twice_through_the_api_answers_409_and_duplicates_nothing(
    reading_project: Project,
    reading_cases: list[Case],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    case = reading_cases[0]
    both_readers_assigned(reading_project, case, users)
    annotator, reviewer = client_for(users["annotator"]), client_for(users["reviewer"])
    ok(post_revision(annotator, case, chest_values(case), base_revision=0, submit=True), 201)
    ok(post_revision(reviewer, case, chest_values(case), base_revision=0, submit=True, role=SECOND), 201)
    after_first = stored_state(case)
    assert after_first["case_status"] == CaseStatus.AGREED
    consensus = Annotation.objects.get(case=case, role=services.CONSENSUS_ROLE).revision_count

    for client, role, base in ((annotator, FIRST, 1), (annotator, FIRST, 0), (reviewer, SECOND, 1)):
        again = post_revision(client, case, chest_values(case), base_revision=base, submit=True, role=role)
        assert again.status_code == 409, again.content
        assert "already submitted" in again.json()["detail"]
    assert stored_state(case) == after_first
    assert Annotation.objects.get(case=case, role=services.CONSENSUS_ROLE).revision_count == consensus


@pytest.mark.django_db(transaction=True)
def test_two_second_readers_submitting_at_once_are_both_counted_and_the_case_is_evaluated(
    reading_project: Project,
    reading_cases: list[Case],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three readers per case: after the first reading, both second readings arrive at once. Each submission
    counts the submitted readings before either has committed: unless the hand-over is serialised on the case,
    each sees two of three, neither starts the agreement check, and the case waits for a reading that already
    came. The wrapper holds each submission right after it counted (a few seconds at most) so that both count
    before either commits, which is what happens when two readers press "submit" in the same instant."""
    reading_project.readers_per_case = 3
    reading_project.save(update_fields=["readers_per_case"])
    case = case_of(reading_cases[0].pk)
    reviewer2 = cast(User, UserFactory(username="reviewer2"))
    MembershipFactory(project=reading_project, user=reviewer2, role=Role.REVIEWER)
    both_readers_assigned(reading_project, case, users)
    assignment_create(case=case, user=reviewer2, role=SECOND, assigned_by=None)
    values = chest_values(case)
    ok(post_revision(client_for(users["annotator"]), case, values, base_revision=0, submit=True), 201)
    assert case_of(case.pk).status == CaseStatus.AWAITING_CROSS_VERIFICATION

    clients = {"reviewer": client_for(users["reviewer"]), "reviewer2": client_for(reviewer2)}
    counted = threading.Barrier(2)
    original = services._submitted_readings

    def count_then_wait(case: Case) -> list[Annotation]:
        found = original(case)
        try:
            counted.wait(timeout=3)
        except threading.BrokenBarrierError:
            pass  # the other submission waits for this one (serialised on the case), or already passed
        return found

    monkeypatch.setattr(services, "_submitted_readings", count_then_wait)
    answers: dict[str, int] = {}

    def submit(name: str) -> None:
        try:
            response = post_revision(clients[name], case.pk, values, base_revision=0, submit=True, role=SECOND)
            answers[name] = response.status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(name,)) for name in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a submission hung"

    assert answers == {"reviewer": 201, "reviewer2": 201}
    submitted = Annotation.objects.filter(case=case, status=Annotation.Status.SUBMITTED, role__in=[FIRST, SECOND])
    assert submitted.count() == 3
    assert case_of(case.pk).status == CaseStatus.AGREED
    assert AgreementResult.objects.filter(case=case).count() == 1
