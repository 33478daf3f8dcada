"""Review services. The annotation app hands a submitted reading over through ``on_reading_submitted``
(settings.ANNOTATION_SUBMIT_HANDLER), so that annotation does not depend on review."""

from __future__ import annotations

from annotation.models import Annotation, CaseStatus, ReadingRole
from config.types import User
from review.workflow import case_transition


def on_reading_submitted(*, annotation: Annotation, actor: User) -> None:
    case = annotation.case
    if annotation.role == ReadingRole.FIRST_READER and case.status == CaseStatus.AWAITING_FIRST_READ:
        case_transition(
            case=case,
            to=CaseStatus.AWAITING_CROSS_VERIFICATION,
            actor=actor,
            reason=f"first reading submitted by {actor.username}",
        )
