"""The review workflow: cross-verification, agreement, consensus, and panel adjudication.

A reader submits through ``reading_submit``: the final revision and the case's next step in one transaction.
Every status change goes through review.workflow.case_transition, which appends a CaseEvent.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import transaction
from django.db.models import QuerySet, prefetch_related_objects
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_noop as N_

from annotation.labels import StudyGeometry
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
from config.compiled import CompiledQuery
from config.errors import ApplicationError, ConflictError, PermissionDeniedError
from config.messages import Message, message
from config.types import User
from imaging.geometry import order_slices
from imaging.models import Instance, Series
from review.agreement_checks import agreement_check_queue
from review.dashboards import schedule_dashboards_refresh
from review.evaluation import (
    AGREED,
    DISAGREED,
    R_AI_THIRD_OPINION,
    Evaluation,
    Reading,
    SliceIndex,
    Thresholds,
    evaluate,
)
from review.models import AgreementResult, CaseEvent, Correction, PanelVote, ReviewPolicy
from review.selectors import readings_of_revisions, with_readings
from review.workflow import case_transition

CONSENSUS_ROLE = "consensus"
ADJUDICATED_ROLE = "adjudicated"

# Event reasons, for people (English msgids; stored with their parameters, shown in the viewer's language).
E_FIRST_READ_SINGLE = N_(
    "first reading submitted by %(reader)s; not sampled for a second reading (%(share)s of cases are)"
)
E_FIRST_READ = N_("first reading submitted by %(reader)s")
E_CORRECTED_READ = N_("corrected reading submitted by %(reader)s")
E_CHECKING = N_("all %(count)s readings submitted; the agreement is being computed")
E_AGREE = N_("readings agree")
E_DISPUTED = "%(reasons)s"  # the agreement's reasons, one after another (nothing to translate around them)
E_TO_PANEL = N_("disputed: sent to the expert panel")
E_ACCEPTED = N_("first reading accepted")
E_CORRECTED = N_("first reading corrected")
E_WINNER_BY = N_("%(reading)s (%(reader)s)")
E_VOTES = N_("%(count)s, %(cast)s of %(seated)s seated members voted")
E_VOTES_DEADLINE = N_(
    "%(count)s, %(cast)s of %(seated)s seated members voted; the voting deadline of %(hours)s h passed"
)
E_MAJORITY = N_("panel decided by majority (%(votes)s): %(winner)s")
E_PLURALITY = N_("panel decided by the most votes, without a majority (%(votes)s): %(winner)s")
E_CASTING = N_("panel tied (%(votes)s): casting vote of %(who)s, for %(winner)s")
E_CHAIR = N_("the chair, %(voter)s")
E_SENIOR = N_("the senior expert, %(voter)s (%(why)s)")
E_CHAIR_ABSENT = N_("the chair, %(voter)s, has not voted")
E_CHAIR_ELSEWHERE = N_("the chair, %(voter)s, voted for neither")
E_NO_CHAIR = N_("no chair is set")
E_CHAIR_OFF_PANEL = N_("the chair is not on this panel")


def _loaded_policy(case: Case) -> ReviewPolicy:
    """The case's project's policy as read with the case (select_related), or made now for a project without one."""
    try:
        return case.project.review_policy
    except ReviewPolicy.DoesNotExist:
        return policy_for(case)


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
    """Where each image of the case's study lies in its series: the slice order of imaging.geometry, the one
    the viewer and the masks use."""
    z_of_sop: dict[str, int] = {}
    spacing: dict[str, tuple[float, float, float]] = {}
    series_list = list(Series.objects.filter(study_id=case.study_id))
    for series in series_list:
        row, column = (series.pixel_spacing or [1.0, 1.0])[:2]
        spacing[series.series_instance_uid] = (float(series.slice_spacing or 1.0), float(row), float(column))
    per_series: dict[int, list[Instance]] = {}
    images = Instance.objects.filter(series__in=series_list, has_pixel_data=True).only(
        "series_id", "sop_instance_uid", "instance_number", "image_position", "image_orientation"
    )
    for instance in images:  # one query for the whole study
        per_series.setdefault(instance.series_id, []).append(instance)
    for series in series_list:
        ordered = order_slices(per_series.get(series.pk, []), series_orientation=series.image_orientation)
        z_of_sop.update(ordered.z_of_sop())
    return SliceIndex(z_of_sop=z_of_sop, spacing_of_series=spacing)


def _reading_of(revision: AnnotationRevision, name: str) -> Reading:
    masks_by_sha = {mask.sha256: mask for mask in revision.masks.all()}
    masks = {}
    for index, item in enumerate(revision.items):
        ref = item.get("mask")
        if isinstance(ref, dict) and ref.get("sha256") in masks_by_sha:
            masks[index] = load_mask(masks_by_sha[ref["sha256"]])
    return Reading(name=name, items=revision.items, masks=masks)


def _submitted_readings_query(case: Case) -> Any:
    return Annotation.objects.filter(
        case=case,
        role__in=[ReadingRole.FIRST_READER, ReadingRole.SECOND_READER],
        status=Annotation.Status.SUBMITTED,
    )


def _case_to_hand_over_query(*, case_id: int) -> QuerySet[Case]:
    return (
        Case.objects.select_for_update(of=("self",))
        .select_related("project", "project__review_policy")
        .filter(pk=case_id)[:1]
    )


def _submitted_reading_ids_query(*, case_id: int) -> QuerySet[Annotation]:
    return _submitted_readings_query(Case(pk=case_id)).values_list("pk")


def _case_to_check_query(*, case_id: int) -> QuerySet[Case]:
    """The case, with its project and policy, locked for its agreement check if it waits for one and no other run
    holds it (review.agreement_checks)."""
    return (
        Case.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("project", "project__review_policy")
        .filter(pk=case_id, status=CaseStatus.CHECKING_AGREEMENT)[:1]
    )


_CASE_TO_HAND_OVER = CompiledQuery(_case_to_hand_over_query, case_id=int)
_CASE_TO_CHECK = CompiledQuery(_case_to_check_query, case_id=int)
_SUBMITTED_READING_IDS = CompiledQuery(_submitted_reading_ids_query, case_id=int)


def _submitted_readings(case: Case) -> list[Annotation]:
    return list(
        _submitted_readings_query(case)
        .select_related("reader", "current_revision__schema")
        .order_by("role", "submitted_at", "pk")
    )


def _expected_readings(case: Case, policy: ReviewPolicy) -> int:
    if policy.mode == ReviewPolicy.Mode.VERIFICATION:
        return 1  # the second reader verifies instead of reading again
    return max(case.project.readers_per_case, 2)


@transaction.atomic
def reading_submit(
    *,
    case: Case,
    reader: User,
    role: str,
    base_revision: int,
    values: Any,
    geometry: StudyGeometry | None = None,
    assignment: Assignment | None = None,
) -> AnnotationRevision:
    """Submit a reader's reading: save the final revision, mark the reading and its assignment submitted (with
    ``submitted_at``), and move the case on (to cross-verification, the agreement check, the panel). One
    transaction: if any step fails nothing of the submission stays, and the reader can submit again.

    It lives here, not in annotation, because moving the case is the review workflow's and review depends on
    annotation, never the other way (docs/architecture.md). So annotation has no hook for review to fill in:
    ``annotation_save`` stores readings and drafts and knows nothing of workflows, and the API's reading
    endpoint (review.api.views.CaseRevisionCreateView) calls this service for a submission.

    A second submission of the same reading is refused by ``annotation_save`` (InvalidStateError, 409) before
    anything is written."""
    if role == ReadingRole.PANEL_MEMBER:
        # An expert's corrected label is their vote: it needs a rationale and counts under the committee rules, so
        # it is submitted through the corrections endpoint (review.corrections), never as a bare reading.
        raise ApplicationError(
            gettext(
                "Submit your corrected label of case %(case)s as your vote, with a rationale "
                "(POST /api/v1/cases/%(case)s/corrections/mine/revisions/)"
            )
            % {"case": case.pk},
            code="correction_is_a_vote",
        )
    revision = annotation_save(
        case=case,
        reader=reader,
        role=role,
        base_revision=base_revision,
        values=values,
        submit=True,
        geometry=geometry,
        assignment=assignment,  # when the caller read it (the API does): annotation_save then does not
    )
    from review.gold import gold_reading_score

    if gold_reading_score(revision=revision) is not None:
        # A gold case is scored, never moved on: it stays open to other readers and out of the panel.
        schedule_dashboards_refresh(case.project_id)
        return revision
    _hand_over(annotation=revision.annotation, actor=reader)
    return revision


def _hand_over(*, annotation: Annotation, actor: User) -> None:
    """Move the case on when a reading is submitted: to cross-verification, or to the agreement check."""
    # The case row is locked until the submission commits, so the submissions of one case are handed over one
    # at a time and the last of them counts every other reading. Without it two readers submitting at once
    # each counted only their own (the other's not yet committed), neither started the agreement check, and
    # the case waited for a reading that had come. Only the case row: select_related would lock the project.
    # With the project's review policy (not locked): a query less on every submission (issue 19).
    # Compiled once per process (config.compiled): building and compiling this query was about a tenth of a
    # submission's CPU (issue 19).
    case = cast(Case, _CASE_TO_HAND_OVER.first(case_id=annotation.case_id))
    policy = _loaded_policy(case)
    schedule_dashboards_refresh(case.project_id)  # a submission counts (time per case) even without a transition
    if annotation.role == ReadingRole.FIRST_READER and case.status == CaseStatus.AWAITING_FIRST_READ:
        if policy.adaptive_second_read:
            from review.adaptive import adaptive_route

            adaptive_route(case=case, annotation=annotation, actor=actor, policy=policy)
            return  # second readers open only once it routes the case to them (annotation.services.open_statuses)
        if not needs_second_read(case, policy):
            case_transition(
                case=case,
                to=CaseStatus.SINGLE_READ,
                actor=actor,
                locked=True,
                message=message(E_FIRST_READ_SINGLE, reader=actor.username, share=f"{policy.second_read_share:.0%}"),
            )
            return
        case_transition(
            case=case,
            to=CaseStatus.AWAITING_CROSS_VERIFICATION,
            actor=actor,
            locked=True,
            message=message(E_FIRST_READ, reader=actor.username),
        )
    if policy.mode == ReviewPolicy.Mode.BLIND_DOUBLE and case.status == CaseStatus.AWAITING_CROSS_VERIFICATION:
        expected = _expected_readings(case, policy)
        # Counted first: most submissions complete nothing, and reading every reading with its revision and schema
        # (JSON decoded) only to count them was a seventh of a submission's CPU (issue 19).
        if len(_SUBMITTED_READING_IDS.rows(case_id=case.pk)) < expected:
            return
        # Every reading is in: the case waits for its agreement check, which a request runs once the reader has
        # their answer (review.agreement_checks), and anything else runs now.
        case_transition(
            case=case,
            to=CaseStatus.CHECKING_AGREEMENT,
            actor=actor,
            locked=True,
            message=message(E_CHECKING, count=str(expected)),
        )
        agreement_check_queue(
            case=case, actor=actor, run_now=lambda: check_agreement_locked(case=case, actor=actor, policy=policy)
        )
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
            case=case, reviewer=actor, revision=revision, said=message(E_CORRECTED_READ, reader=actor.username)
        )


def case_to_check(case_id: int) -> Case | None:
    """``_case_to_check_query``'s case, compiled once per process (config.compiled)."""
    return cast(Case | None, _CASE_TO_CHECK.first(case_id=case_id))


def check_agreement_locked(*, case: Case, actor: User | None, policy: ReviewPolicy | None = None) -> AgreementResult:
    """The agreement check of a case in ``checking_agreement`` whose row the caller holds locked: its submitted
    readings compared, the case agreed (with a consensus label) or disputed (and sent to the panel)."""
    policy = policy or _loaded_policy(case)
    return case_evaluate(case=case, actor=actor, policy=policy, annotations=_submitted_readings(case), locked=True)


def case_evaluate(
    *,
    case: Case,
    actor: User | None,
    policy: ReviewPolicy | None = None,
    annotations: list[Annotation] | None = None,
    locked: bool = False,
) -> AgreementResult:
    """Compare the submitted readings; agreed cases get a consensus label, disputed ones go to the panel.

    ``policy`` and ``annotations`` (the submitted readings, as ``_submitted_readings`` gives them) when the caller
    has just read them; a fixed number of queries whatever the number of readings and regions (issue 19).
    ``locked``: the caller holds the case's row lock and ``case`` is the row it read (workflow.case_transition)."""
    policy = policy or policy_for(case)
    annotations = _submitted_readings(case) if annotations is None else annotations
    if len(annotations) < 2:
        raise ApplicationError(f"Case {case.pk} has {len(annotations)} submitted reading(s); agreement needs two")
    revisions = [a.current_revision for a in annotations if a.current_revision is not None]
    prefetch_related_objects(revisions, "masks")  # one query for every reading's masks
    readings = [
        _reading_of(rev, a.reader.username if a.reader else a.role)
        for a, rev in zip(annotations, revisions, strict=True)
    ]
    schema = revisions[0].schema.definition
    index = _slice_index(case)
    evaluation = evaluate(schema, readings, _thresholds(policy), index)
    labels = [label.as_dict() for label in evaluation.labels]
    reasons = evaluation.reasons
    messages = evaluation.messages
    agreed = evaluation.agreed
    if agreed and policy.ai_third_opinion:
        ai_check = _ai_third_opinion(case, schema, evaluation, policy, index)
        if ai_check is not None:
            labels.append(ai_check)
            reasons = reasons + ai_check["reasons"]
            messages = messages + ai_check["messages"]
            agreed = bool(ai_check["agreed"])
    with transaction.atomic():
        result = AgreementResult.objects.create(case=case, agreed=agreed, labels=labels, reasons=reasons)
        compared = AgreementResult.revisions.through
        compared.objects.bulk_create(  # a new result: nothing to compare against, one insert
            [compared(agreementresult=result, annotationrevision=revision) for revision in revisions]
        )
        summary = {
            "agreement_result": result.pk,
            "labels": {lab["key"]: lab["agreed"] for lab in labels},
            "label_status": {lab["key"]: lab.get("status", AGREED if lab["agreed"] else DISAGREED) for lab in labels},
        }
        if agreed:
            _store_consensus(case, evaluation, revisions[0])
            case_transition(
                case=case, to=CaseStatus.AGREED, actor=actor, message=message(E_AGREE), metrics=summary, locked=locked
            )
        else:
            case_transition(
                case=case,
                to=CaseStatus.DISPUTED,
                actor=actor,
                reason="; ".join(reasons),
                message=message(E_DISPUTED, reasons=messages),
                metrics=summary,
                locked=locked,
            )
            case_send_to_panel(case=case, actor=actor, locked=locked)
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
        name="the agreed readers",
        items=evaluation.consensus_items,
        masks=evaluation.consensus_masks,
        display=message(N_("the agreed readers")),
    )
    proposal = _reading_of(ai.current_revision, "the AI proposal")
    proposal.display = message(N_("the AI proposal"))
    check = evaluate({**schema, "labels": geometry}, [agreed_readers, proposal], _thresholds(policy), index)
    # Only a disagreement disputes the case: where neither the readers nor the AI drew anything, the AI
    # adds no opinion (its labels are not compared), which must not undo the readers' agreement.
    status = AGREED if check.status != DISAGREED else DISAGREED
    return {
        "key": "ai_third_opinion",
        "kind": "ai_check",
        "status": status,
        "agreed": status == AGREED,
        "metrics": {"ai_revision": ai.current_revision.pk, **{lab.key: lab.metrics for lab in check.labels}},
        "reasons": [f"AI third opinion: {reason}" for label in check.labels for reason in label.reasons],
        "messages": [message(R_AI_THIRD_OPINION, reason=msg) for label in check.labels for msg in label.messages],
    }


def _store_consensus(case: Case, evaluation: Evaluation, template: AnnotationRevision) -> None:
    annotation_save_derived(
        case=case,
        role=CONSENSUS_ROLE,
        items=evaluation.consensus_items,
        masks=evaluation.consensus_masks,
        schema=template.schema,
    )


def case_send_to_panel(*, case: Case, actor: User | None, locked: bool = False) -> list[Assignment]:
    """Disputed -> in panel, and seat the panel: experts who did not read the case, balanced.

    A project without experts yet still sends the case to the panel (rather than failing the reader's
    submission after it was stored): experts who join later claim the seats from their worklist."""
    case_transition(case=case, to=CaseStatus.IN_PANEL, actor=actor, message=message(E_TO_PANEL), locked=locked)
    if not experts_of(case.project):
        return []
    return assignments_distribute(project=case.project, role=ReadingRole.PANEL_MEMBER, assigned_by=actor, cases=[case])


def verification_decide(
    *, case: Case, reviewer: User, outcome: str, reason: str, values: Any = None, base_revision: int = 0
) -> Case:
    """Level 2 in verification mode: the second reader accepts, corrects or rejects the first reading."""
    policy = policy_for(case)
    if policy.mode != ReviewPolicy.Mode.VERIFICATION:
        raise ConflictError(
            gettext("Project %(project)s uses blind double reading, not verification") % {"project": case.project.name}
        )
    if case.status != CaseStatus.AWAITING_CROSS_VERIFICATION:
        raise ConflictError(gettext("Case %(case)s is not awaiting verification") % {"case": case.pk})
    assignment = Assignment.objects.filter(case=case, user=reviewer, role=ReadingRole.SECOND_READER).first()
    if assignment is None or assignment.status != Assignment.Status.ACTIVE:
        raise PermissionDeniedError(
            gettext("Case %(case)s is not assigned to you for verification") % {"case": case.pk}
        )
    first = _submitted_readings(case)
    if not first or first[0].current_revision is None:
        raise ConflictError(gettext("Case %(case)s has no submitted first reading to verify") % {"case": case.pk})
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
        _assignment_submitted(assignment.pk)
        case_transition(
            case=case,
            to=CaseStatus.AGREED,
            actor=reviewer,
            message=_said(E_ACCEPTED, reason),
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
        _verification_corrected(case=case, reviewer=reviewer, revision=revision, said=_said(E_CORRECTED, reason))
    elif outcome == "reject":
        if not reason.strip():
            raise ApplicationError(gettext("A rejection needs a reason"), code="reason_required")
        _assignment_submitted(assignment.pk)
        case_transition(
            case=case, to=CaseStatus.DISPUTED, actor=reviewer, reason=reason, metrics={"verification": "rejected"}
        )
        case_send_to_panel(case=case, actor=reviewer)
    else:
        raise ApplicationError(f"Unknown outcome {outcome!r}: use accept, correct or reject", code="bad_outcome")
    case.refresh_from_db()
    return case


def _said(what: str, reason: str) -> Message:
    """A verification's event: the reviewer's own words when given (data, shown as written), else what happened."""
    return message("%(reason)s", reason=reason) if reason.strip() else message(what)


def _verification_corrected(*, case: Case, reviewer: User, revision: AnnotationRevision, said: Message) -> None:
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
        message=said,
        metrics={"verification": "corrected", "corrected_revision": revision.pk},
    )


@transaction.atomic
def panel_vote(
    *,
    case: Case,
    expert: User,
    rationale: str,
    voted_for: AnnotationRevision | None = None,
    values: Any = None,
    seed: AnnotationRevision | None = None,
    corrected: AnnotationRevision | None = None,
) -> PanelVote:
    """An expert votes for one reading, or submits a corrected label; the decision follows by the committee rules
    (panel_decision).

    A corrected label is given whole (``values``, optionally with the ``seed`` reading it was made from), or is the
    expert's correction made in the reader editor and just submitted (``corrected``, see review.corrections)."""
    # Votes on one case are taken one at a time: two experts voting at once must not both count the votes
    # without the other's, nor both decide the case.
    case = Case.objects.select_for_update().select_related("project").get(pk=case.pk)
    policy = policy_for(case)
    if case.status == CaseStatus.ADJUDICATED:
        raise ConflictError(gettext("The panel has already decided case %(case)s") % {"case": case.pk})
    if case.status != CaseStatus.IN_PANEL:
        raise ConflictError(gettext("Case %(case)s is not in the panel") % {"case": case.pk})
    if not rationale.strip():
        raise ApplicationError(gettext("A vote needs a rationale"), code="rationale_required")
    seat = Assignment.objects.filter(case=case, user=expert, role=ReadingRole.PANEL_MEMBER).first()
    if seat is None:
        raise PermissionDeniedError(gettext("You do not sit on the panel of case %(case)s") % {"case": case.pk})
    if PanelVote.objects.filter(case=case, expert=expert).exists():
        raise ConflictError(gettext("You have already voted on case %(case)s") % {"case": case.pk})
    if sum(choice is not None for choice in (voted_for, values, corrected)) != 1:
        raise ApplicationError(gettext("Vote for one reading or give a corrected label, not both"), code="bad_vote")
    if voted_for is not None:
        allowed = {a.current_revision_id for a in _submitted_readings(case)}
        allowed |= set(Annotation.objects.filter(case=case, role="ai").values_list("current_revision_id", flat=True))
        # Another expert's corrected label may be endorsed: the vote then counts for that correction, so a
        # correction the panel agrees with can win instead of standing alone with its author's vote.
        corrections = set(
            PanelVote.objects.filter(case=case, corrected__isnull=False).values_list("corrected_id", flat=True)
        )
        allowed |= corrections
        if voted_for.pk not in allowed:
            raise ApplicationError(
                gettext("That revision is not one of this case's readings or the panel's corrections"), code="bad_vote"
            )
        if policy.adjudicator_corrects and voted_for.pk not in corrections:
            # The policy asks the panel for its own label: a reading or the AI proposal is a starting point for a
            # correction (its seed), not a decision as drawn.
            raise ApplicationError(
                gettext(
                    "This project's panel submits a corrected label, made from a reading if you like, or endorses "
                    "a colleague's correction: a vote for a reading or the AI proposal as drawn is not accepted"
                ),
                code="correction_required",
            )
    elif values is not None:
        from review.corrections import correction_record_whole

        corrected = correction_record_whole(case=case, expert=expert, values=values, seed=seed)
    vote = PanelVote.objects.create(
        case=case, expert=expert, voted_for=voted_for, corrected=corrected, rationale=rationale
    )
    _assignment_submitted(seat.pk)
    _decide_if_due(case, policy, actor=expert, now=timezone.now())
    return vote


def _assignment_submitted(assignment_id: int) -> None:
    """A verification or a vote is the end of that assignment: it counts in reader times like a submitted reading."""
    Assignment.objects.filter(pk=assignment_id).update(status=Assignment.Status.SUBMITTED, submitted_at=timezone.now())


class PanelRule:
    """How a panel decision was reached (the event's ``rule``)."""

    MAJORITY = "majority"  # more than half of the votes cast, at quorum
    PLURALITY = "plurality"  # no majority, but every seated member voted (or the deadline passed): the most votes
    CHAIR = "casting_vote_chair"  # a tie: the chair's vote decides
    SENIOR = "casting_vote_senior_expert"  # a tie, and the chair cannot cast: the most senior seated expert's vote


@dataclass(frozen=True)
class PanelDecision:
    winner: int  # revision id
    rule: str
    tally: list[tuple[int, int]]  # (revision id, votes), most votes first, then in the order first voted for
    cast: int
    seated: int
    deadline_passed: bool  # the deadline let it decide without every seated member's vote
    casting_voter: str = ""
    casting_note: Message | None = None  # why the chair did not cast, when the senior expert did

    @property
    def count(self) -> str:
        return "-".join(str(votes) for _, votes in self.tally)


@dataclass(frozen=True)
class Ballot:
    expert_id: int
    expert: str
    choice: int  # revision id


def panel_decision(
    *,
    ballots: list[Ballot],
    seated: int,
    quorum: int,
    casting_order: list[tuple[int, str, bool]],
    deadline_passed: bool,
) -> PanelDecision | None:
    """The committee rules, on the votes cast so far (in the order cast); None while the panel must wait.

    - Nothing before quorum (capped at the seats: a panel with fewer experts than its size can still decide).
    - At quorum, a majority of the votes cast decides.
    - Otherwise the panel waits for its seated members who have not voted, unless the deadline passed. Once all
      have voted (or the deadline passed), the option with the most votes wins; a tie among the leaders is
      decided by a casting vote: that of the first in ``casting_order`` (user id, name, is the chair: the chair
      when seated, then the seated experts by seniority) whose vote is for one of the tied options.
    """
    cast = len(ballots)
    if cast == 0 or cast < min(quorum, max(seated, 1)):
        return None
    counts: Counter[int] = Counter()
    for ballot in ballots:
        counts[ballot.choice] += 1  # Counter keeps first-insertion order among equal counts
    tally = sorted(counts.items(), key=lambda item: -item[1])
    top = tally[0][1]

    def decided(winner: int, rule: str, casting_voter: str = "", casting_note: Message | None = None) -> PanelDecision:
        return PanelDecision(
            winner=winner,
            rule=rule,
            tally=tally,
            cast=cast,
            seated=seated,
            # Whether the deadline let the panel decide without every seated member's vote.
            deadline_passed=rule != PanelRule.MAJORITY and cast < seated,
            casting_voter=casting_voter,
            casting_note=casting_note,
        )

    if top * 2 > cast:
        return decided(tally[0][0], PanelRule.MAJORITY)
    if cast < seated and not deadline_passed:
        return None  # a tie (or no majority) while seated members have not voted: wait for them
    leaders = [choice for choice, votes in tally if votes == top]
    if len(leaders) == 1:
        return decided(leaders[0], PanelRule.PLURALITY)
    choice_of = {ballot.expert_id: ballot.choice for ballot in ballots}
    skipped_chair: Message | None = None
    for user_id, name, is_chair in casting_order:
        choice = choice_of.get(user_id)
        if choice in leaders:
            rule = PanelRule.CHAIR if is_chair else PanelRule.SENIOR
            return decided(int(choice), rule, casting_voter=name, casting_note=skipped_chair)
        if is_chair:
            skipped_chair = message(E_CHAIR_ABSENT if choice is None else E_CHAIR_ELSEWHERE, voter=name)
    return None  # unreachable with a complete casting order: every tied option has a voter


def _in_panel_since(case: Case) -> datetime | None:
    return (
        CaseEvent.objects.filter(case=case, to_status=CaseStatus.IN_PANEL)
        .order_by("-created_at", "-pk")
        .values_list("created_at", flat=True)
        .first()
    )


def panel_deadline_of(case: Case, policy: ReviewPolicy) -> datetime | None:
    """When the case's voting deadline passes: the policy's hours after it went to the panel; None without one."""
    if policy.panel_deadline_hours is None:
        return None
    since = _in_panel_since(case)
    return None if since is None else since + timedelta(hours=policy.panel_deadline_hours)


def _casting_order(case: Case, policy: ReviewPolicy) -> list[tuple[int, str, bool]]:
    """Who casts the deciding vote in a tie, in turn: the project's chair when seated on this panel; then (the
    chair read the case, is not an expert of the project, none is set, or the chair's vote is outside the tie)
    the seated experts by seniority, the date they joined the project as experts."""
    seated = dict(
        Assignment.objects.filter(case=case, role=ReadingRole.PANEL_MEMBER).values_list("user_id", "user__username")
    )
    order: list[tuple[int, str, bool]] = []
    if policy.chair_id is not None and policy.chair_id in seated:
        order.append((policy.chair_id, seated[policy.chair_id], True))
    by_seniority = (
        Membership.objects.filter(project_id=case.project_id, role=Role.EXPERT, user_id__in=list(seated))
        .order_by("created_at", "user_id")
        .values_list("user_id", flat=True)
    )
    order += [(user_id, seated[user_id], False) for user_id in by_seniority if user_id != policy.chair_id]
    # Seated users who are no longer experts of the project come last, so that a tie always has a casting vote.
    listed = {user_id for user_id, _, _ in order}
    order += [(user_id, name, False) for user_id, name in sorted(seated.items()) if user_id not in listed]
    return order


def _decide_if_due(case: Case, policy: ReviewPolicy, *, actor: User | None, now: datetime) -> PanelDecision | None:
    """Apply the committee rules to the case's votes; adjudicate when they decide. The case row is locked."""
    votes = with_readings(
        list(
            PanelVote.objects.filter(case=case)
            .select_related("expert", "voted_for__schema", "corrected__schema")
            .order_by("created_at", "pk")
        )
    )
    seated = Assignment.objects.filter(case=case, role=ReadingRole.PANEL_MEMBER).count()
    deadline = panel_deadline_of(case, policy)
    decision = panel_decision(
        ballots=[Ballot(v.expert_id, v.expert.username, int(v.voted_for_id or v.corrected_id or 0)) for v in votes],
        seated=seated,
        quorum=policy.quorum,
        casting_order=_casting_order(case, policy),
        deadline_passed=deadline is not None and now >= deadline,
    )
    if decision is None:
        return None
    revision = AnnotationRevision.objects.select_related("schema").get(pk=decision.winner)
    annotation_save_derived(
        case=case,
        role=ADJUDICATED_ROLE,
        items=revision.items,
        masks=None,
        schema=revision.schema,
        copy_masks_from=revision,
    )
    readings = readings_of_revisions([choice for choice, _ in decision.tally])
    winner = readings[decision.winner]
    said, rule_text = _decision_reason(decision, winner, policy)
    metrics = {
        "votes": [
            {
                "expert": v.expert.username,
                "for": v.voted_for_id or v.corrected_id,
                "corrected": v.corrected_id is not None,
                "reading": v.reading["description"] if v.reading else None,  # type: ignore[attr-defined]
                "rationale": v.rationale,
            }
            for v in votes
        ],
        "winner_revision": decision.winner,
        "winner": winner,
        "tally": [{**readings[choice], "votes": count} for choice, count in decision.tally],
        "count": decision.count,
        "votes_cast": decision.cast,
        "seated": decision.seated,
        "rule": decision.rule,
        "rule_text": rule_text,
        "casting_voter": decision.casting_voter or None,
        "deadline_passed": decision.deadline_passed,
        # Kept for the exports' provenance, which read it: a casting vote (the chair's or the senior expert's) decided.
        "tie_broken_by_chair": decision.rule in (PanelRule.CHAIR, PanelRule.SENIOR),
    }
    correction = Correction.objects.filter(submitted_revision_id=decision.winner).first()
    if correction is not None:
        # The final label is the expert's corrected label: which of its parts came from whom goes with it.
        metrics["correction"] = correction.pk
        metrics["provenance"] = correction.provenance
    case_transition(case=case, to=CaseStatus.ADJUDICATED, actor=actor, message=said, metrics=metrics)
    return decision


def _winner_text(winner: dict[str, Any]) -> Message:
    reading = winner.get("description_message") or message(str(winner["description"]))
    reader = winner.get("reader")
    if reader and winner["role"] in (ReadingRole.FIRST_READER, ReadingRole.SECOND_READER):
        return message(E_WINNER_BY, reading=reading, reader=reader)
    return reading


def _decision_reason(decision: PanelDecision, winner: dict[str, Any], policy: ReviewPolicy) -> tuple[Message, str]:
    """The event's reason, for people, and the rule applied in words."""
    won = _winner_text(winner)
    count = {"count": decision.count, "cast": decision.cast, "seated": decision.seated}
    if decision.rule == PanelRule.MAJORITY:
        return message(E_MAJORITY, votes=message(E_VOTES, **count), winner=won), "majority"
    if decision.deadline_passed:
        votes = message(E_VOTES_DEADLINE, **count, hours=policy.panel_deadline_hours)
    else:
        votes = message(E_VOTES, **count)
    if decision.rule == PanelRule.PLURALITY:
        rule_text = "most votes, no majority" + (" (deadline passed)" if decision.deadline_passed else "")
        return message(E_PLURALITY, votes=votes, winner=won), rule_text
    if decision.rule == PanelRule.CHAIR:
        who = message(E_CHAIR, voter=decision.casting_voter)
    else:
        why = decision.casting_note or message(E_NO_CHAIR if policy.chair_id is None else E_CHAIR_OFF_PANEL)
        who = message(E_SENIOR, voter=decision.casting_voter, why=why)
    rule_text = "casting vote of the chair" if decision.rule == PanelRule.CHAIR else "casting vote of the senior expert"
    if decision.deadline_passed:
        rule_text += " (deadline passed)"
    return message(E_CASTING, votes=votes, who=who, winner=won), rule_text


def panel_deadlines_apply(*, now: datetime | None = None) -> list[int]:
    """Decide the cases in panel whose voting deadline passed and whose votes cast then decide (quorum reached).

    Safe to run at any time and more than once (a periodic task or ``manage.py apply_panel_deadlines``): each case
    is locked, and a case decided meanwhile is no longer in panel. Returns the ids of the cases decided."""
    now = now or timezone.now()
    decided = []
    candidates = Case.objects.filter(
        status=CaseStatus.IN_PANEL, project__review_policy__panel_deadline_hours__isnull=False
    ).values_list("pk", flat=True)
    for case_id in candidates:
        with transaction.atomic():
            case = Case.objects.select_for_update().select_related("project").get(pk=case_id)
            if case.status != CaseStatus.IN_PANEL:
                continue
            policy = policy_for(case)
            deadline = panel_deadline_of(case, policy)
            if deadline is None or now < deadline:
                continue
            if _decide_if_due(case, policy, actor=None, now=now) is not None:
                decided.append(case.pk)
    return decided


def panel_members_of(case: Case) -> list[int]:
    return list(Assignment.objects.filter(case=case, role=ReadingRole.PANEL_MEMBER).values_list("user_id", flat=True))


def experts_of(project: Any) -> list[int]:
    return list(Membership.objects.filter(project=project, role=Role.EXPERT).values_list("user_id", flat=True))
