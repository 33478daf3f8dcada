"""The case state machine: the allowed transitions are data, and one service applies them."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from annotation.models import Case, CaseStatus
from config.errors import ConflictError
from config.types import User
from review.models import CaseEvent

S = CaseStatus
TRANSITIONS: dict[str, set[str]] = {
    S.AWAITING_FIRST_READ: {S.AWAITING_CROSS_VERIFICATION, S.SINGLE_READ},
    S.AWAITING_CROSS_VERIFICATION: {S.AGREED, S.DISPUTED},
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
    *, case: Case, to: str, actor: User | None, reason: str = "", metrics: dict[str, Any] | None = None
) -> Case:
    """Lock the case, check the table, write the status, append the event."""
    locked = Case.objects.select_for_update().get(pk=case.pk)
    if to not in TRANSITIONS.get(locked.status, set()):
        raise InvalidTransitionError(f"Case {case.pk} cannot go from {locked.status} to {to}")
    CaseEvent.objects.create(
        case=locked, actor=actor, from_status=locked.status, to_status=to, reason=reason, metrics=metrics or {}
    )
    locked.status = to
    locked.save(update_fields=["status", "updated_at"])
    case.status = to
    # The managers' dashboards read a precomputed row per case: rewrite it with the transition, in its transaction.
    from review.dashboards import case_summaries_refresh, schedule_dashboards_refresh

    case_summaries_refresh(project=locked.project, case_ids=[locked.pk])
    # ... and let a worker recompute the figures after the commit, so the manager's next request reads them cached.
    schedule_dashboards_refresh(locked.project_id)
    return locked
