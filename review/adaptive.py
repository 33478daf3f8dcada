"""Adaptive second reading (issue 14 item 2): decide after the first reading whether a second one is needed.

A single reading is accepted when both hold:
- the case's AI proposal (the machine annotation of role "ai" that the inference app stores through
  annotation.services.annotation_save_machine) agrees with the reading, compared by the agreement check itself
  (review.evaluation.evaluate, the AI as the second reader, the project's thresholds) on the labels the AI
  answers and the lesion and mask labels;
- the reader's record reaches the policy's bar: their exact agreement with gold references once it counts enough
  cases, else (until then) their share of double-read cases agreed with a peer once that does.
Otherwise the case goes to a second reader, and on disagreement to the panel as always.

The budget: the policy's target share of first readings that get a second one. A case that fails a check always
gets one; a case that passes is sent to a second reader too while the share so far (over the project's adaptive
decisions) is under the target, so the share holds over a batch even when few cases fail, and the second
readings it buys keep measuring the readers against their peers. With ``second_read_cap`` the target is a
budget as well: once the share reaches it, a case that fails a check is accepted on its single reading, and the
event says the budget was spent (bench_review --part policies measures what that costs).
Decisions are taken one at a time (the policy row is locked), so two submissions at once cannot both count the
same share.

With ``adaptive_adjudicate`` a case that fails a check goes straight to the panel instead (to disputed, then in
panel), which judges the reading against the AI proposal: with a panel of one (panel_size 1, quorum 1) that is a
single adjudicator, one expert reading where a second reading and a disputed case's three votes would be spent.
Such a routing counts in the budget like a second reading. With ``ReviewPolicy.adjudicator_corrects`` that expert
submits a corrected label (made from the reading or the AI proposal) rather than a vote for one as drawn
(review.services.panel_vote refuses the vote). ``adaptive_mask_dice`` and ``adaptive_number_tolerance``
are the Dice and the number tolerance the AI check asks (else the project's): the other thresholds stay the
project's.

Every decision is the case's transition event (to single_read, to awaiting_cross_verification, or to disputed),
with its reason in words and in ``metrics``: routing, reason codes, the AI comparison, the reader's record, the
budget.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from django.utils.translation import gettext_noop as N_

from annotation.models import Annotation, AnnotationRevision, Case, CaseStatus, Project, ReadingRole
from config.messages import Message, english, message
from config.types import User
from review.evaluation import AGREED, DISAGREED, Evaluation, evaluate
from review.gold import reader_gold_record
from review.models import AgreementResult, CaseEvent, GoldCase, PanelVote, ReviewPolicy
from review.workflow import case_transition

SINGLE = "single"
SECOND = "second"
ADJUDICATION = "adjudication"  # policy.adaptive_adjudicate: a failed check goes straight to the panel
GEOMETRY_KINDS = ("box", "polygon", "point", "mask")

# Reason codes (metrics["reasons"]); the event's reason says the same in words.
AI_AGREES = "ai_agrees"
AI_DISAGREES = "ai_disagrees"
NO_AI_PROPOSAL = "no_ai_proposal"
RECORD_OK = "record_above_bar"
RECORD_BELOW_BAR = "record_below_bar"
RECORD_TOO_SHORT = "record_too_short"
BUDGET_FILL = "budget_below_target"
BUDGET_SPENT = "budget_spent"
TO_ADJUDICATION = "to_adjudication"

# The reasons in words: stored as messages (config.messages), shown in each reader's language.
T_AI_AGREES = N_("the AI proposal agrees with the reading")
T_NO_AI = N_("no AI proposal for this case")
T_AI_DISAGREES = N_("the AI proposal does not agree: %(why)s")
T_AI_NOTHING_COMPARED = N_("nothing the AI answered could be compared")
T_NO_READER = N_("no reader")
T_NO_RECORD_NEEDED = N_("the policy asks for no record (0 cases)")
T_RECORD_TOO_SHORT = N_(
    "%(reader)s's record is too short: %(gold)s gold and %(peer)s double-read case(s), %(needed)s needed"
)
T_RECORD_BELOW = N_("%(reader)s's record is under the bar of %(bar)s: %(below)s")
T_RECORD_OK = N_("%(reader)s's record reaches the bar of %(bar)s (%(measured)s)")
T_GOLD_AGREEMENT = N_("gold agreement %(value)s")
T_PEER_AGREEMENT = N_("peer agreement %(value)s")
T_SPENT = N_("second-reading budget spent: %(done)s of %(decided)s (%(share)s) already, the budget is %(target)s")
T_BUDGET = N_("second readings so far %(done)s of %(decided)s (%(share)s), under the target %(target)s")
E_ROUTED_SECOND = N_("first reading submitted by %(reader)s; adaptive routing: second reading needed (%(reasons)s)")
E_ROUTED_SINGLE = N_("first reading submitted by %(reader)s; adaptive routing: single reading accepted (%(reasons)s)")
T_TO_ADJUDICATION = N_(
    "the policy sends a reading that fails a check to the panel, to be judged against the AI proposal"
)
E_ROUTED_ADJUDICATION = N_(
    "first reading submitted by %(reader)s; adaptive routing: adjudication by the panel needed (%(reasons)s)"
)
E_ROUTED_SINGLE_AI_CONSENSUS = N_(
    "first reading submitted by %(reader)s; adaptive routing: single reading accepted (%(reasons)s); its final "
    "label is the consensus of the reading and the AI proposal"
)


def _percent(value: float) -> str:
    return f"{value:.0%}"


@dataclass(frozen=True)
class Route:
    second: bool
    codes: list[str]
    reasons: list[Message]


def route_decision(
    *, ai: dict[str, Any], record: dict[str, Any], second_reads: int, decided: int, target: float, cap: bool = False
) -> Route:
    """The routing rule, on what was measured: pure, so the budget can be checked over any sequence."""
    codes = [ai["code"], record["code"]]
    reasons = [ai["message"], record["message"]]
    if ai["code"] != AI_AGREES or record["code"] != RECORD_OK:
        if cap and second_reads > target * (decided + 1) + 1e-9:
            # A budget, already spent: the single reading stands. A failed check may take the share one reading
            # over the target, so that the readings bought to fill it never crowd out a case that fails.
            share = second_reads / decided if decided else 0.0
            codes.append(BUDGET_SPENT)
            reasons.append(
                message(T_SPENT, done=second_reads, decided=decided, share=_percent(share), target=_percent(target))
            )
            return Route(second=False, codes=codes, reasons=reasons)
        return Route(second=True, codes=codes, reasons=reasons)
    # Both checks pass: a second reading only to keep the share of second readings at its target.
    # Under a cap a fill never takes the share over the target, which keeps the one reading of headroom that a
    # case failing a check may use.
    fill_to = target * (decided + 1) - (1 if cap else 0)
    if second_reads < fill_to - 1e-9:
        share = second_reads / decided if decided else 0.0
        codes.append(BUDGET_FILL)
        reasons.append(
            message(T_BUDGET, done=second_reads, decided=decided, share=_percent(share), target=_percent(target))
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
        return _said({"code": NO_AI_PROPOSAL, "status": None}, message(T_NO_AI))
    proposal = ai.current_revision
    schema = revision.schema.definition
    answered = {item["label"] for item in proposal.items}
    labels = [
        label for label in schema.get("labels", []) if label["key"] in answered or label["kind"] in GEOMETRY_KINDS
    ]
    thresholds = _thresholds(policy)
    if policy.adaptive_mask_dice is not None:
        thresholds = replace(thresholds, mask_dice=policy.adaptive_mask_dice)
    if policy.adaptive_number_tolerance is not None:
        thresholds = replace(thresholds, number_tolerance=policy.adaptive_number_tolerance)
    check = evaluate(
        {**schema, "labels": labels},
        [_reading_of(revision, "the reading"), _reading_of(proposal, "the AI proposal")],
        thresholds,
        _slice_index(case),
    )
    base = {"ai_revision": proposal.pk, "model_version": proposal.model_version, "status": check.status}
    if check.status == AGREED:
        agreed = _said({**base, "code": AI_AGREES}, message(T_AI_AGREES))
        agreed["compared_labels"] = [label["key"] for label in labels]
        return {**agreed, "evaluation": check}
    why: Any = check.messages if check.status == DISAGREED else message(T_AI_NOTHING_COMPARED)
    return _said({**base, "code": AI_DISAGREES}, message(T_AI_DISAGREES, why=why))


def _said(check: dict[str, Any], said: Message) -> dict[str, Any]:
    """A check's outcome with its reason as a message, and the message's English text (the metrics' readers)."""
    return {**check, "message": said, "text": english(said)}


def reader_record(project: Project, reader: User | None, policy: ReviewPolicy) -> dict[str, Any]:
    """The reader's gold and peer records against the policy's bar."""
    bar, needed = policy.adaptive_min_agreement, policy.adaptive_min_record_cases
    if reader is None:
        return _said({"code": RECORD_TOO_SHORT, "bar": bar}, message(T_NO_READER))
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
    # The gold record, once long enough, is the reader's own accuracy against a reference; the peer record mixes
    # in the skill of whoever read the other half (a good reader paired with a weak one agrees little), so it
    # stands in only while the gold record is too short.
    measured: list[tuple[str, float]] = []
    if gold["cases"] >= needed and gold["exact_agreement"] is not None:
        measured.append((T_GOLD_AGREEMENT, float(gold["exact_agreement"])))
    elif peer_cases >= needed and peer is not None:
        measured.append((T_PEER_AGREEMENT, peer))
    if not measured and needed == 0:
        return _said({**record, "code": RECORD_OK}, message(T_NO_RECORD_NEEDED))
    if not measured:
        too_short = message(
            T_RECORD_TOO_SHORT, reader=reader.username, gold=gold["cases"], peer=peer_cases, needed=needed
        )
        return _said({**record, "code": RECORD_TOO_SHORT}, too_short)
    below = [message(name, value=_percent(value)) for name, value in measured if value < bar]
    if below:
        under = message(T_RECORD_BELOW, reader=reader.username, bar=_percent(bar), below=below)
        return _said({**record, "code": RECORD_BELOW_BAR}, under)
    shown = [message(name, value=_percent(value)) for name, value in measured]
    return _said(
        {**record, "code": RECORD_OK}, message(T_RECORD_OK, reader=reader.username, bar=_percent(bar), measured=shown)
    )


def routing_counts(project: Project) -> tuple[int, int]:
    """(second readings or adjudications routed, decisions taken) over the project's adaptive decisions so far."""
    decisions = CaseEvent.objects.filter(case__project=project, metrics__has_key="routing")
    return decisions.filter(metrics__routing__in=[SECOND, ADJUDICATION]).count(), decisions.count()


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
    route = route_decision(
        ai=ai, record=record, second_reads=second_reads, decided=decided, target=target, cap=policy.second_read_cap
    )
    evaluation: Evaluation | None = ai.pop("evaluation", None)
    # A case that failed a check (not one sent only to fill the budget, whose second reading measures the readers)
    # goes to the panel when the policy says so.
    failed = ai["code"] != AI_AGREES or record["code"] != RECORD_OK
    adjudicate = route.second and failed and policy.adaptive_adjudicate
    if adjudicate:
        route = Route(
            second=True, codes=[*route.codes, TO_ADJUDICATION], reasons=[*route.reasons, message(T_TO_ADJUDICATION)]
        )
    ai_consensus = (
        not route.second
        and ai["code"] == AI_AGREES
        and policy.adaptive_ai_consensus
        and evaluation is not None
        and _compares_every_label(revision, ai.get("compared_labels", []))
    )
    metrics = {
        "routing": ADJUDICATION if adjudicate else SECOND if route.second else SINGLE,
        "reasons": route.codes,
        "ai": ai,
        "reader_record": record,
        "budget": {
            "target": target,
            "cap": policy.second_read_cap,
            "second_reads_before": second_reads,
            "decided_before": decided,
        },
        "ai_consensus": ai_consensus,
    }
    if adjudicate:
        said, to = E_ROUTED_ADJUDICATION, CaseStatus.DISPUTED
    elif route.second:
        said, to = E_ROUTED_SECOND, CaseStatus.AWAITING_CROSS_VERIFICATION
    else:
        said, to = (E_ROUTED_SINGLE_AI_CONSENSUS if ai_consensus else E_ROUTED_SINGLE), CaseStatus.SINGLE_READ
    if ai_consensus:
        from review.services import _store_consensus

        assert evaluation is not None
        _store_consensus(case, evaluation, revision)
    case_transition(
        case=case,
        to=to,
        actor=actor,
        message=message(said, reader=actor.username, reasons=route.reasons),
        metrics=metrics,
    )
    if adjudicate:
        from review.services import case_send_to_panel

        case_send_to_panel(case=case, actor=actor)
    return route


def _compares_every_label(revision: AnnotationRevision, compared: list[str]) -> bool:
    """Whether the AI check compared every label the reading answers: only then is its consensus a whole label
    (a label it did not compare would be dropped, and an attribute could name a region the consensus renumbered)."""
    return {item["label"] for item in revision.items} <= set(compared)


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
    adjudications = sum(metrics.get("routing") == ADJUDICATION for metrics in decisions)

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
            "adjudications": adjudications,
            "second_read_share": round((seconds + adjudications) / len(decisions), 4) if decisions else None,
            "target": policy.second_read_target if policy and policy.adaptive_second_read else None,
            "reasons": dict(sorted(reasons.items())),
        },
    }
