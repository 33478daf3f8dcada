"""Issue 13 acceptance, through the HTTP API: a full tie is decided by the chair's casting vote only once every
seated member has voted, even when the chair voted early and the quorum is reached before the tie is full.

(The other acceptance tests of the committee rules: tests/review/test_committee_rules.py
``test_a_one_one_split_waits_for_the_third_seated_expert_whose_vote_then_decides_by_majority`` and
``test_a_two_two_tie_with_every_seated_member_voted_is_decided_by_the_chairs_casting_vote``; of honest
agreement: tests/review/test_honest_agreement.py.)"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from annotation.models import CaseStatus, Project
from tests.annotation.conftest import chest_values
from tests.review.conftest import (
    API,
    JSON,
    annotation_by_role,
    case_annotations,
    case_of,
    case_status,
    ok,
    revision_items,
    revision_pk,
    without_masks,
)
from tests.review.test_committee_rules import decisions, vote
from tests.review.test_workflow_e2e import disputed_case, seat_holders

S = CaseStatus


def test_a_three_way_tie_waits_for_the_last_member_though_the_chair_voted_then_the_chairs_casting_vote_decides(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """Three seated experts, quorum two, expert3 the chair. The chair votes first (for the first reading) and
    expert1 for the second: quorum, a 1-1 tie, expert2 still to vote, so no casting vote yet. expert2 submits a
    corrected label, a third option: 1-1-1 with everyone voted, and the chair's vote decides, named in the event."""
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=3, quorum=2, chair="expert3")
    assert seat_holders(manager, case_id) == {"expert1", "expert2", "expert3"}

    vote(clients["expert3"], case_id, first["annotation"], "the chair: the first reading")
    vote(clients["expert1"], case_id, second["annotation"], "the second reading")
    assert case_status(manager, case_id) == S.IN_PANEL
    assert decisions(manager, case_id) == []  # a tie with a seated member yet to vote waits
    assert "adjudicated" not in {a["role"] for a in case_annotations(manager, case_id)}
    seats = ok(manager.get(f"{API}/cases/{case_id}/assignments/"))
    assert {row["username"]: row["status"] for row in seats if row["role"] == "panel_member"} == {
        "expert1": "submitted",
        "expert2": "active",
        "expert3": "submitted",
    }

    corrected = chest_values(case_of(case_id), diameter=7.5, nodule_type="part_solid")
    own = ok(
        clients["expert2"].post(f"{API}/cases/{case_id}/votes/", {"values": corrected, "rationale": "both off"}, JSON),
        201,
    )
    assert own["corrected"] is not None and own["voted_for"] is None
    assert case_status(manager, case_id) == S.ADJUDICATED
    [decision] = decisions(manager, case_id)
    metrics = decision["metrics"]
    assert decision["actor"] == "expert2"  # the last vote completed the panel
    assert (metrics["rule"], metrics["count"], metrics["votes_cast"], metrics["seated"]) == (
        "casting_vote_chair",
        "1-1-1",
        3,
        3,
    )
    assert (metrics["casting_voter"], metrics["rule_text"], metrics["deadline_passed"]) == (
        "expert3",
        "casting vote of the chair",
        False,
    )
    assert metrics["winner_revision"] == revision_pk(first)
    assert {k: metrics["winner"][k] for k in ("annotation", "role", "reader", "description")} == {
        "annotation": first["annotation"],
        "role": "first_reader",
        "reader": "annotator",
        "description": "first reading",
    }
    assert decision["reason"] == (
        "panel tied (1-1-1, 3 of 3 seated members voted): casting vote of the chair, expert3, for first reading "
        "(annotator)"
    )
    assert sorted((v["expert"], v["for"], v["corrected"]) for v in metrics["votes"]) == [
        ("expert1", revision_pk(second), False),
        ("expert2", own["corrected"], True),
        ("expert3", revision_pk(first), False),
    ]
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    assert without_masks(revision_items(manager, adjudicated["id"])) == without_masks(
        revision_items(manager, first["annotation"])
    )
