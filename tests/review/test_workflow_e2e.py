"""The review workflow end to end through the API: blind double reading that agrees (consensus with mean box
and union mask), a dispute that goes to a three-expert panel whose tie the chair breaks, verification mode
(accept, correct, reject), and sampling to a single reading. Data is set up directly; everything the users
do goes through the API, and the outcome is checked in the final labels, the events and the metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Assignment, CaseStatus, Project
from annotation.services import annotation_save_machine, assignments_distribute
from review.agreement import box_iou, dice
from review.models import AgreementResult
from tests.annotation.conftest import case_series, chest_values, post_revision
from tests.review.conftest import (
    API,
    JSON,
    annotation_by_role,
    case_annotations,
    case_of,
    case_status,
    claim,
    events,
    mask_of,
    ok,
    results,
    revision_items,
    revision_pk,
    save,
    series_mask,
    set_policy,
    without_masks,
)

S = CaseStatus


def transitions(event_list: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(e["from_status"], e["to_status"], e["actor"]) for e in event_list]


def seat_holders(manager: Client, case_id: int) -> set[str]:
    rows = ok(manager.get(f"{API}/cases/{case_id}/assignments/"))
    return {row["username"] for row in rows if row["role"] == "panel_member"}


def corners(geometry: dict[str, Any]) -> list[float]:
    return [geometry["x"], geometry["y"], geometry["x"] + geometry["width"], geometry["y"] + geometry["height"]]


# --- (a) Blind double reading that agrees -----------------------------------------------------------------------


def test_blind_double_reading_that_agrees_gives_a_consensus_with_mean_box_and_union_mask(
    reading_project: Project, clients: dict[str, Client]
):
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    policy = set_policy(manager, slug, mode="blind_double", mask_rule="union", mask_dice=0.8, box_iou=0.5)
    assert (policy["mode"], policy["mask_rule"], policy["second_read_share"]) == ("blind_double", "union", 1.0)

    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id  # the same, highest-priority case
    case = case_of(case_id)

    box_a = {"x": 20, "y": 22, "width": 10, "height": 8}
    box_b = {"x": 21, "y": 22, "width": 10, "height": 9}
    mask_a = series_mask(case, slice(2, 5), slice(20, 30), slice(22, 32))
    mask_b = series_mask(case, slice(2, 5), slice(21, 31), slice(22, 32))
    expected_dice = 2 * np.logical_and(mask_a, mask_b).sum() / (mask_a.sum() + mask_b.sum())
    assert 0.8 <= expected_dice < 1.0
    values_a = chest_values(case, geometry=box_a, mask=mask_a, diameter=7.5, malignancy=2, comment="first")
    values_b = chest_values(case, geometry=box_b, mask=mask_b, diameter=7.5, malignancy=2, comment="second")

    first = save(annotator, case_id, values_a, role="first_reader")
    assert case_status(manager, case_id) == S.AWAITING_CROSS_VERIFICATION
    second = save(reviewer, case_id, values_b, role="second_reader")
    assert case_status(manager, case_id) == S.AGREED

    # Events: who moved the case, from where to where.
    history = events(manager, case_id)
    assert transitions(history) == [
        (S.AWAITING_FIRST_READ, S.AWAITING_CROSS_VERIFICATION, "annotator"),
        (S.AWAITING_CROSS_VERIFICATION, S.CHECKING_AGREEMENT, "reviewer"),
        (S.CHECKING_AGREEMENT, S.AGREED, "reviewer"),
    ]
    assert "annotator" in history[0]["reason"]
    assert history[1]["reason"] == "all 2 readings submitted; the agreement is being computed"

    # The agreement result, label by label, with metrics checked against direct computations.
    agreement = ok(manager.get(f"{API}/cases/{case_id}/agreement/"))
    assert agreement["agreed"] is True
    assert agreement["reasons"] == []
    labels = {label["key"]: label for label in agreement["labels"]}
    # Free text and the unanswered "other findings" are not compared: neither agreed nor disagreed.
    not_compared = {"comment", "findings"}
    assert agreement["status"] == "agreed"
    assert {key for key, label in labels.items() if label["status"] == "not_compared"} == not_compared
    assert all(label["status"] == "agreed" for key, label in labels.items() if key not in not_compared), labels
    assert history[-1]["metrics"] == {
        "agreement_result": agreement["id"],
        "labels": {key: key not in not_compared for key in labels},
        "label_status": {key: "not_compared" if key in not_compared else "agreed" for key in labels},
    }
    series_uid = case_series(case).series_instance_uid
    mask_metrics = labels["nodule_mask"]["metrics"][series_uid]["segment 1: annotator~reviewer"]
    assert mask_metrics["dice"] == pytest.approx(expected_dice, abs=1e-6)
    assert mask_metrics["dice"] == pytest.approx(dice(mask_a, mask_b), abs=1e-6)
    assert mask_metrics["hd95_mm"] is not None and mask_metrics["assd_mm"] is not None
    box_metrics = labels["nodule_box"]["metrics"]["annotator~reviewer"]
    expected_iou = 72 / (80 + 90 - 72)  # overlap 9 x 8 of boxes 10 x 8 and 10 x 9
    assert box_iou(corners(box_a), corners(box_b)) == pytest.approx(expected_iou)
    assert box_metrics["matched"] == 1
    assert box_metrics["scores"] == [pytest.approx(expected_iou, abs=1e-6)]
    assert labels["nodule_box"]["metrics"]["lesions_per_reader"] == {"annotator": 1, "reviewer": 1}
    assert labels["nodule_present"]["metrics"]["percent_agreement"] == 1.0
    assert labels["comment"]["metrics"] == {"compared": False}

    # The consensus label: majority answers, the mean box, the union of the masks.
    consensus = annotation_by_role(manager, case_id, "consensus")
    assert (consensus["reader"], consensus["status"]) == (None, "submitted")
    items = revision_items(manager, consensus["id"])
    by_label: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_label.setdefault(item["label"], []).append(item)
    assert [i["value"] for i in by_label["nodule_present"]] == ["yes"]
    [consensus_box] = by_label["nodule_box"]
    assert consensus_box["sop_instance_uid"] == values_a["items"][1]["sop_instance_uid"]
    # corners (20, 22)-(30, 30) and (21, 22)-(31, 31): mean (20.5, 22)-(30.5, 30.5)
    assert consensus_box["geometry"] == {"x": 20.5, "y": 22.0, "width": 10.0, "height": 8.5}
    region = consensus_box["id"]
    attributes = {(i["label"], i["region"]): i["value"] for i in items if "region" in i}
    assert attributes == {
        ("nodule_type", region): "solid",
        ("diameter", region): 7.5,
        ("lobe", region): "right_upper",
        ("malignancy", region): 2,
    }
    assert "comment" not in by_label  # free text is not part of the consensus
    readers_masks = [mask_of(revision_items(manager, r["annotation"], r["number"])) for r in (first, second)]
    assert np.array_equal(readers_masks[0], mask_a) and np.array_equal(readers_masks[1], mask_b)
    consensus_mask = mask_of(items)
    assert np.array_equal(consensus_mask, np.logical_or(*readers_masks).astype(np.uint8))
    assert not np.array_equal(consensus_mask, mask_a)  # the union really is more than either reading

    # Both assignments are done; nobody is left with work on the case.
    rows = ok(manager.get(f"{API}/cases/{case_id}/assignments/"))
    assert sorted((r["username"], r["status"]) for r in rows) == [("annotator", "submitted"), ("reviewer", "submitted")]


def test_intersection_rule_gives_the_intersection_mask(reading_project: Project, clients: dict[str, Client]):
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    set_policy(manager, slug, mask_rule="intersection")
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    case = case_of(case_id)
    mask_a = series_mask(case, slice(2, 5), slice(20, 30), slice(22, 32))
    mask_b = series_mask(case, slice(2, 5), slice(21, 31), slice(22, 32))
    save(annotator, case_id, chest_values(case, mask=mask_a), role="first_reader")
    save(reviewer, case_id, chest_values(case, mask=mask_b), role="second_reader")
    assert case_status(manager, case_id) == S.AGREED
    consensus = annotation_by_role(manager, case_id, "consensus")
    assert np.array_equal(mask_of(revision_items(manager, consensus["id"])), (mask_a & mask_b))


# --- (b) A dispute, a three-expert panel, and the chair's tie-break ------------------------------------------------


def disputed_case(
    slug: str, clients: dict[str, Client], *, panel_size: int = 3, quorum: int = 3, chair: str = "expert3"
) -> tuple[int, dict[str, Any], dict[str, Any], float]:
    """The annotator (also an expert of the project) and the reviewer read a case whose masks disagree.

    Returns the case id, both submitted revisions and the Dice between the masks."""
    manager = clients["manager"]
    # The fixture's "expert" leaves the project; the annotator becomes an expert too.
    members = ok(manager.get(f"{API}/projects/{slug}/members/"))
    [expert_membership] = [m for m in members if (m["username"], m["role"]) == ("expert", "expert")]
    ok(manager.delete(f"{API}/projects/{slug}/members/{expert_membership['id']}/"), 204)
    ok(manager.post(f"{API}/projects/{slug}/members/", {"username": "annotator", "role": "expert"}, JSON), 201)
    set_policy(manager, slug, panel_size=panel_size, quorum=quorum, chair_username=chair, mask_dice=0.8)

    case_id = claim(clients["annotator"], slug, "first_reader")
    assert claim(clients["reviewer"], slug, "second_reader") == case_id
    case = case_of(case_id)
    mask_a = series_mask(case, slice(2, 5), slice(20, 30), slice(22, 32))
    mask_b = series_mask(case, slice(2, 5), slice(26, 36), slice(22, 32))
    overlap = 2 * np.logical_and(mask_a, mask_b).sum() / (mask_a.sum() + mask_b.sum())
    assert overlap < 0.8
    first = save(clients["annotator"], case_id, chest_values(case, mask=mask_a, diameter=6.0), role="first_reader")
    second = save(clients["reviewer"], case_id, chest_values(case, mask=mask_b, diameter=9.0), role="second_reader")
    return case_id, first, second, float(overlap)


def test_disputed_case_goes_to_a_panel_of_three_and_the_chair_breaks_the_tie_with_a_corrected_label(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    manager = clients["manager"]
    slug = reading_project.slug
    case_id, first, second, overlap = disputed_case(slug, clients)
    assert case_status(manager, case_id) == S.IN_PANEL

    # Events: the dispute with readable reasons, then the panel.
    history = events(manager, case_id)
    assert transitions(history) == [
        (S.AWAITING_FIRST_READ, S.AWAITING_CROSS_VERIFICATION, "annotator"),
        (S.AWAITING_CROSS_VERIFICATION, S.CHECKING_AGREEMENT, "reviewer"),
        (S.CHECKING_AGREEMENT, S.DISPUTED, "reviewer"),
        (S.DISPUTED, S.IN_PANEL, "reviewer"),
    ]
    dice_reason = f"Nodule segmentation, segment Nodule: Dice {overlap:.2f} < 0.80 (annotator and reviewer)"
    diameter_reason = (
        "Long-axis diameter of Nodule bounding box 1: annotator gave 6 mm, reviewer 9 mm (difference 3 > 0)"
    )
    assert dice_reason in history[2]["reason"]
    assert diameter_reason in history[2]["reason"]
    assert history[2]["metrics"]["labels"]["nodule_mask"] is False
    assert history[2]["metrics"]["labels"]["nodule_box"] is True
    agreement = ok(manager.get(f"{API}/cases/{case_id}/agreement/"))
    assert agreement["agreed"] is False
    assert sorted(agreement["reasons"]) == sorted([dice_reason, diameter_reason])
    assert history[2]["metrics"]["agreement_result"] == agreement["id"]
    assert [a["role"] for a in case_annotations(manager, case_id) if a["role"] in ("consensus", "adjudicated")] == []

    # Three experts are seated; the annotator, an expert too, is not (a reader never sits on the panel).
    assert seat_holders(manager, case_id) == {"expert1", "expert2", "expert3"}
    annotator_roles = {(a["username"], a["role"]) for a in ok(manager.get(f"{API}/cases/{case_id}/assignments/"))}
    assert ("annotator", "first_reader") in annotator_roles
    assert ("annotator", "panel_member") not in annotator_roles
    response = clients["annotator"].post(f"{API}/projects/{slug}/worklist/next/", {"role": "panel_member"}, JSON)
    assert response.status_code == 204  # no panel seat for the annotator anywhere
    response = manager.post(
        f"{API}/cases/{case_id}/assignments/", {"username": "annotator", "role": "panel_member"}, JSON
    )
    assert response.status_code == 409

    # The seated experts see both readings now and vote for them.
    for name in ("expert1", "expert2", "expert3"):
        seen = {(a["reader"], a["role"], a["status"]) for a in case_annotations(clients[name], case_id)}
        assert seen == {("annotator", "first_reader", "submitted"), ("reviewer", "second_reader", "submitted")}
        assert revision_items(clients[name], first["annotation"]) == revision_items(manager, first["annotation"])
    # A reader cannot vote on their own case (not on the panel).
    response = clients["annotator"].post(
        f"{API}/cases/{case_id}/votes/", {"voted_for_annotation": first["annotation"], "rationale": "mine"}, JSON
    )
    assert response.status_code == 403
    vote_a = ok(
        clients["expert1"].post(
            f"{API}/cases/{case_id}/votes/",
            {"voted_for_annotation": first["annotation"], "rationale": "the tighter mask"},
            JSON,
        ),
        201,
    )
    assert (vote_a["expert"], vote_a["voted_for"], vote_a["corrected"]) == ("expert1", revision_pk(first), None)
    response = clients["expert1"].post(
        f"{API}/cases/{case_id}/votes/", {"voted_for_annotation": second["annotation"], "rationale": "again"}, JSON
    )
    assert response.status_code == 409  # one vote per expert
    ok(
        clients["expert2"].post(
            f"{API}/cases/{case_id}/votes/",
            {"voted_for_annotation": second["annotation"], "rationale": "the lower mask is right"},
            JSON,
        ),
        201,
    )
    assert case_status(manager, case_id) == S.IN_PANEL  # quorum 3 not reached

    # The chair submits a corrected label: three different options, the chair's wins.
    case = case_of(case_id)
    corrected_mask = series_mask(case, slice(2, 5), slice(22, 33), slice(22, 32))
    corrected_values = chest_values(case, mask=corrected_mask, diameter=7.0, nodule_type="part_solid")
    vote_c = ok(
        clients["expert3"].post(
            f"{API}/cases/{case_id}/votes/", {"values": corrected_values, "rationale": "both were off"}, JSON
        ),
        201,
    )
    assert vote_c["voted_for"] is None and vote_c["corrected"] is not None
    assert case_status(manager, case_id) == S.ADJUDICATED

    history = events(manager, case_id)
    last = history[-1]
    assert (last["from_status"], last["to_status"], last["actor"]) == (S.IN_PANEL, S.ADJUDICATED, "expert3")
    assert last["metrics"]["tie_broken_by_chair"] is True
    assert last["metrics"]["winner_revision"] == vote_c["corrected"]
    assert (last["metrics"]["rule"], last["metrics"]["count"], last["metrics"]["casting_voter"]) == (
        "casting_vote_chair",
        "1-1-1",
        "expert3",
    )
    assert last["reason"] == (
        "panel tied (1-1-1, 3 of 3 seated members voted): casting vote of the chair, expert3, for expert correction "
        "by expert3"
    )
    assert sorted((v["expert"], v["for"], v["corrected"]) for v in last["metrics"]["votes"]) == [
        ("expert1", revision_pk(first), False),
        ("expert2", revision_pk(second), False),
        ("expert3", vote_c["corrected"], True),
    ]

    # The adjudicated label equals the chair's corrected reading, mask included.
    chair_reading = annotation_by_role(manager, case_id, "panel_member")
    assert chair_reading["reader"] == "expert3"
    corrected_items = revision_items(manager, chair_reading["id"])
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    adjudicated_items = revision_items(manager, adjudicated["id"])
    assert without_masks(adjudicated_items) == without_masks(corrected_items)
    assert np.array_equal(mask_of(adjudicated_items), corrected_mask)
    assert [i["value"] for i in adjudicated_items if i["label"] == "nodule_type"] == ["part_solid"]

    # Votes are listed for the panel and the manager, not for the readers.
    for name in ("expert1", "manager"):
        votes = ok(clients[name].get(f"{API}/cases/{case_id}/votes/"))
        assert sorted((v["expert"], v["voted_for"], v["corrected"]) for v in votes) == [
            ("expert1", revision_pk(first), None),
            ("expert2", revision_pk(second), None),
            ("expert3", None, vote_c["corrected"]),
        ]
        assert {v["rationale"] for v in votes} == {"the tighter mask", "the lower mask is right", "both were off"}
    for name in ("annotator", "reviewer"):
        assert clients[name].get(f"{API}/cases/{case_id}/votes/").status_code == 403
    # No more votes once decided.
    response = clients["expert1"].post(
        f"{API}/cases/{case_id}/votes/", {"values": corrected_values, "rationale": "x"}, JSON
    )
    assert response.status_code == 409


def test_chair_vote_that_makes_a_majority_decides_by_majority(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """Votes A, B, then the chair's A: two against one is a majority, not a tie the chair had to break."""
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients)
    for name, reading in (("expert1", first), ("expert2", second), ("expert3", first)):
        body = {"voted_for_annotation": reading["annotation"], "rationale": f"{name} agrees with it"}
        ok(clients[name].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.ADJUDICATED
    last = events(manager, case_id)[-1]
    assert (last["metrics"]["winner_revision"], last["metrics"]["tie_broken_by_chair"]) == (revision_pk(first), False)
    assert last["reason"] == "panel decided by majority (2-1, 3 of 3 seated members voted): first reading (annotator)"
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    first_items = revision_items(manager, first["annotation"])
    adjudicated_items = revision_items(manager, adjudicated["id"])
    assert without_masks(adjudicated_items) == without_masks(first_items)
    assert np.array_equal(mask_of(adjudicated_items), mask_of(first_items))


def test_tie_between_two_readings_waits_for_the_chair_and_the_chair_decides(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """Panel of two, quorum two: one vote each way is a tie; the chair's vote is the decision."""
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=2, quorum=2, chair="expert2")
    assert seat_holders(manager, case_id) == {"expert1", "expert2"}
    ok(
        clients["expert1"].post(
            f"{API}/cases/{case_id}/votes/", {"voted_for_annotation": first["annotation"], "rationale": "A"}, JSON
        ),
        201,
    )
    assert case_status(manager, case_id) == S.IN_PANEL
    ok(
        clients["expert2"].post(
            f"{API}/cases/{case_id}/votes/", {"voted_for_annotation": second["annotation"], "rationale": "B"}, JSON
        ),
        201,
    )
    assert case_status(manager, case_id) == S.ADJUDICATED
    last = events(manager, case_id)[-1]
    assert last["actor"] == "expert2"
    assert (last["metrics"]["winner_revision"], last["metrics"]["tie_broken_by_chair"]) == (revision_pk(second), True)
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    assert without_masks(revision_items(manager, adjudicated["id"])) == without_masks(
        revision_items(manager, second["annotation"])
    )


def test_a_tie_without_the_chairs_vote_waits(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """Quorum two of three: A and B tie at quorum; the case waits for the third seated member (here the chair),
    whose vote then makes a majority: 2-1, decided by majority, not by a casting vote."""
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=3, quorum=2, chair="expert3")
    for name, reading in (("expert1", first), ("expert2", second)):
        body = {"voted_for_annotation": reading["annotation"], "rationale": name}
        ok(clients[name].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.IN_PANEL
    assert len(ok(manager.get(f"{API}/cases/{case_id}/votes/"))) == 2
    body = {"voted_for_annotation": second["annotation"], "rationale": "chair"}
    ok(clients["expert3"].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.ADJUDICATED
    last = events(manager, case_id)[-1]
    assert last["metrics"]["winner_revision"] == revision_pk(second)
    assert (last["metrics"]["rule"], last["metrics"]["count"], last["metrics"]["tie_broken_by_chair"]) == (
        "majority",
        "2-1",
        False,
    )


# --- (c) Verification mode -------------------------------------------------------------------------------------


def verification_setup(reading_project: Project, clients: dict[str, Client]) -> None:
    policy = set_policy(clients["manager"], reading_project.slug, mode="verification")
    assert policy["mode"] == "verification"


def test_verification_correct_makes_the_corrected_reading_the_consensus(
    reading_project: Project, clients: dict[str, Client]
):
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    verification_setup(reading_project, clients)
    case_id = claim(annotator, slug, "first_reader")
    case = case_of(case_id)
    draft = save(annotator, case_id, chest_values(case), role="first_reader", submit=False)
    # Nothing to verify yet: the verifier's slot opens only when the first reading is submitted.
    assert reviewer.post(f"{API}/projects/{slug}/worklist/next/", {"role": "second_reader"}, JSON).status_code == 204
    assert not Assignment.objects.filter(case_id=case_id, role="second_reader").exists()
    first_values = chest_values(case, mask=True, diameter=5.0, nodule_type="ground_glass")
    first = save(annotator, case_id, first_values, role="first_reader", base=draft["number"])
    assert case_status(manager, case_id) == S.AWAITING_CROSS_VERIFICATION  # one reading is enough here
    assert claim(reviewer, slug, "second_reader") == case_id

    # The verifier sees the submitted first reading, in full.
    seen = case_annotations(reviewer, case_id)
    assert [(a["id"], a["reader"], a["role"], a["status"]) for a in seen] == [
        (first["annotation"], "annotator", "first_reader", "submitted")
    ]
    first_items = revision_items(reviewer, first["annotation"])
    assert first_items == revision_items(manager, first["annotation"])

    corrected_mask = series_mask(case, slice(2, 5), slice(18, 30), slice(20, 32))
    corrected_values = chest_values(case, mask=corrected_mask, diameter=8.0, nodule_type="part_solid")
    body = {"outcome": "correct", "values": corrected_values, "reason": "part-solid, larger"}
    assert ok(reviewer.post(f"{API}/cases/{case_id}/verification/", body, JSON)) == {
        "case": case_id,
        "status": S.AGREED,
    }
    history = events(manager, case_id)
    assert transitions(history) == [
        (S.AWAITING_FIRST_READ, S.AWAITING_CROSS_VERIFICATION, "annotator"),
        (S.AWAITING_CROSS_VERIFICATION, S.AGREED, "reviewer"),
    ]
    assert history[-1]["metrics"]["verification"] == "corrected"
    assert history[-1]["reason"] == "part-solid, larger"
    corrected = annotation_by_role(manager, case_id, "second_reader")
    assert (corrected["reader"], corrected["status"]) == ("reviewer", "submitted")
    corrected_items = revision_items(manager, corrected["id"])
    assert history[-1]["metrics"]["corrected_revision"] == revision_pk(
        {"annotation": corrected["id"], "number": corrected["current_revision"]}
    )

    consensus = annotation_by_role(manager, case_id, "consensus")
    consensus_items = revision_items(manager, consensus["id"])
    assert without_masks(consensus_items) == without_masks(corrected_items)
    assert np.array_equal(mask_of(consensus_items), corrected_mask)
    assert [i["value"] for i in consensus_items if i["label"] == "diameter"] == [8.0]
    assert without_masks(consensus_items) != without_masks(first_items)
    # Decided: the verifier cannot decide again.
    response = reviewer.post(f"{API}/cases/{case_id}/verification/", {"outcome": "accept"}, JSON)
    assert response.status_code == 409


def test_verifier_submitting_a_reading_instead_of_a_verification_corrects_the_first_reading(
    reading_project: Project, clients: dict[str, Client]
):
    """A verifier who submits through the reading flow is done with the case: that reading is the correction
    (rather than a case left waiting for a verification that can no longer come)."""
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    verification_setup(reading_project, clients)
    case_id = claim(annotator, slug, "first_reader")
    case = case_of(case_id)
    save(annotator, case_id, chest_values(case, diameter=5.0), role="first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    corrected = save(reviewer, case_id, chest_values(case, diameter=6.0), role="second_reader")
    assert case_status(manager, case_id) == S.AGREED
    last = events(manager, case_id)[-1]
    assert (last["to_status"], last["actor"]) == (S.AGREED, "reviewer")
    assert last["metrics"] == {"verification": "corrected", "corrected_revision": revision_pk(corrected)}
    consensus = annotation_by_role(manager, case_id, "consensus")
    assert revision_items(manager, consensus["id"]) == revision_items(manager, corrected["annotation"])


def test_verification_accept_makes_the_first_reading_the_consensus(
    reading_project: Project, clients: dict[str, Client]
):
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    verification_setup(reading_project, clients)
    case_id = claim(annotator, slug, "first_reader")
    case = case_of(case_id)
    first = save(annotator, case_id, chest_values(case, mask=True, findings=["emphysema"]), role="first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    assert ok(reviewer.post(f"{API}/cases/{case_id}/verification/", {"outcome": "accept"}, JSON))["status"] == S.AGREED
    last = events(manager, case_id)[-1]
    assert (last["to_status"], last["actor"], last["metrics"]) == (S.AGREED, "reviewer", {"verification": "accepted"})
    consensus = annotation_by_role(manager, case_id, "consensus")
    consensus_items = revision_items(manager, consensus["id"])
    first_items = revision_items(manager, first["annotation"])
    assert consensus_items == first_items  # the same items and the same stored mask
    assert [(a["username"], a["status"]) for a in ok(manager.get(f"{API}/cases/{case_id}/assignments/"))] == [
        ("annotator", "submitted"),
        ("reviewer", "submitted"),
    ]


def test_verification_reject_needs_a_reason_and_sends_the_case_to_the_panel(
    reading_project: Project, clients: dict[str, Client]
):
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    verification_setup(reading_project, clients)
    case_id = claim(annotator, slug, "first_reader")
    first = save(annotator, case_id, chest_values(case_of(case_id)), role="first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id

    for body in ({"outcome": "reject"}, {"outcome": "reject", "reason": "   "}):
        response = reviewer.post(f"{API}/cases/{case_id}/verification/", body, JSON)
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "reason_required"
    assert case_status(manager, case_id) == S.AWAITING_CROSS_VERIFICATION
    assert len(events(manager, case_id)) == 1

    body = {"outcome": "reject", "reason": "the nodule is a vessel"}
    assert ok(reviewer.post(f"{API}/cases/{case_id}/verification/", body, JSON))["status"] == S.IN_PANEL
    history = events(manager, case_id)
    assert transitions(history)[1:] == [
        (S.AWAITING_CROSS_VERIFICATION, S.DISPUTED, "reviewer"),
        (S.DISPUTED, S.IN_PANEL, "reviewer"),
    ]
    assert (history[1]["reason"], history[1]["metrics"]) == ("the nodule is a vessel", {"verification": "rejected"})
    # Three of the four experts are seated (the least loaded, then the earliest members).
    assert seat_holders(manager, case_id) == {"expert", "expert1", "expert2"}
    # The panel sees the first reading (the one to adjudicate) and votes for it: two votes are the quorum.
    for name in ("expert", "expert1"):
        assert [a["id"] for a in case_annotations(clients[name], case_id)] == [first["annotation"]]
        body = {"voted_for_annotation": first["annotation"], "rationale": "it is a nodule after all"}
        ok(clients[name].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.ADJUDICATED
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    assert revision_items(manager, adjudicated["id"]) == revision_items(manager, first["annotation"])


def test_verification_endpoint_refuses_blind_double_projects_and_readers_who_are_not_the_verifier(
    reading_project: Project, clients: dict[str, Client]
):
    annotator, reviewer = clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    case_id = claim(annotator, slug, "first_reader")
    save(annotator, case_id, chest_values(case_of(case_id)), role="first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    response = reviewer.post(f"{API}/cases/{case_id}/verification/", {"outcome": "accept"}, JSON)
    assert response.status_code == 409  # blind double reading: there is nothing to verify
    set_policy(clients["manager"], slug, mode="verification")
    response = annotator.post(f"{API}/cases/{case_id}/verification/", {"outcome": "accept"}, JSON)
    assert response.status_code == 403  # the author does not verify their own reading
    response = reviewer.post(f"{API}/cases/{case_id}/verification/", {"outcome": "maybe"}, JSON)
    assert response.status_code == 400
    assert case_status(clients["manager"], case_id) == S.AWAITING_CROSS_VERIFICATION


def disagreeing_readings(slug: str, annotator: Client, reviewer: Client) -> tuple[int, Any]:
    """Annotator says "nodule", reviewer "no nodule"; returns the case id and the reviewer's save response."""
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    case = case_of(case_id)
    save(annotator, case_id, chest_values(case), role="first_reader")
    response = post_revision(
        reviewer,
        case_id,
        chest_values(case, nodule_present="no", box=False),
        base_revision=0,
        submit=True,
        role="second_reader",
    )
    return case_id, response


def test_a_panel_with_fewer_experts_than_its_size_decides_at_a_quorum_capped_to_its_seats(
    reading_project: Project, users: dict[str, User], client_for: Any
):
    manager, expert = client_for(users["manager"]), client_for(users["expert"])
    slug = reading_project.slug
    set_policy(manager, slug, panel_size=3, quorum=3)
    case_id, response = disagreeing_readings(slug, client_for(users["annotator"]), client_for(users["reviewer"]))
    assert response.status_code == 201, response.content
    assert case_status(manager, case_id) == S.IN_PANEL
    reasons = ok(manager.get(f"{API}/cases/{case_id}/agreement/"))["reasons"]
    assert "Nodule present: annotator chose Yes, reviewer chose No" in reasons
    assert "Nodule bounding box: different numbers of lesions (annotator found 1, reviewer found 0)" in reasons
    assert seat_holders(manager, case_id) == {"expert"}  # the project's only expert
    first = annotation_by_role(expert, case_id, "first_reader")
    body = {"voted_for_annotation": first["id"], "rationale": "there is a nodule"}
    ok(expert.post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.ADJUDICATED


def test_a_dispute_in_a_project_without_experts_waits_in_panel_for_experts_to_join(
    reading_project: Project, users: dict[str, User], client_for: Any
):
    manager, expert = client_for(users["manager"]), client_for(users["expert"])
    slug = reading_project.slug
    [membership] = [m for m in ok(manager.get(f"{API}/projects/{slug}/members/")) if m["role"] == "expert"]
    ok(manager.delete(f"{API}/projects/{slug}/members/{membership['id']}/"), 204)
    case_id, response = disagreeing_readings(slug, client_for(users["annotator"]), client_for(users["reviewer"]))
    assert response.status_code == 201, response.content  # the reviewer's submission is not refused
    assert case_status(manager, case_id) == S.IN_PANEL
    assert [e["to_status"] for e in events(manager, case_id)] == [
        S.AWAITING_CROSS_VERIFICATION,
        S.CHECKING_AGREEMENT,
        S.DISPUTED,
        S.IN_PANEL,
    ]
    assert seat_holders(manager, case_id) == set()
    # An expert joins and takes the seat from their worklist.
    ok(manager.post(f"{API}/projects/{slug}/members/", {"username": "expert", "role": "expert"}, JSON), 201)
    assert claim(expert, slug, "panel_member") == case_id
    second = annotation_by_role(expert, case_id, "second_reader")
    ok(
        expert.post(f"{API}/cases/{case_id}/votes/", {"voted_for_annotation": second["id"], "rationale": "no"}, JSON),
        201,
    )
    assert case_status(manager, case_id) == S.ADJUDICATED
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    assert [i["value"] for i in revision_items(manager, adjudicated["id"]) if i["label"] == "nodule_present"] == ["no"]


# --- (d) Sampling ------------------------------------------------------------------------------------------------


def test_case_not_sampled_for_a_second_reading_is_final_after_the_first(
    reading_project: Project, clients: dict[str, Client]
):
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    assert set_policy(manager, slug, second_read_share=0.0)["second_read_share"] == 0.0
    case_id = claim(annotator, slug, "first_reader")
    first = save(annotator, case_id, chest_values(case_of(case_id)), role="first_reader")
    assert case_status(manager, case_id) == S.SINGLE_READ
    [event] = events(manager, case_id)
    assert (event["from_status"], event["to_status"], event["actor"]) == (
        S.AWAITING_FIRST_READ,
        S.SINGLE_READ,
        "annotator",
    )
    assert "not sampled" in event["reason"] and "0%" in event["reason"]
    assert manager.get(f"{API}/cases/{case_id}/agreement/").status_code == 404
    assert [a["role"] for a in case_annotations(manager, case_id)] == ["first_reader"]  # the reading is the final label
    assert annotation_by_role(manager, case_id, "first_reader")["id"] == first["annotation"]
    # No second reader is sent to a final case.
    assert claim(reviewer, slug, "second_reader") != case_id
    listed = {c["id"]: c["status"] for c in results(manager.get(f"{API}/projects/{slug}/cases/"))}
    assert listed[case_id] == S.SINGLE_READ


def test_second_reading_share_one_sends_every_case_to_cross_verification(
    reading_project: Project, clients: dict[str, Client]
):
    manager, annotator = clients["manager"], clients["annotator"]
    slug = reading_project.slug
    set_policy(manager, slug, second_read_share=1.0)
    for _ in range(3):
        case_id = claim(annotator, slug, "first_reader")
        save(annotator, case_id, chest_values(case_of(case_id)), role="first_reader")
        assert case_status(manager, case_id) == S.AWAITING_CROSS_VERIFICATION


def test_a_stale_save_after_a_decision_changes_nothing(reading_project: Project, clients: dict[str, Client]):
    """After the case is agreed, neither reader can add a revision (their reading is submitted)."""
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    case = case_of(case_id)
    first = save(annotator, case_id, chest_values(case), role="first_reader")
    save(reviewer, case_id, chest_values(case), role="second_reader")
    assert case_status(manager, case_id) == S.AGREED
    response = post_revision(annotator, case_id, chest_values(case, nodule_present="no", box=False), base_revision=1)
    assert response.status_code == 409
    assert ok(manager.get(f"{API}/annotations/{first['annotation']}/"))["current_revision"] == 1
    assert len(events(manager, case_id)) == 3


def test_verification_slots_open_after_the_first_reading_also_for_automatic_assignment(
    reading_project: Project, clients: dict[str, Client]
):
    """Distributing second-reader slots in verification mode skips cases still waiting for their first
    reading; in blind double reading both readers may start at once."""
    manager, annotator = clients["manager"], clients["annotator"]
    slug = reading_project.slug
    verification_setup(reading_project, clients)
    waiting = reading_project.cases.filter(status=S.AWAITING_FIRST_READ).count()
    assert waiting >= 2
    assert assignments_distribute(project=reading_project, role="second_reader", assigned_by=None) == []
    case_id = claim(annotator, slug, "first_reader")
    save(annotator, case_id, chest_values(case_of(case_id)), role="first_reader")
    created = assignments_distribute(project=reading_project, role="second_reader", assigned_by=None)
    assert [(a.case_id, a.user.username) for a in created] == [(case_id, "reviewer")]

    set_policy(manager, slug, mode="blind_double")
    project = Project.objects.get(pk=reading_project.pk)  # the policy as it is now
    created = assignments_distribute(project=project, role="second_reader", assigned_by=None)
    assert len(created) == waiting - 1  # every case still awaiting its first reading, at once


def test_a_tie_when_the_chair_is_not_on_the_panel_is_broken_by_the_most_senior_panel_member(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """The chair read the case, so is not seated: a tie must not wait for them forever. The seated expert who
    joined the project first breaks it, and the event says so."""
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=2, quorum=2, chair="annotator")
    seated = sorted(seat_holders(manager, case_id))  # expert1..3 joined in name order
    assert len(seated) == 2 and "annotator" not in seated
    senior, junior = seated
    body = {"voted_for_annotation": first["annotation"], "rationale": "the first mask"}
    ok(clients[junior].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.IN_PANEL
    body = {"voted_for_annotation": second["annotation"], "rationale": "the second mask"}
    ok(clients[senior].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.ADJUDICATED
    last = events(manager, case_id)[-1]
    assert last["metrics"]["winner_revision"] == revision_pk(second)
    assert last["metrics"]["tie_broken_by_chair"] is True
    assert last["metrics"]["rule"] == "casting_vote_senior_expert"
    assert f"casting vote of the senior expert, {senior} (the chair is not on this panel), for second" in last["reason"]


def test_a_tie_with_no_chair_set_is_broken_by_the_most_senior_panel_member(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=2, quorum=2, chair="expert3")
    set_policy(manager, reading_project.slug, chair_username=None)
    senior, junior = sorted(seat_holders(manager, case_id))
    body = {"voted_for_annotation": first["annotation"], "rationale": "senior: the first"}
    ok(clients[senior].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    body = {"voted_for_annotation": second["annotation"], "rationale": "junior: the second"}
    ok(clients[junior].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.ADJUDICATED
    assert events(manager, case_id)[-1]["metrics"]["winner_revision"] == revision_pk(first)


def test_experts_can_endorse_a_correction_which_then_wins_by_majority(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """expert1 corrects the label; expert2 sees that correction and votes for it; expert3 votes for the first
    reading. Two votes for the correction against one: the correction is the final label, by majority."""
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=3, quorum=3, chair="expert3")
    case = case_of(case_id)
    corrected_mask = series_mask(case, slice(2, 5), slice(22, 33), slice(22, 32))
    corrected_values = chest_values(case, mask=corrected_mask, diameter=7.0)
    vote = ok(
        clients["expert1"].post(
            f"{API}/cases/{case_id}/votes/", {"values": corrected_values, "rationale": "between the two"}, JSON
        ),
        201,
    )
    correction = annotation_by_role(clients["expert2"], case_id, "panel_member")  # other experts see it
    assert correction["reader"] == "expert1"
    body = {"voted_for_annotation": correction["id"], "rationale": "agree with expert1"}
    endorsement = ok(clients["expert2"].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert (endorsement["voted_for"], endorsement["corrected"]) == (vote["corrected"], None)
    assert case_status(manager, case_id) == S.IN_PANEL  # quorum three
    body = {"voted_for_annotation": first["annotation"], "rationale": "the first reading"}
    ok(clients["expert3"].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.ADJUDICATED
    last = events(manager, case_id)[-1]
    assert (last["metrics"]["winner_revision"], last["metrics"]["tie_broken_by_chair"]) == (vote["corrected"], False)
    assert (last["metrics"]["rule"], last["metrics"]["count"]) == ("majority", "2-1")
    assert last["reason"].startswith("panel decided by majority (2-1, 3 of 3 seated members voted): expert correction")
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    assert np.array_equal(mask_of(revision_items(manager, adjudicated["id"])), corrected_mask)


def test_readers_cannot_see_panel_corrections(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    case_id, first, _, _ = disputed_case(reading_project.slug, clients, panel_size=3, quorum=3)
    values = chest_values(case_of(case_id), diameter=7.0)
    ok(clients["expert1"].post(f"{API}/cases/{case_id}/votes/", {"values": values, "rationale": "fix"}, JSON), 201)
    assert [a["role"] for a in case_annotations(clients["reviewer"], case_id)] == ["second_reader"]
    correction = annotation_by_role(clients["manager"], case_id, "panel_member")
    assert clients["reviewer"].get(f"{API}/annotations/{correction['id']}/").status_code == 404


@pytest.mark.parametrize("third_opinion", [True, False])
def test_a_lesion_both_readers_missed_but_the_ai_found_goes_to_the_panel_when_the_policy_asks(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User], third_opinion: bool
):
    """Both readers say "no nodule" and agree; the AI proposal has a nodule (box and mask). With the AI third
    opinion on, the case is disputed for that reason and the panel may vote for the AI proposal; off, it is agreed."""
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    policy = set_policy(manager, slug, ai_third_opinion=third_opinion, panel_size=3, quorum=2)
    assert policy["ai_third_opinion"] is third_opinion
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    case = case_of(case_id)
    annotation_save_machine(case=case, model_version="test-model", values=chest_values(case, mask=True))
    nothing = chest_values(case, nodule_present="no", box=False)
    save(annotator, case_id, nothing, role="first_reader")
    save(reviewer, case_id, nothing, role="second_reader")

    result = AgreementResult.objects.filter(case_id=case_id).latest("created_at")
    if not third_opinion:
        assert case_status(manager, case_id) == S.AGREED
        assert all(entry["key"] != "ai_third_opinion" for entry in result.labels)
        return
    assert case_status(manager, case_id) == S.IN_PANEL
    assert result.agreed is False
    [check] = [entry for entry in result.labels if entry["key"] == "ai_third_opinion"]
    assert check["agreed"] is False
    readers = [entry for entry in result.labels if entry["key"] != "ai_third_opinion"]
    assert all(entry["status"] != "disagreed" for entry in readers)  # the readers agree (on "no nodule")
    assert {e["key"] for e in readers if e["status"] == "agreed"} == {"nodule_present", "nodule_box"}
    assert any(
        "AI third opinion: Nodule bounding box" in reason and "the agreed readers found 0" in reason
        for reason in result.reasons
    )
    assert any("AI third opinion: Nodule segmentation" in reason for reason in result.reasons)
    disputed = [e for e in events(manager, case_id) if e["to_status"] == S.DISPUTED]
    assert len(disputed) == 1 and "AI third opinion" in disputed[0]["reason"]

    # The panel sees the AI proposal and adopts it by majority.
    seated = sorted(seat_holders(manager, case_id))
    ai = annotation_by_role(clients[seated[0]], case_id, "ai")
    for name in seated[:2]:
        body = {"voted_for_annotation": ai["id"], "rationale": "the AI is right: there is a nodule"}
        ok(clients[name].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert case_status(manager, case_id) == S.ADJUDICATED
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    assert [i["label"] for i in revision_items(manager, adjudicated["id"]) if i["label"] == "nodule_box"] == [
        "nodule_box"
    ]


def test_the_ai_third_opinion_passes_readings_the_ai_agrees_with(reading_project: Project, clients: dict[str, Client]):
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    set_policy(manager, slug, ai_third_opinion=True)
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    case = case_of(case_id)
    values = chest_values(case, mask=True)
    annotation_save_machine(case=case, model_version="test-model", values=values)
    save(annotator, case_id, values, role="first_reader")
    save(reviewer, case_id, values, role="second_reader")
    assert case_status(manager, case_id) == S.AGREED
    result = AgreementResult.objects.filter(case_id=case_id).latest("created_at")
    [check] = [entry for entry in result.labels if entry["key"] == "ai_third_opinion"]
    assert check["agreed"] is True and check["reasons"] == []
    assert check["metrics"]["nodule_mask"]  # the masks were compared
