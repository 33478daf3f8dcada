"""The review workflow: cross-verification, agreement, consensus, and panel adjudication.

The annotation app hands a submitted reading over through ``on_reading_submitted``
(settings.ANNOTATION_SUBMIT_HANDLER), so that annotation does not depend on review. Every status change
goes through review.workflow.case_transition, which appends a CaseEvent.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np
from django.db import transaction

from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Case,
    CaseStatus,
    Membership,
    ReadingRole,
    Role,
)
from annotation.services import annotation_save, annotation_save_derived, assignments_distribute, load_mask
from config.errors import ApplicationError, ConflictError, PermissionDeniedError
from config.types import User
from imaging.models import Instance, Series
from review.dashboards import schedule_dashboards_refresh
from review.evaluation import Evaluation, Reading, SliceIndex, Thresholds, evaluate
from review.models import AgreementResult, PanelVote, ReviewPolicy
from review.workflow import case_transition

CONSENSUS_ROLE = "consensus"
ADJUDICATED_ROLE = "adjudicated"


def policy_for(case_or_project: Any) -> ReviewPolicy:
    project = getattr(case_or_project, "project", case_or_project)
    policy, _ = ReviewPolicy.objects.get_or_create(project=project)
    return policy


def _thresholds(policy: ReviewPolicy) -> Thresholds:
    return Thresholds(
        mask_dice=policy.mask_dice,
        box_iou=policy.box_iou,
        ordinal_distance=policy.ordinal_distance,
        number_tolerance=policy.number_tolerance,
        point_distance=policy.point_distance,
        mask_rule=policy.mask_rule,
    )


def needs_second_read(case: Case, policy: ReviewPolicy) -> bool:
    """Deterministic sampling: the same case and seed always give the same answer."""
    if policy.second_read_share >= 1.0:
        return True
    digest = hashlib.sha256(f"{policy.sampling_seed}:{case.pk}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < policy.second_read_share


def _slice_index(case: Case) -> SliceIndex:
    z_of_sop: dict[str, int] = {}
    spacing: dict[str, tuple[float, float, float]] = {}
    series_qs = Series.objects.filter(study_id=case.study_id)
    for series in series_qs:
        row, column = (series.pixel_spacing or [1.0, 1.0])[:2]
        spacing[series.series_instance_uid] = (float(series.slice_spacing or 1.0), float(row), float(column))
    rows = Instance.objects.filter(series__in=series_qs).values_list(
        "series_id", "sop_instance_uid", "image_position", "image_orientation"
    )
    per_series: dict[int, list[tuple[float, str]]] = {}
    for series_id, sop, position, orientation in rows:
        if position and orientation:
            normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))
            along = float(np.dot(normal, np.asarray(position)))
        else:
            along = 0.0
        per_series.setdefault(series_id, []).append((along, sop))
    for entries in per_series.values():
        for z, (_, sop) in enumerate(sorted(entries)):
            z_of_sop[sop] = z
    return SliceIndex(z_of_sop=z_of_sop, spacing_of_series=spacing)


def _reading_of(revision: AnnotationRevision, name: str) -> Reading:
    masks_by_sha = {mask.sha256: mask for mask in revision.masks.all()}
    masks = {}
    for index, item in enumerate(revision.items):
        ref = item.get("mask")
        if isinstance(ref, dict) and ref.get("sha256") in masks_by_sha:
            masks[index] = load_mask(masks_by_sha[ref["sha256"]])
    return Reading(name=name, items=revision.items, masks=masks)


def _submitted_readings(case: Case) -> list[Annotation]:
    return list(
        Annotation.objects.filter(
            case=case,
            role__in=[ReadingRole.FIRST_READER, ReadingRole.SECOND_READER],
            status=Annotation.Status.SUBMITTED,
        )
        .select_related("reader", "current_revision")
        .order_by("role", "submitted_at", "pk")
    )


def _expected_readings(case: Case, policy: ReviewPolicy) -> int:
    if policy.mode == ReviewPolicy.Mode.VERIFICATION:
        return 1  # the second reader verifies instead of reading again
    return max(case.project.readers_per_case, 2)


def on_reading_submitted(*, annotation: Annotation, actor: User) -> None:
    """Move the case on when a reading is submitted: to cross-verification, or to the agreement check."""
    case = Case.objects.select_related("project").get(pk=annotation.case_id)
    policy = policy_for(case)
    schedule_dashboards_refresh(case.project_id)  # a submission counts (time per case) even without a transition
    if annotation.role == ReadingRole.FIRST_READER and case.status == CaseStatus.AWAITING_FIRST_READ:
        if not needs_second_read(case, policy):
            case_transition(
                case=case,
                to=CaseStatus.SINGLE_READ,
                actor=actor,
                reason=f"first reading submitted by {actor.username}; not sampled for a second reading "
                f"({policy.second_read_share:.0%} are)",
            )
            return
        case_transition(
            case=case,
            to=CaseStatus.AWAITING_CROSS_VERIFICATION,
            actor=actor,
            reason=f"first reading submitted by {actor.username}",
        )
    if policy.mode == ReviewPolicy.Mode.BLIND_DOUBLE and case.status == CaseStatus.AWAITING_CROSS_VERIFICATION:
        if len(_submitted_readings(case)) >= _expected_readings(case, policy):
            case_evaluate(case=case, actor=actor)
    elif (
        policy.mode == ReviewPolicy.Mode.VERIFICATION
        and annotation.role == ReadingRole.SECOND_READER
        and case.status == CaseStatus.AWAITING_CROSS_VERIFICATION
        and annotation.current_revision_id is not None
    ):
        # The verifier submitted a reading through the reading flow rather than the verification endpoint.
        # Their assignment is done, so no verification could follow and the case would wait forever: the
        # submitted reading is their correction of the first reading.
        revision = AnnotationRevision.objects.select_related("schema").get(pk=annotation.current_revision_id)
        _verification_corrected(
            case=case, reviewer=actor, revision=revision, reason=f"corrected reading submitted by {actor.username}"
        )


def case_evaluate(*, case: Case, actor: User | None) -> AgreementResult:
    """Compare the submitted readings; agreed cases get a consensus label, disputed ones go to the panel."""
    policy = policy_for(case)
    annotations = _submitted_readings(case)
    if len(annotations) < 2:
        raise ApplicationError(f"Case {case.pk} has {len(annotations)} submitted reading(s); agreement needs two")
    revisions = [a.current_revision for a in annotations if a.current_revision is not None]
    readings = [
        _reading_of(rev, a.reader.username if a.reader else a.role)
        for a, rev in zip(annotations, revisions, strict=True)
    ]
    schema = revisions[0].schema.definition
    index = _slice_index(case)
    evaluation = evaluate(schema, readings, _thresholds(policy), index)
    labels = [label.as_dict() for label in evaluation.labels]
    reasons = evaluation.reasons
    agreed = evaluation.agreed
    if agreed and policy.ai_third_opinion:
        ai_check = _ai_third_opinion(case, schema, evaluation, policy, index)
        if ai_check is not None:
            labels.append(ai_check)
            reasons = reasons + ai_check["reasons"]
            agreed = bool(ai_check["agreed"])
    with transaction.atomic():
        result = AgreementResult.objects.create(case=case, agreed=agreed, labels=labels, reasons=reasons)
        result.revisions.set(revisions)
        summary = {"agreement_result": result.pk, "labels": {lab["key"]: lab["agreed"] for lab in labels}}
        if agreed:
            _store_consensus(case, evaluation, revisions[0])
            case_transition(case=case, to=CaseStatus.AGREED, actor=actor, reason="readings agree", metrics=summary)
        else:
            case_transition(case=case, to=CaseStatus.DISPUTED, actor=actor, reason="; ".join(reasons), metrics=summary)
            case_send_to_panel(case=case, actor=actor)
    return result


AI_LABEL_KINDS = ("box", "polygon", "point", "mask")


def _ai_third_opinion(
    case: Case, schema: dict[str, Any], evaluation: Evaluation, policy: ReviewPolicy, index: SliceIndex
) -> dict[str, Any] | None:
    """The AI proposal as a third opinion on readings that agree (policy.ai_third_opinion).

    Two readers who both miss a lesion agree on its absence, and the agreement check alone passes it. The
    lesion and mask labels of the agreed consensus are compared with the AI proposal's by the same thresholds;
    where they disagree, the result (an entry "ai_third_opinion" next to the labels' entries) says why and the
    case goes to the panel, whose experts see the readings and the AI proposal. None when there is no AI
    proposal or no lesion/mask label to compare."""
    ai = (
        Annotation.objects.filter(case=case, role="ai", current_revision__isnull=False)
        .select_related("current_revision")
        .order_by("-pk")
        .first()
    )
    geometry = [label for label in schema.get("labels", []) if label["kind"] in AI_LABEL_KINDS]
    if ai is None or ai.current_revision is None or not geometry:
        return None
    agreed_readers = Reading(
        name="the agreed readers", items=evaluation.consensus_items, masks=evaluation.consensus_masks
    )
    proposal = _reading_of(ai.current_revision, "the AI proposal")
    check = evaluate({**schema, "labels": geometry}, [agreed_readers, proposal], _thresholds(policy), index)
    return {
        "key": "ai_third_opinion",
        "kind": "ai_check",
        "agreed": check.agreed,
        "metrics": {"ai_revision": ai.current_revision.pk, **{lab.key: lab.metrics for lab in check.labels}},
        "reasons": [f"AI third opinion: {reason}" for reason in check.reasons],
    }


def _store_consensus(case: Case, evaluation: Evaluation, template: AnnotationRevision) -> None:
    annotation_save_derived(
        case=case,
        role=CONSENSUS_ROLE,
        items=evaluation.consensus_items,
        masks=evaluation.consensus_masks,
        schema=template.schema,
    )


def case_send_to_panel(*, case: Case, actor: User | None) -> list[Assignment]:
    """Disputed -> in panel, and seat the panel: experts who did not read the case, balanced.

    A project without experts yet still sends the case to the panel (rather than failing the reader's
    submission after it was stored): experts who join later claim the seats from their worklist."""
    case_transition(case=case, to=CaseStatus.IN_PANEL, actor=actor, reason="disputed: sent to the expert panel")
    if not experts_of(case.project):
        return []
    return assignments_distribute(project=case.project, role=ReadingRole.PANEL_MEMBER, assigned_by=actor, cases=[case])


def verification_decide(
    *, case: Case, reviewer: User, outcome: str, reason: str, values: Any = None, base_revision: int = 0
) -> Case:
    """Level 2 in verification mode: the second reader accepts, corrects or rejects the first reading."""
    policy = policy_for(case)
    if policy.mode != ReviewPolicy.Mode.VERIFICATION:
        raise ConflictError(f"Project {case.project.slug!r} uses blind double reading, not verification")
    if case.status != CaseStatus.AWAITING_CROSS_VERIFICATION:
        raise ConflictError(f"Case {case.pk} is {case.status}, not awaiting cross-verification")
    assignment = Assignment.objects.filter(case=case, user=reviewer, role=ReadingRole.SECOND_READER).first()
    if assignment is None or assignment.status != Assignment.Status.ACTIVE:
        raise PermissionDeniedError(f"Case {case.pk} is not assigned to you for verification")
    first = _submitted_readings(case)
    if not first or first[0].current_revision is None:
        raise ConflictError(f"Case {case.pk} has no submitted first reading to verify")
    first_revision = first[0].current_revision
    if outcome == "accept":
        annotation_save_derived(
            case=case,
            role=CONSENSUS_ROLE,
            items=first_revision.items,
            masks=None,
            schema=first_revision.schema,
            copy_masks_from=first_revision,
        )
        Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.SUBMITTED)
        case_transition(
            case=case,
            to=CaseStatus.AGREED,
            actor=reviewer,
            reason=reason or "first reading accepted",
            metrics={"verification": "accepted"},
        )
    elif outcome == "correct":
        revision = annotation_save(
            case=case,
            reader=reviewer,
            role=ReadingRole.SECOND_READER,
            base_revision=base_revision,
            values=values,
            submit=True,
        )
        _verification_corrected(case=case, reviewer=reviewer, revision=revision, reason=reason)
    elif outcome == "reject":
        if not reason.strip():
            raise ApplicationError("A rejection needs a reason", code="reason_required")
        Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.SUBMITTED)
        case_transition(
            case=case, to=CaseStatus.DISPUTED, actor=reviewer, reason=reason, metrics={"verification": "rejected"}
        )
        case_send_to_panel(case=case, actor=reviewer)
    else:
        raise ApplicationError(f"Unknown outcome {outcome!r}: use accept, correct or reject", code="bad_outcome")
    case.refresh_from_db()
    return case


def _verification_corrected(*, case: Case, reviewer: User, revision: AnnotationRevision, reason: str) -> None:
    """The verifier's corrected reading becomes the case's consensus label."""
    annotation_save_derived(
        case=case,
        role=CONSENSUS_ROLE,
        items=revision.items,
        masks=None,
        schema=revision.schema,
        copy_masks_from=revision,
    )
    case_transition(
        case=case,
        to=CaseStatus.AGREED,
        actor=reviewer,
        reason=reason or "first reading corrected",
        metrics={"verification": "corrected", "corrected_revision": revision.pk},
    )


def panel_vote(
    *,
    case: Case,
    expert: User,
    rationale: str,
    voted_for: AnnotationRevision | None = None,
    values: Any = None,
) -> PanelVote:
    """An expert votes for one reading, or submits a corrected label; the decision follows at quorum."""
    policy = policy_for(case)
    if case.status != CaseStatus.IN_PANEL:
        raise ConflictError(f"Case {case.pk} is {case.status}, not in panel")
    if not rationale.strip():
        raise ApplicationError("A vote needs a rationale", code="rationale_required")
    seat = Assignment.objects.filter(case=case, user=expert, role=ReadingRole.PANEL_MEMBER).first()
    if seat is None:
        raise PermissionDeniedError(f"You do not sit on the panel of case {case.pk}")
    if PanelVote.objects.filter(case=case, expert=expert).exists():
        raise ConflictError(f"You have already voted on case {case.pk}")
    if (voted_for is None) == (values is None):
        raise ApplicationError("Vote for one reading or give a corrected label, not both", code="bad_vote")
    corrected = None
    if voted_for is not None:
        allowed = {a.current_revision_id for a in _submitted_readings(case)}
        allowed |= set(Annotation.objects.filter(case=case, role="ai").values_list("current_revision_id", flat=True))
        # Another expert's corrected label may be endorsed: the vote then counts for that correction, so a
        # correction the panel agrees with can win instead of standing alone with its author's vote.
        allowed |= set(
            PanelVote.objects.filter(case=case, corrected__isnull=False).values_list("corrected_id", flat=True)
        )
        if voted_for.pk not in allowed:
            raise ApplicationError(
                "That revision is not one of this case's readings or the panel's corrections", code="bad_vote"
            )
    else:
        corrected = annotation_save(
            case=case, reader=expert, role=ReadingRole.PANEL_MEMBER, base_revision=0, values=values, submit=True
        )
    vote = PanelVote.objects.create(
        case=case, expert=expert, voted_for=voted_for, corrected=corrected, rationale=rationale
    )
    Assignment.objects.filter(pk=seat.pk).update(status=Assignment.Status.SUBMITTED)
    _decide_if_quorum(case, policy, expert)
    return vote


def _decide_if_quorum(case: Case, policy: ReviewPolicy, actor: User) -> None:
    votes = list(PanelVote.objects.filter(case=case).select_related("voted_for", "corrected", "expert"))
    # The panel may have fewer seats than the policy's size (a project with fewer experts): a quorum larger
    # than the seats could never be reached, so it is capped at the seats.
    seats = Assignment.objects.filter(case=case, role=ReadingRole.PANEL_MEMBER).count()
    if len(votes) < min(policy.quorum, max(seats, 1)):
        return
    options: Counter[int] = Counter(int(v.voted_for_id or v.corrected_id or 0) for v in votes)
    ranked = options.most_common()
    top = ranked[0][1]
    leaders = [option for option, count in ranked if count == top]
    tie_broken_by_chair = False
    tie_rule = ""
    if len(leaders) > 1:
        breaker_id, tie_rule = _tie_breaker(case, policy)
        breaker_vote = next((v for v in votes if v.expert_id == breaker_id), None)
        breaker_choice = int(breaker_vote.voted_for_id or breaker_vote.corrected_id or 0) if breaker_vote else None
        if breaker_choice in leaders:
            winner = int(breaker_choice)
            tie_broken_by_chair = True
        elif len(votes) < seats:
            return  # the tie-breaker, or more of the panel, has yet to vote
        else:
            # Everyone voted and the tie-breaker's vote is outside the tie: no vote can change it any more, so
            # the leading option voted for first decides rather than leaving the case waiting forever.
            winner = next(
                int(v.voted_for_id or v.corrected_id or 0)
                for v in votes
                if int(v.voted_for_id or v.corrected_id or 0) in leaders
            )
            tie_rule = "the leading option voted for first (the tie-breaker voted for neither)"
    else:
        winner = leaders[0]
    revision = AnnotationRevision.objects.select_related("schema").get(pk=winner)
    annotation_save_derived(
        case=case,
        role=ADJUDICATED_ROLE,
        items=revision.items,
        masks=None,
        schema=revision.schema,
        copy_masks_from=revision,
    )
    metrics = {
        "votes": [
            {
                "expert": v.expert.username,
                "for": v.voted_for_id or v.corrected_id,
                "corrected": v.corrected_id is not None,
                "rationale": v.rationale,
            }
            for v in votes
        ],
        "winner_revision": winner,
        "tie_broken_by_chair": tie_broken_by_chair,
        "tie_rule": tie_rule,
    }
    if len(leaders) == 1:
        reason = "panel decided by majority"
    elif tie_broken_by_chair:
        reason = f"panel decided (tie broken by {tie_rule})"
    else:
        reason = f"panel decided (tie: {tie_rule})"
    case_transition(case=case, to=CaseStatus.ADJUDICATED, actor=actor, reason=reason, metrics=metrics)


def _tie_breaker(case: Case, policy: ReviewPolicy) -> tuple[int | None, str]:
    """Who breaks a tie on this case's panel: the project's chair when seated on it; otherwise (the chair read
    the case, is not an expert of the project, or none is set) the most senior expert seated on the panel, by
    the date they joined the project as an expert. Without this a tie waited for a chair who could never vote."""
    seated = list(
        Assignment.objects.filter(case=case, role=ReadingRole.PANEL_MEMBER).values_list("user_id", "user__username")
    )
    seated_ids = {user_id for user_id, _ in seated}
    if policy.chair_id is not None and policy.chair_id in seated_ids:
        return policy.chair_id, "the chair"
    senior = (
        Membership.objects.filter(project_id=case.project_id, role=Role.EXPERT, user_id__in=seated_ids)
        .order_by("created_at", "user_id")
        .values_list("user_id", "user__username")
        .first()
    )
    if senior is None:
        return None, ""
    return senior[0], f"the most senior panel member, {senior[1]} (the chair is not on this panel)"


def panel_members_of(case: Case) -> list[int]:
    return list(Assignment.objects.filter(case=case, role=ReadingRole.PANEL_MEMBER).values_list("user_id", flat=True))


def experts_of(project: Any) -> list[int]:
    return list(Membership.objects.filter(project=project, role=Role.EXPERT).values_list("user_id", flat=True))
