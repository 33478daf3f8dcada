"""The case state machine: the allowed transitions are data, and one service applies them."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from annotation.models import Case, CaseStatus
from config.errors import ConflictError
from config.messages import Message, english
from config.types import User
from review.models import CaseEvent

S = CaseStatus
TRANSITIONS: dict[str, set[str]] = {
    # Back to agreed or adjudicated only when a manager unmarks a gold case made with that final label before
    # anyone read it again (review.gold.gold_case_unmark): the case is then what it was.
    # To disputed: adaptive routing sends a first reading that fails a check straight to the panel
    # (policy.adaptive_adjudicate), to be judged against the AI proposal.
    S.AWAITING_FIRST_READ: {S.AWAITING_CROSS_VERIFICATION, S.SINGLE_READ, S.AGREED, S.ADJUDICATED, S.DISPUTED},
    # To checking the agreement once every reading is in (review.agreement_checks); straight to agreed or disputed
    # by verification, where the second reader accepts or corrects the first reading.
    S.AWAITING_CROSS_VERIFICATION: {S.CHECKING_AGREEMENT, S.AGREED, S.DISPUTED},
    S.CHECKING_AGREEMENT: {S.AGREED, S.DISPUTED},
    S.DISPUTED: {S.IN_PANEL},
    S.IN_PANEL: {S.ADJUDICATED},
    S.SINGLE_READ: set(),
    # Only when a manager makes the case a gold-standard case with its final label as the reference (review.gold):
    # it is then read again, by readers who are measured against that label.
    S.AGREED: {S.AWAITING_FIRST_READ},
    S.ADJUDICATED: {S.AWAITING_FIRST_READ},
}


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"


@transaction.atomic
def case_transition(
    *,
    case: Case,
    to: str,
    actor: User | None,
    reason: str = "",
    message: Message | None = None,
    metrics: dict[str, Any] | None = None,
    locked: bool = False,
) -> Case:
    """Lock the case, check the table, write the status, append the event.

    ``message`` is the reason for people as a message (config.messages), shown in each viewer's language; it is
    kept in the event's metrics (``reason_message``) and its English text is the ``reason`` unless one is given.
    ``locked``: the caller read ``case`` under its row lock in this transaction (a reader's hand-over does), so its
    status is current and it is not read again (one query less per transition of a submission, issue 19).
    """
    locked_case = case if locked else Case.objects.select_for_update().get(pk=case.pk)
    if to not in TRANSITIONS.get(locked_case.status, set()):
        raise InvalidTransitionError(f"Case {case.pk} cannot go from {locked_case.status} to {to}")
    metrics = dict(metrics or {})
    if message is not None:
        metrics["reason_message"] = message
        reason = reason or english(message)
    CaseEvent.objects.create(
        case=locked_case, actor=actor, from_status=locked_case.status, to_status=to, reason=reason, metrics=metrics
    )
    locked_case.status = to
    locked_case.save(update_fields=["status", "updated_at"])
    case.status = to
    # The managers' dashboards read a precomputed row per case. It is not rewritten here, in the reader's request
    # (issue 19): the case's new updated_at marks it stale, and a worker recomputes it with the figures after the
    # commit (or the manager's next request does, review.dashboards.project_snapshot).
    from review.dashboards import schedule_dashboards_refresh

    schedule_dashboards_refresh(locked_case.project_id)
    if to in (S.AGREED, S.ADJUDICATED):  # a final label: automatic training may be due (after the commit)
        _case_labelled_handler()(case=locked_case)
    return locked_case


def _case_labelled_handler() -> Any:
    """settings.REVIEW_CASE_LABELLED_HANDLER(case=): the inference app checks for automatic training."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    return import_string(settings.REVIEW_CASE_LABELLED_HANDLER)
