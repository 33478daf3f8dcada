"""Reads of the review workflow that other code reuses, including who may see which reading."""

from __future__ import annotations

from django.db.models import Q

from annotation.models import Annotation, Assignment, Case, CaseStatus, ReadingRole
from config.types import AnyUser, user_pk
from review.models import ReviewPolicy

NOTHING = Q(pk__in=[])
READING_ROLES = [ReadingRole.FIRST_READER, ReadingRole.SECOND_READER]


def extra_visible_annotations(user: AnyUser, case: Case) -> Q:
    """Readings a non-manager may see beyond their own:

    - the AI proposal, to any reader assigned to the case (it is where they start from);
    - in verification mode, the submitted first reading, to the case's second reader;
    - once the case is in panel (or decided), every reading, the AI proposal, the consensus and the other
      experts' submitted corrections, to the experts seated on its panel.

    Never another reader's reading during blind double reading.
    """
    roles = set(Assignment.objects.filter(case=case, user__pk=user_pk(user)).values_list("role", flat=True))
    if not roles:
        return NOTHING
    visible = Q(role="ai")
    if ReadingRole.PANEL_MEMBER in roles and case.status in (CaseStatus.IN_PANEL, CaseStatus.ADJUDICATED):
        # ... and the corrected labels other experts submitted as their votes, so that they can be endorsed.
        visible |= Q(
            role__in=[*READING_ROLES, ReadingRole.PANEL_MEMBER, "consensus", "adjudicated"],
            status=Annotation.Status.SUBMITTED,
        )
    if ReadingRole.SECOND_READER in roles:
        mode = ReviewPolicy.objects.filter(project_id=case.project_id).values_list("mode", flat=True).first()
        if mode == ReviewPolicy.Mode.VERIFICATION:
            visible |= Q(role=ReadingRole.FIRST_READER, status=Annotation.Status.SUBMITTED)
    return visible
