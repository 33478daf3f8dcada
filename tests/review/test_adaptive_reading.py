"""Adaptive second reading (issue 14 item 2), through the API: after the first reading the policy accepts a single
reading when the AI proposal agrees with it and the reader's record reaches the bar, and otherwise sends the case
to a second reader (then the panel on disagreement); each decision is a case event with its reason; the target
share of second readings holds over a batch. AI proposals are stored by the service the inference app uses
(annotation.services.annotation_save_machine)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from annotation.models import Case, CaseStatus, Project
from annotation.services import annotation_save_machine
from imaging.models import Study
from review.adaptive import (
    AI_AGREES,
    AI_DISAGREES,
    BUDGET_FILL,
    NO_AI_PROPOSAL,
    RECORD_OK,
    RECORD_TOO_SHORT,
    route_decision,
)
from review.models import CaseEvent
from tests.review.conftest import API, JSON, claim, ok, save, set_policy

pytestmark = pytest.mark.django_db(transaction=True)
SLUG = "nodules"
EVERY_CASE: dict[str, Any] = {
    "min_qa_level": "single_read",
    "modalities": [],
    "study_date_from": "",
    "study_date_to": "",
}


def routing_event(case_id: int) -> CaseEvent:
    [event] = [e for e in CaseEvent.objects.filter(case_id=case_id).order_by("pk") if "routing" in e.metrics]
    return event


def next_status(client: Client, role: str) -> int:
    return client.post(f"{API}/projects/{SLUG}/worklist/next/", data={"role": role}, content_type=JSON).status_code


def gold_record(manager: Client, annotator: Client, case: Case, chest_values: Any) -> None:
    """Give the annotator a gold record: one gold case read exactly as its reference."""
    set_policy(manager, SLUG, gold_rate=1.0)
    ok(manager.post(f"{API}/cases/{case.pk}/gold/", data={"values": chest_values(case)}, content_type=JSON), 201)
    assert claim(annotator, SLUG, "first_reader") == case.pk
    save(annotator, case.pk, chest_values(case), role="first_reader")
    set_policy(manager, SLUG, gold_rate=0.0)


def test_adaptive_policy_accepts_one_case_and_sends_another_to_a_second_reader(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    gold_case, agreeing, disagreeing = reading_cases
    gold_record(manager, annotator, gold_case, chest_values)
    set_policy(
        manager,
        SLUG,
        adaptive_second_read=True,
        adaptive_min_agreement=0.8,
        adaptive_min_record_cases=1,
        second_read_target=0.0,
    )
    # AI proposals as the inference app stores them: one with the reader's nodule, one with a nodule elsewhere.
    annotation_save_machine(case=agreeing, model_version="nodule-net 1.0", values=chest_values(agreeing))
    far = {"x": 45, "y": 45, "width": 10, "height": 8}
    annotation_save_machine(
        case=disagreeing, model_version="nodule-net 1.0", values=chest_values(disagreeing, geometry=far)
    )
    # No second reader starts before the first reading is routed.
    assert next_status(reviewer, "second_reader") == 204

    for _ in range(2):
        case_id = claim(annotator, SLUG, "first_reader")
        save(annotator, case_id, chest_values(Case.objects.get(pk=case_id)), role="first_reader")

    agreeing.refresh_from_db()
    disagreeing.refresh_from_db()
    assert agreeing.status == CaseStatus.SINGLE_READ
    assert disagreeing.status == CaseStatus.AWAITING_CROSS_VERIFICATION

    accepted = routing_event(agreeing.pk)
    assert accepted.to_status == CaseStatus.SINGLE_READ and accepted.metrics["routing"] == "single"
    assert accepted.metrics["reasons"] == [AI_AGREES, RECORD_OK]
    assert "single reading accepted" in accepted.reason and "AI proposal agrees" in accepted.reason
    assert accepted.metrics["reader_record"]["gold"]["cases"] == 1

    routed = routing_event(disagreeing.pk)
    assert routed.to_status == CaseStatus.AWAITING_CROSS_VERIFICATION and routed.metrics["routing"] == "second"
    assert routed.metrics["reasons"] == [AI_DISAGREES, RECORD_OK]
    assert "second reading needed" in routed.reason and "Nodule bounding box" in routed.reason
    # The manager reads the decisions with their reasons in the case history.
    history = ok(manager.get(f"{API}/cases/{disagreeing.pk}/events/"))
    assert any("adaptive routing" in event["reason"] for event in history)

    # The second reader gets only the routed case; disagreeing with the first reading sends it to the panel.
    assert claim(reviewer, SLUG, "second_reader") == disagreeing.pk
    save(reviewer, disagreeing.pk, chest_values(disagreeing, nodule_present="no", box=False), role="second_reader")
    disagreeing.refresh_from_db()
    assert disagreeing.status == CaseStatus.IN_PANEL
    assert next_status(reviewer, "second_reader") == 204  # the accepted case never opened to a second reader

    # The managers' figures: cases read once, twice, by the panel (the gold case apart), and the routing reasons.
    assert reviewer.get(f"{API}/projects/{SLUG}/reading-routes/").status_code == 403
    routes = ok(manager.get(f"{API}/projects/{SLUG}/reading-routes/"))
    assert routes["cases"] == {"read_once": 1, "read_twice": 0, "by_panel": 1, "in_reading": 0, "gold": 1}
    assert routes["shares"] == {"read_once": 0.5, "read_twice": 0.0, "by_panel": 0.5}
    assert routes["readings_per_case"] == 1.5  # one reading, then two (no panel vote yet)
    assert routes["adaptive"]["decisions"] == 2 and routes["adaptive"]["second_reads"] == 1
    assert routes["adaptive"]["reasons"] == {AI_AGREES: 1, AI_DISAGREES: 1, RECORD_OK: 2}


def test_a_reader_without_a_record_gets_a_second_reading(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator = clients["manager"], clients["annotator"]
    set_policy(manager, SLUG, adaptive_second_read=True, adaptive_min_record_cases=3, second_read_target=0.0)
    case = reading_cases[0]
    annotation_save_machine(case=case, model_version="nodule-net 1.0", values=chest_values(case))
    case_id = claim(annotator, SLUG, "first_reader")
    assert case_id == case.pk
    save(annotator, case_id, chest_values(case), role="first_reader")
    event = routing_event(case_id)
    assert event.metrics["reasons"] == [AI_AGREES, RECORD_TOO_SHORT]
    assert "record is too short" in event.reason and event.to_status == CaseStatus.AWAITING_CROSS_VERIFICATION
    # Without an AI proposal the case is read twice, whatever the record.
    other_id = claim(annotator, SLUG, "first_reader")
    save(annotator, other_id, chest_values(Case.objects.get(pk=other_id)), role="first_reader")
    assert NO_AI_PROPOSAL in routing_event(other_id).metrics["reasons"]


def batch_cases(project: Project, n: int) -> list[Case]:
    """``n`` more cases on studies known by their metadata only: study-level labels need no images."""
    made = []
    for i in range(n):
        study = Study.objects.create(store=project.image_store, study_instance_uid=f"1.2.826.0.1.3680043.99.{i + 1}")
        made.append(Case.objects.create(project=project, study=study))
    return made


TOLERANCE = 0.05  # one case in twenty


def test_the_second_reading_budget_holds_over_a_batch(
    reading_project: Project, clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator = clients["manager"], clients["annotator"]
    Case.objects.filter(project=reading_project).delete()  # the batch alone
    cases = batch_cases(reading_project, 20)
    # No record asked for (0 cases): the AI check and the budget decide.
    set_policy(
        manager,
        SLUG,
        adaptive_second_read=True,
        adaptive_min_record_cases=0,
        adaptive_min_agreement=0.0,
        second_read_target=0.4,
    )
    # The AI disagrees on 3 of the 20 (it says "no" where the reader says "yes"); those always get a second reading.
    disagree = {cases[i].pk for i in (2, 9, 15)}
    for case in cases:
        answer = "no" if case.pk in disagree else "yes"
        annotation_save_machine(
            case=case, model_version="nodule-net 1.0", values={"items": [{"label": "nodule_present", "value": answer}]}
        )
    for _ in cases:
        case_id = claim(annotator, SLUG, "first_reader")
        save(annotator, case_id, {"items": [{"label": "nodule_present", "value": "yes"}]}, role="first_reader")

    routes = {case.pk: routing_event(case.pk).metrics for case in cases}
    second = [pk for pk, metrics in routes.items() if metrics["routing"] == "second"]
    share = len(second) / len(cases)
    print(f"second-reading share over the batch: {len(second)}/{len(cases)} = {share:.2f}")
    assert abs(share - 0.4) <= TOLERANCE, share
    assert disagree <= set(second)  # a failed check is never traded for the budget
    filled = [pk for pk in second if BUDGET_FILL in routes[pk]["reasons"]]
    assert len(filled) == len(second) - len(disagree) and filled
    assert Case.objects.filter(pk__in=second, status=CaseStatus.AWAITING_CROSS_VERIFICATION).count() == len(second)
    assert Case.objects.filter(project=reading_project, status=CaseStatus.SINGLE_READ).count() == 20 - len(second)


@pytest.mark.parametrize(("target", "failing_every"), [(0.2, 0), (0.4, 7), (0.6, 4), (0.4, 2)])
def test_route_decision_budget_over_200_decisions(target: float, failing_every: int) -> None:
    """The rule alone: the share stays at the target (within one decision) unless failed checks exceed it."""
    seconds = decided = failed = 0
    for i in range(200):
        fails = failing_every and i % failing_every == 0
        failed += bool(fails)
        ai = {"code": AI_DISAGREES if fails else AI_AGREES, "message": {}}
        route = route_decision(
            ai=ai, record={"code": RECORD_OK, "message": {}}, second_reads=seconds, decided=decided, target=target
        )
        seconds += route.second
        decided += 1
    assert seconds / decided == pytest.approx(max(target, failed / decided), abs=1 / decided + 1e-9)


@pytest.mark.parametrize(("target", "failing_every"), [(0.2, 2), (0.4, 1), (0.6, 1), (0.3, 7)])
def test_a_capped_budget_holds_the_share_at_the_target_even_when_most_cases_fail_a_check(
    target: float, failing_every: int
) -> None:
    """With the cap the share never exceeds the target (within one decision); failed checks take the budget first,
    and a failed check accepted on a single reading says the budget was spent."""
    from review.adaptive import BUDGET_SPENT

    seconds = decided = spent = failed_second = 0
    for i in range(200):
        fails = i % failing_every == 0
        route = route_decision(
            ai={"code": AI_DISAGREES if fails else AI_AGREES, "message": {}},
            record={"code": RECORD_OK, "message": {}},
            second_reads=seconds,
            decided=decided,
            target=target,
            cap=True,
        )
        if fails and not route.second:
            assert BUDGET_SPENT in route.codes
            spent += 1
        failed_second += bool(fails and route.second)
        seconds += route.second
        decided += 1
        assert seconds <= target * decided + 1 + 1e-9
    assert seconds / decided == pytest.approx(target, abs=2 / decided + 1e-9)
    failed = len([i for i in range(200) if i % failing_every == 0])
    assert failed_second + spent == failed
    # Fills never take the budget from a case that fails: spent only when failing cases alone exceed it.
    assert spent == max(0, failed - failed_second) and failed_second >= min(failed, round(target * 200) - 1)


def test_an_accepted_single_reading_can_take_the_consensus_with_the_agreeing_ai_proposal(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    """With adaptive_ai_consensus, the AI proposal that let a single reading through is merged with it as a second
    reader's would be (boxes averaged, masks by the mask rule); the export takes that label; without
    the option the reader's own label stays final. The routing reason is stored as a message and read in Chinese."""
    from annotation.models import Annotation
    from annotation.services import load_mask
    from datasets.selectors import select_cases
    from review.services import CONSENSUS_ROLE
    from tests.annotation.conftest import mask_for

    manager, annotator = clients["manager"], clients["annotator"]
    set_policy(
        manager,
        SLUG,
        adaptive_second_read=True,
        adaptive_min_record_cases=0,
        second_read_target=0.0,
        adaptive_ai_consensus=True,
        number_tolerance=2.0,
    )
    merged_case, plain_case = reading_cases[0], reading_cases[1]
    reader_mask = mask_for(merged_case)
    ai_mask = reader_mask.copy()
    ai_mask[2:4, 28, 22:30] = 1  # one more row of voxels: Dice 0.94 with the reader's
    for case in (merged_case, plain_case):
        ai_values = chest_values(
            case, geometry={"x": 22, "y": 22, "width": 10, "height": 8}, diameter=7.5, mask=ai_mask
        )
        annotation_save_machine(case=case, model_version="nodule-net 1.0", values=ai_values)

    case_id = claim(annotator, SLUG, "first_reader")
    assert case_id == merged_case.pk
    save(annotator, case_id, chest_values(merged_case, mask=reader_mask), role="first_reader")
    merged_case.refresh_from_db()
    event = routing_event(merged_case.pk)
    assert merged_case.status == CaseStatus.SINGLE_READ, event.reason
    assert event.metrics["ai_consensus"] is True and "consensus of the reading and the AI proposal" in event.reason

    consensus = Annotation.objects.get(case=merged_case, role=CONSENSUS_ROLE).current_revision
    assert consensus is not None
    [box] = [i for i in consensus.items if i["label"] == "nodule_box"]
    assert box["geometry"]["x"] == pytest.approx(21.0)  # between the reader's 20 and the AI's 22
    [diameter] = [i for i in consensus.items if i["label"] == "diameter"]
    assert diameter["value"] == pytest.approx(6.5)  # numbers within the tolerance keep the reading's value
    [stored] = list(consensus.masks.all())
    merged = load_mask(stored) != 0
    assert (reader_mask != 0)[merged].all() or merged[reader_mask != 0].all()  # built from the two, not new
    assert merged.sum() != 0
    [selected] = [s for s in select_cases(project=merged_case.project, **EVERY_CASE) if s.case_id == merged_case.pk]
    assert selected.revision_id == consensus.pk and selected.qa_level == "single_read"

    # The reason in Chinese, from the stored message.
    history = ok(manager.get(f"{API}/cases/{merged_case.pk}/events/", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    [routed] = [e for e in history if e.get("to_status") == CaseStatus.SINGLE_READ]
    assert "自适应" in routed["reason"] and "AI" in routed["reason"], routed["reason"]

    # Without the option, the reader's own label is final.
    set_policy(manager, SLUG, adaptive_ai_consensus=False)
    case_id = claim(annotator, SLUG, "first_reader")
    assert case_id == plain_case.pk
    save(annotator, case_id, chest_values(plain_case, mask=reader_mask), role="first_reader")
    plain_case.refresh_from_db()
    assert plain_case.status == CaseStatus.SINGLE_READ
    assert not Annotation.objects.filter(case=plain_case, role=CONSENSUS_ROLE).exists()
    [selected] = [s for s in select_cases(project=plain_case.project, **EVERY_CASE) if s.case_id == plain_case.pk]
    first = Annotation.objects.get(case=plain_case, role="first_reader")
    assert selected.revision_id == first.current_revision_id


def test_a_reading_that_fails_a_check_can_go_straight_to_a_single_adjudicator(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    """With adaptive_adjudicate (and a panel of one), a first reading the AI proposal disagrees with goes to the
    panel without a second reading; the one seated expert judges it against the AI proposal and decides it. A
    reading the AI agrees with is still accepted alone. Each decision is its routing event, with its reason in
    English and Chinese, and the managers' figures count the adjudication."""
    from annotation.models import Annotation, Assignment, ReadingRole
    from review.adaptive import TO_ADJUDICATION
    from review.services import ADJUDICATED_ROLE

    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    policy = set_policy(
        manager,
        SLUG,
        adaptive_second_read=True,
        adaptive_min_record_cases=0,
        second_read_target=0.0,
        adaptive_adjudicate=True,
        panel_size=1,
        quorum=1,
    )
    assert policy["adaptive_adjudicate"] is True and policy["adaptive_mask_dice"] is None
    agreeing, disagreeing = reading_cases[0], reading_cases[1]
    annotation_save_machine(case=agreeing, model_version="nodule-net 1.0", values=chest_values(agreeing))
    far = {"x": 45, "y": 45, "width": 10, "height": 8}
    annotation_save_machine(
        case=disagreeing, model_version="nodule-net 1.0", values=chest_values(disagreeing, geometry=far)
    )
    for _ in range(2):
        case_id = claim(annotator, SLUG, "first_reader")
        save(annotator, case_id, chest_values(Case.objects.get(pk=case_id)), role="first_reader")
    agreeing.refresh_from_db()
    disagreeing.refresh_from_db()
    assert agreeing.status == CaseStatus.SINGLE_READ
    assert disagreeing.status == CaseStatus.IN_PANEL  # one reading, no second reader

    routed = routing_event(disagreeing.pk)
    assert routed.to_status == CaseStatus.DISPUTED and routed.metrics["routing"] == "adjudication"
    assert routed.metrics["reasons"] == [AI_DISAGREES, RECORD_OK, TO_ADJUDICATION]
    assert "adjudication by the panel needed" in routed.reason and "judged against the AI proposal" in routed.reason
    history = ok(manager.get(f"{API}/cases/{disagreeing.pk}/events/", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    [said] = [e for e in history if e.get("to_status") == CaseStatus.DISPUTED]
    assert "自适应" in said["reason"] and "仲裁" in said["reason"], said["reason"]
    assert next_status(reviewer, "second_reader") == 204  # no second reading was asked for

    # One expert is seated; their vote for the AI proposal decides the case.
    seats = Assignment.objects.filter(case=disagreeing, role=ReadingRole.PANEL_MEMBER)
    assert seats.count() == 1
    [seat] = list(seats.select_related("user"))
    seated = seat.user.username  # the clients are keyed by username
    ai = Annotation.objects.get(case=disagreeing, role="ai")
    ok(
        clients[seated].post(
            f"{API}/cases/{disagreeing.pk}/votes/",
            {"voted_for_annotation": ai.pk, "rationale": "the AI outline is the nodule"},
            JSON,
        ),
        201,
    )
    disagreeing.refresh_from_db()
    assert disagreeing.status == CaseStatus.ADJUDICATED
    final = Annotation.objects.get(case=disagreeing, role=ADJUDICATED_ROLE).current_revision
    assert final is not None
    [box] = [i for i in final.items if i["label"] == "nodule_box"]
    assert box["geometry"]["x"] == far["x"]

    routes = ok(manager.get(f"{API}/projects/{SLUG}/reading-routes/"))
    assert routes["adaptive"]["adjudications"] == 1 and routes["adaptive"]["second_reads"] == 0
    assert routes["adaptive"]["second_read_share"] == 0.5
    assert routes["readings_per_case"] == 1.5  # two readings and one vote over two cases


def test_the_routing_outline_bar_is_the_policys_own_and_validated(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    """adaptive_mask_dice: the AI check's Dice for masks (the project's mask_dice otherwise); out of range is a 400
    naming the field, and nothing is stored (adaptive_number_tolerance likewise)."""
    from tests.annotation.conftest import mask_for

    manager, annotator = clients["manager"], clients["annotator"]
    bad = manager.patch(f"{API}/projects/{SLUG}/review-policy/", {"adaptive_mask_dice": 1.5}, JSON)
    assert bad.status_code == 400 and "adaptive_mask_dice" in bad.json(), bad.json()
    negative = manager.patch(f"{API}/projects/{SLUG}/review-policy/", {"adaptive_number_tolerance": -1}, JSON)
    assert negative.status_code == 400 and "adaptive_number_tolerance" in negative.json(), negative.json()
    stored = ok(manager.get(f"{API}/projects/{SLUG}/review-policy/"))
    assert stored["adaptive_mask_dice"] is None and stored["adaptive_number_tolerance"] is None
    set_policy(
        manager,
        SLUG,
        adaptive_second_read=True,
        adaptive_min_record_cases=0,
        second_read_target=0.0,
        mask_dice=0.95,
        number_tolerance=2.0,
    )
    strict_case, loose_case = reading_cases[0], reading_cases[1]
    reader_mask = mask_for(strict_case)
    ai_mask = reader_mask.copy()
    ai_mask[2:4, 28, 22:30] = 1  # Dice 0.94 with the reader's: under 0.95, over 0.9
    for case in (strict_case, loose_case):
        annotation_save_machine(case=case, model_version="nodule-net 1.0", values=chest_values(case, mask=ai_mask))
    case_id = claim(annotator, SLUG, "first_reader")
    assert case_id == strict_case.pk
    save(annotator, case_id, chest_values(strict_case, mask=reader_mask), role="first_reader")
    assert routing_event(case_id).metrics["routing"] == "second"  # the project's 0.95

    assert set_policy(manager, SLUG, adaptive_mask_dice=0.9)["adaptive_mask_dice"] == 0.9
    case_id = claim(annotator, SLUG, "first_reader")
    assert case_id == loose_case.pk
    save(annotator, case_id, chest_values(loose_case, mask=reader_mask), role="first_reader")
    event = routing_event(case_id)
    assert event.metrics["routing"] == "single" and event.metrics["reasons"] == [AI_AGREES, RECORD_OK], event.reason


def test_a_single_adjudicator_who_must_correct_cannot_vote_for_a_reading_as_drawn(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    """adjudicator_corrects: the panel submits its own label. A vote for the reading or the AI proposal is a 400
    saying so (nothing stored, the case still in the panel); a corrected label made from the reading decides the
    case, and the adjudicated label is the expert's, with what it kept from the reading in its provenance. Off by
    default; a value that is not a boolean is a 400 naming the field."""
    from annotation.models import Annotation, Assignment, ReadingRole
    from review.models import PanelVote
    from review.services import ADJUDICATED_ROLE

    manager, annotator = clients["manager"], clients["annotator"]
    assert ok(manager.get(f"{API}/projects/{SLUG}/review-policy/"))["adjudicator_corrects"] is False
    bad = manager.patch(f"{API}/projects/{SLUG}/review-policy/", {"adjudicator_corrects": "maybe"}, JSON)
    assert bad.status_code == 400 and "adjudicator_corrects" in bad.json(), bad.json()
    policy = set_policy(
        manager,
        SLUG,
        adaptive_second_read=True,
        adaptive_min_record_cases=0,
        second_read_target=0.0,
        adaptive_adjudicate=True,
        adjudicator_corrects=True,
        panel_size=1,
        quorum=1,
    )
    assert policy["adjudicator_corrects"] is True
    case = reading_cases[0]
    # The AI types the nodule otherwise: the check fails and the case goes to the one expert.
    annotation_save_machine(
        case=case, model_version="nodule-net 1.0", values=chest_values(case, nodule_type="part_solid")
    )
    assert claim(annotator, SLUG, "first_reader") == case.pk
    save(annotator, case.pk, chest_values(case), role="first_reader")
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_PANEL

    [seat] = list(Assignment.objects.filter(case=case, role=ReadingRole.PANEL_MEMBER).select_related("user"))
    expert = clients[seat.user.username]
    first = Annotation.objects.get(case=case, role=ReadingRole.FIRST_READER)
    ai = Annotation.objects.get(case=case, role="ai")
    for annotation in (first, ai):
        refused = expert.post(
            f"{API}/cases/{case.pk}/votes/", {"voted_for_annotation": annotation.pk, "rationale": "as drawn"}, JSON
        )
        assert refused.status_code == 400, refused.content
        assert "corrected label" in refused.json()["detail"], refused.json()
    zh = expert.post(
        f"{API}/cases/{case.pk}/votes/",
        {"voted_for_annotation": first.pk, "rationale": "as drawn"},
        JSON,
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert zh.status_code == 400 and "修正" in zh.json()["detail"], zh.json()
    assert not PanelVote.objects.filter(case=case).exists()
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_PANEL

    corrected = chest_values(case, nodule_type="ground_glass")
    ok(
        expert.post(
            f"{API}/cases/{case.pk}/votes/",
            {"values": corrected, "seed_annotation": first.pk, "rationale": "ground glass, outline kept"},
            JSON,
        ),
        201,
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.ADJUDICATED
    final = Annotation.objects.get(case=case, role=ADJUDICATED_ROLE).current_revision
    assert final is not None
    assert [i["value"] for i in final.items if i["label"] == "nodule_type"] == ["ground_glass"]
    [decided] = CaseEvent.objects.filter(case=case, to_status=CaseStatus.ADJUDICATED)
    assert decided.metrics["votes"][0]["corrected"] is True and "provenance" in decided.metrics
