"""Adaptive second reading (issue 14 item 2): decide after the first reading whether a second one is needed.

A single reading is accepted when both hold:
- the case's AI proposal (the machine annotation of role "ai" that the inference app stores through
  annotation.services.annotation_save_machine) agrees with the reading, compared by the agreement check itself
  (review.evaluation.evaluate, the AI as the second reader, the project's thresholds) on the labels the AI
  answers and the lesion and mask labels;
- the reader's record reaches the policy's bar: their exact agreement with gold references and their share of
  double-read cases agreed with a peer, each once it counts enough cases (and at least one must).
Otherwise the case goes to a second reader, and on disagreement to the panel as always.

The budget: the policy's target share of first readings that get a second one. A case that fails a check always
gets one; a case that passes is sent to a second reader too while the share so far (over the project's adaptive
decisions) is under the target, so the share holds over a batch even when few cases fail, and the second
readings it buys keep measuring the readers against their peers. Decisions are taken one at a time (the policy
row is locked), so two submissions at once cannot both count the same share.

Every decision is the case's transition event (to single_read or to awaiting_cross_verification), with its
reason in words and in ``metrics``: routing, reason codes, the AI comparison, the reader's record, the budget.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from annotation.models import Annotation, AnnotationRevision, Case, CaseStatus, Project, ReadingRole
from config.types import User
from review.evaluation import AGREED, DISAGREED, evaluate
from review.gold import reader_gold_record
from review.models import AgreementResult, CaseEvent, GoldCase, PanelVote, ReviewPolicy
from review.workflow import case_transition

SINGLE = "single"
SECOND = "second"
GEOMETRY_KINDS = ("box", "polygon", "point", "mask")

# Reason codes (metrics["reasons"]); the event's reason says the same in words.
AI_AGREES = "ai_agrees"
AI_DISAGREES = "ai_disagrees"
NO_AI_PROPOSAL = "no_ai_proposal"
RECORD_OK = "record_above_bar"
RECORD_BELOW_BAR = "record_below_bar"
RECORD_TOO_SHORT = "record_too_short"
BUDGET_FILL = "budget_below_target"


@dataclass(frozen=True)
class Route:
    second: bool
    codes: list[str]
    reasons: list[str]


def route_decision(
    *, ai: dict[str, Any], record: dict[str, Any], second_reads: int, decided: int, target: float
) -> Route:
    """The routing rule, on what was measured: pure, so the budget can be checked over any sequence."""
    codes = [ai["code"], record["code"]]
    reasons = [ai["text"], record["text"]]
    if ai["code"] != AI_AGREES or record["code"] != RECORD_OK:
        return Route(second=True, codes=codes, reasons=reasons)
    # Both checks pass: a second reading only to keep the share of second readings at its target.
    if second_reads < target * (decided + 1) - 1e-9:
        share = second_reads / decided if decided else 0.0
        codes.append(BUDGET_FILL)
        reasons.append(
            f"second readings so far {second_reads} of {decided} ({share:.0%}), under the target {target:.0%}"
        )
        return Route(second=True, codes=codes, reasons=reasons)
    return Route(second=False, codes=codes, reasons=reasons)


def ai_check(case: Case, revision: AnnotationRevision, policy: ReviewPolicy) -> dict[str, Any]:
    """Compare the reading with the case's AI proposal, the AI as the second reader."""
    from review.services import _reading_of, _slice_index, _thresholds

    ai = (
        Annotation.objects.filter(case=case, role="ai", current_revision__isnull=False)
        .select_related("current_revision")
        .order_by("-pk")
        .first()
    )
    if ai is None or ai.current_revision is None:
        return {"code": NO_AI_PROPOSAL, "text": "no AI proposal for this case", "status": None}
    proposal = ai.current_revision
    schema = revision.schema.definition
    answered = {item["label"] for item in proposal.items}
    labels = [
        label for label in schema.get("labels", []) if label["key"] in answered or label["kind"] in GEOMETRY_KINDS
    ]
    check = evaluate(
        {**schema, "labels": labels},
        [_reading_of(revision, "the reading"), _reading_of(proposal, "the AI proposal")],
        _thresholds(policy),
        _slice_index(case),
    )
    base = {"ai_revision": proposal.pk, "model_version": proposal.model_version, "status": check.status}
    if check.status == AGREED:
        return {**base, "code": AI_AGREES, "text": "the AI proposal agrees with the reading"}
    why = "; ".join(check.reasons) if check.status == DISAGREED else "nothing the AI answered could be compared"
    return {**base, "code": AI_DISAGREES, "text": f"the AI proposal does not agree: {why}"}


def reader_record(project: Project, reader: User | None, policy: ReviewPolicy) -> dict[str, Any]:
    """The reader's gold and peer records against the policy's bar."""
    bar, needed = policy.adaptive_min_agreement, policy.adaptive_min_record_cases
    if reader is None:
        return {"code": RECORD_TOO_SHORT, "text": "no reader", "bar": bar}
    gold = reader_gold_record(project, reader)
    results = list(
        AgreementResult.objects.filter(case__project=project, revisions__annotation__reader=reader)
        .order_by("case_id", "-created_at", "-pk")
        .distinct()
        .values_list("case_id", "agreed")
    )
    latest: dict[int, bool] = {}
    for case_id, agreed in results:
        latest.setdefault(case_id, agreed)
    peer_cases = len(latest)
    peer = sum(latest.values()) / peer_cases if peer_cases else None
    record: dict[str, Any] = {
        "bar": bar,
        "min_cases": needed,
        "gold": {"cases": gold["cases"], "exact_agreement": gold["exact_agreement"]},
        "peer": {"cases": peer_cases, "agreement": None if peer is None else round(peer, 4)},
    }
    measured = []
    if gold["cases"] >= needed and gold["exact_agreement"] is not None:
        measured.append(("gold agreement", float(gold["exact_agreement"])))
    if peer_cases >= needed and peer is not None:
        measured.append(("peer agreement", peer))
    if not measured and needed == 0:
        return {**record, "code": RECORD_OK, "text": "the policy asks for no record (0 cases)"}
    if not measured:
        text = (
            f"{reader.username}'s record is too short: {gold['cases']} gold and {peer_cases} double-read case(s), "
            f"{needed} needed"
        )
        return {**record, "code": RECORD_TOO_SHORT, "text": text}
    below = [f"{name} {value:.0%}" for name, value in measured if value < bar]
    if below:
        text = f"{reader.username}'s record is under the bar of {bar:.0%}: {', '.join(below)}"
        return {**record, "code": RECORD_BELOW_BAR, "text": text}
    shown = ", ".join(f"{name} {value:.0%}" for name, value in measured)
    return {**record, "code": RECORD_OK, "text": f"{reader.username}'s record reaches the bar of {bar:.0%} ({shown})"}


def routing_counts(project: Project) -> tuple[int, int]:
    """(second readings routed, decisions taken) over the project's adaptive decisions so far."""
    decisions = CaseEvent.objects.filter(case__project=project, metrics__has_key="routing")
    return decisions.filter(metrics__routing=SECOND).count(), decisions.count()


def adaptive_route(*, case: Case, annotation: Annotation, actor: User, policy: ReviewPolicy) -> Route:
    """Route a case whose first reading was just submitted (review.services._hand_over; the case row is locked)."""
    # One decision at a time per project: the budget counts the decisions before this one.
    ReviewPolicy.objects.select_for_update().filter(pk=policy.pk).values_list("pk", flat=True).first()
    assert annotation.current_revision_id is not None  # a submitted reading has its final revision
    revision = AnnotationRevision.objects.select_related("schema").get(pk=annotation.current_revision_id)
    ai = ai_check(case, revision, policy)
    record = reader_record(case.project, annotation.reader, policy)
    second_reads, decided = routing_counts(case.project)
    target = policy.second_read_target
    route = route_decision(ai=ai, record=record, second_reads=second_reads, decided=decided, target=target)
    metrics = {
        "routing": SECOND if route.second else SINGLE,
        "reasons": route.codes,
        "ai": ai,
        "reader_record": record,
        "budget": {"target": target, "second_reads_before": second_reads, "decided_before": decided},
    }
    if route.second:
        reason = f"adaptive routing: second reading needed ({'; '.join(route.reasons)})"
        to = CaseStatus.AWAITING_CROSS_VERIFICATION
    else:
        reason = f"adaptive routing: single reading accepted ({'; '.join(route.reasons)})"
        to = CaseStatus.SINGLE_READ
    case_transition(
        case=case, to=to, actor=actor, reason=f"first reading submitted by {actor.username}; {reason}", metrics=metrics
    )
    return route


def reading_routes(project: Project) -> dict[str, Any]:
    """What reading cost the project, for its managers: cases read once, twice, and by the panel (gold cases apart),
    readings per case (panel votes included), and the adaptive decisions with their reasons."""
    gold_ids = set(GoldCase.objects.filter(case__project=project).values_list("case_id", flat=True))
    statuses = Counter(
        status for pk, status in Case.objects.filter(project=project).values_list("pk", "status") if pk not in gold_ids
    )
    once = statuses[CaseStatus.SINGLE_READ]
    twice = statuses[CaseStatus.AGREED]
    panel = statuses[CaseStatus.DISPUTED] + statuses[CaseStatus.IN_PANEL] + statuses[CaseStatus.ADJUDICATED]
    in_reading = statuses[CaseStatus.AWAITING_FIRST_READ] + statuses[CaseStatus.AWAITING_CROSS_VERIFICATION]
    routed = once + twice + panel
    readings = (
        Annotation.objects.filter(
            case__project=project,
            role__in=[ReadingRole.FIRST_READER, ReadingRole.SECOND_READER],
            status=Annotation.Status.SUBMITTED,
        )
        .exclude(case_id__in=gold_ids)
        .count()
    )
    votes = PanelVote.objects.filter(case__project=project).exclude(case_id__in=gold_ids).count()
    decisions = list(
        CaseEvent.objects.filter(case__project=project, metrics__has_key="routing").values_list("metrics", flat=True)
    )
    reasons: Counter[str] = Counter()
    for metrics in decisions:
        reasons.update(str(code) for code in metrics.get("reasons", []))
    seconds = sum(metrics.get("routing") == SECOND for metrics in decisions)

    def share(n: int) -> float | None:
        return round(n / routed, 4) if routed else None

    policy = ReviewPolicy.objects.filter(project=project).first()
    return {
        "cases": {
            "read_once": once,
            "read_twice": twice,
            "by_panel": panel,
            "in_reading": in_reading,
            "gold": len(gold_ids),
        },
        "shares": {"read_once": share(once), "read_twice": share(twice), "by_panel": share(panel)},
        "readings_per_case": round((readings + votes) / routed, 4) if routed else None,
        "readings": readings,
        "panel_votes": votes,
        "adaptive": {
            "decisions": len(decisions),
            "second_reads": seconds,
            "second_read_share": round(seconds / len(decisions), 4) if decisions else None,
            "target": policy.second_read_target if policy and policy.adaptive_second_read else None,
            "reasons": dict(sorted(reasons.items())),
        },
    }
