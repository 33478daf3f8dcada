"""Reads of the review workflow that other code reuses, including who may see which reading."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext_noop as N_

from annotation.models import Annotation, AnnotationRevision, Assignment, Case, CaseStatus, ReadingRole
from config.messages import Message, english, message
from config.types import AnyUser, user_pk
from review.models import PanelVote, ReviewPolicy

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
    # Not while the case awaits its first reading: there is none to verify yet, and a gold case (review.gold) stays
    # there with every gold reader's reading, which no other reader may see.
    if ReadingRole.SECOND_READER in roles and case.status != CaseStatus.AWAITING_FIRST_READ:
        mode = ReviewPolicy.objects.filter(project_id=case.project_id).values_list("mode", flat=True).first()
        if mode == ReviewPolicy.Mode.VERIFICATION:
            visible |= Q(role=ReadingRole.FIRST_READER, status=Annotation.Status.SUBMITTED)
    return visible


# What a panel vote can be for, in words: the readings by role, the AI proposal, an expert's corrected label.
READING_NAMES = {
    ReadingRole.FIRST_READER: N_("first reading"),
    ReadingRole.SECOND_READER: N_("second reading"),
    "ai": N_("AI proposal"),
    ReadingRole.PANEL_MEMBER: N_("expert correction"),
    "consensus": N_("consensus label"),
    "adjudicated": N_("adjudicated label"),
}
EXPERT_CORRECTION_BY = N_("expert correction by %(reader)s")


def reading_message(role: str, reader: str | None) -> Message:
    """A reading in words, to render in the viewer's language: "first reading", "expert correction by expert1"."""
    if role == ReadingRole.PANEL_MEMBER and reader:
        return message(EXPERT_CORRECTION_BY, reader=reader)
    return message(READING_NAMES.get(role, role))


def readings_of_revisions(revision_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Which reading each revision belongs to, for people: annotation, role, reader and a label such as
    "first reading" or "expert correction by expert1". One query."""
    rows = AnnotationRevision.objects.filter(pk__in=set(revision_ids)).values_list(
        "pk", "annotation_id", "annotation__role", "annotation__reader__username"
    )
    found: dict[int, dict[str, Any]] = {}
    for pk, annotation_id, role, reader in rows:
        said = reading_message(role, reader)
        found[pk] = {
            "revision": pk,
            "annotation": annotation_id,
            "role": role,
            "reader": reader,
            "description": english(said),  # stored in event metrics: English; shown from description_message
            "description_message": said,
        }
    return found


def panel_votes_of(case: Case) -> list[PanelVote]:
    """The case's votes, oldest first, each with ``reading``: what it is for (see readings_of_revisions)."""
    votes = list(PanelVote.objects.filter(case=case).select_related("expert").order_by("created_at", "pk"))
    return with_readings(votes)


def with_readings(votes: list[PanelVote]) -> list[PanelVote]:
    readings = readings_of_revisions(int(v.voted_for_id or v.corrected_id or 0) for v in votes)
    for vote in votes:
        vote.reading = readings.get(int(vote.voted_for_id or vote.corrected_id or 0))  # type: ignore[attr-defined]
    return votes
