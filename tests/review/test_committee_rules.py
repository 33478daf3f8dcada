"""Panel decisions as a committee makes them (issue 13, item 1), end to end through the API.

A majority of the votes cast at quorum decides; a tie while seated members have not voted waits for them; the
chair's (or the senior expert's) casting vote applies only once every seated member voted or the policy's
voting deadline passed. Each decision event names the winning reading, the count and the rule; each vote says
which reading it is for. Also: verification accept/reject close the verifier's assignment with submitted_at.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from annotation.models import AnnotationRevision, Assignment, CaseStatus, Project, Role
from annotation.services import annotation_save_machine
from config.errors import PermissionDeniedError
from config.messages import english
from review import services
from review.models import PanelVote
from tests.annotation.conftest import chest_values
from tests.factories import MembershipFactory, UserFactory
from tests.review.conftest import (
    API,
    JSON,
    annotation_by_role,
    case_annotations,
    case_of,
    case_status,
    claim,
    events,
    ok,
    revision_items,
    revision_pk,
    save,
    set_policy,
    without_masks,
)
from tests.review.test_workflow_e2e import disputed_case, seat_holders

S = CaseStatus


def vote(client: Client, case_id: int, annotation_id: int, rationale: str = "seen") -> dict[str, Any]:
    body = {"voted_for_annotation": annotation_id, "rationale": rationale}
    return cast(dict[str, Any], ok(client.post(f"{API}/cases/{case_id}/votes/", body, JSON), 201))


def decisions(manager: Client, case_id: int) -> list[dict[str, Any]]:
    return [e for e in events(manager, case_id) if e["to_status"] == S.ADJUDICATED]


def test_a_one_one_split_waits_for_the_third_seated_expert_whose_vote_then_decides_by_majority(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """The issue's case: three seated experts, quorum two, no chair. expert1 (the most senior) votes for the
    first reading, expert2 for the second: no seniority tie-break while expert3 has yet to vote."""
    manager = clients["manager"]
    slug = reading_project.slug
    case_id, first, second, _ = disputed_case(slug, clients, panel_size=3, quorum=2)
    set_policy(manager, slug, chair_username=None)
    assert seat_holders(manager, case_id) == {"expert1", "expert2", "expert3"}

    vote(clients["expert1"], case_id, first["annotation"], "the first mask")
    vote(clients["expert2"], case_id, second["annotation"], "the second mask")
    assert case_status(manager, case_id) == S.IN_PANEL
    assert decisions(manager, case_id) == []
    listed = ok(clients["expert1"].get(f"{API}/cases/{case_id}/votes/"))
    assert [(v["expert"], v["voted_for"], v["reading"]) for v in listed] == [
        (
            "expert1",
            revision_pk(first),
            {
                "revision": revision_pk(first),
                "annotation": first["annotation"],
                "role": "first_reader",
                "reader": "annotator",
                "description": "first reading",
            },
        ),
        (
            "expert2",
            revision_pk(second),
            {
                "revision": revision_pk(second),
                "annotation": second["annotation"],
                "role": "second_reader",
                "reader": "reviewer",
                "description": "second reading",
            },
        ),
    ]
    assert "adjudicated" not in {a["role"] for a in case_annotations(manager, case_id)}
    # expert3's seat is still open on their panel worklist.
    seats = ok(manager.get(f"{API}/cases/{case_id}/assignments/"))
    assert {(row["username"], row["status"]) for row in seats if row["role"] == "panel_member"} == {
        ("expert1", "submitted"),
        ("expert2", "submitted"),
        ("expert3", "active"),
    }

    vote(clients["expert3"], case_id, second["annotation"], "the lower mask is right")
    assert case_status(manager, case_id) == S.ADJUDICATED
    [decision] = decisions(manager, case_id)
    metrics = decision["metrics"]
    assert decision["actor"] == "expert3"
    assert (metrics["rule"], metrics["count"], metrics["votes_cast"], metrics["seated"]) == ("majority", "2-1", 3, 3)
    assert metrics["winner_revision"] == revision_pk(second)
    assert {k: metrics["winner"][k] for k in ("annotation", "role", "reader", "description")} == {
        "annotation": second["annotation"],
        "role": "second_reader",
        "reader": "reviewer",
        "description": "second reading",
    }
    assert [(row["role"], row["votes"]) for row in metrics["tally"]] == [("second_reader", 2), ("first_reader", 1)]
    assert (metrics["casting_voter"], metrics["deadline_passed"], metrics["tie_broken_by_chair"]) == (
        None,
        False,
        False,
    )
    assert decision["reason"] == (
        "panel decided by majority (2-1, 3 of 3 seated members voted): second reading (reviewer)"
    )
    adjudicated = annotation_by_role(manager, case_id, "adjudicated")
    assert without_masks(revision_items(manager, adjudicated["id"])) == without_masks(
        revision_items(manager, second["annotation"])
    )


def test_a_two_two_tie_with_every_seated_member_voted_is_decided_by_the_chairs_casting_vote(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    manager = clients["manager"]
    slug = reading_project.slug
    expert4 = cast(User, UserFactory(username="expert4"))
    MembershipFactory(project=reading_project, user=expert4, role=Role.EXPERT)
    clients["expert4"] = Client()
    clients["expert4"].force_login(expert4)
    case_id, first, second, _ = disputed_case(slug, clients, panel_size=4, quorum=4, chair="expert3")
    assert seat_holders(manager, case_id) == {"expert1", "expert2", "expert3", "expert4"}

    for name, reading in (("expert1", first), ("expert2", second), ("expert4", first)):
        vote(clients[name], case_id, reading["annotation"], name)
        assert case_status(manager, case_id) == S.IN_PANEL
    vote(clients["expert3"], case_id, second["annotation"], "the chair: the second")
    assert case_status(manager, case_id) == S.ADJUDICATED
    [decision] = decisions(manager, case_id)
    metrics = decision["metrics"]
    assert (metrics["rule"], metrics["count"], metrics["casting_voter"]) == ("casting_vote_chair", "2-2", "expert3")
    assert (metrics["rule_text"], metrics["deadline_passed"]) == ("casting vote of the chair", False)
    assert metrics["winner"]["annotation"] == second["annotation"]
    assert decision["reason"] == (
        "panel tied (2-2, 4 of 4 seated members voted): casting vote of the chair, expert3, for second reading "
        "(reviewer)"
    )


def test_a_one_one_tie_of_a_full_panel_without_a_chair_is_decided_by_the_senior_experts_casting_vote(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=2, quorum=2)
    set_policy(manager, reading_project.slug, chair_username=None)
    senior, junior = sorted(seat_holders(manager, case_id))  # expert1..3 joined in name order
    vote(clients[junior], case_id, first["annotation"])
    vote(clients[senior], case_id, second["annotation"])
    [decision] = decisions(manager, case_id)
    assert (decision["metrics"]["rule"], decision["metrics"]["casting_voter"]) == ("casting_vote_senior_expert", senior)
    assert decision["metrics"]["rule_text"] == "casting vote of the senior expert"
    assert f"casting vote of the senior expert, {senior} (no chair is set), for second reading" in decision["reason"]


def test_after_the_deadline_a_tie_is_decided_by_the_casting_vote_among_the_votes_cast(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """Three seated, quorum two, a 48-hour deadline: a 1-1 tie waits while the deadline runs, and the periodic
    service decides it once the deadline passed (expert1, the senior expert, voted in the tie). Idempotent."""
    manager = clients["manager"]
    slug = reading_project.slug
    case_id, first, second, _ = disputed_case(slug, clients, panel_size=3, quorum=2)
    policy = set_policy(manager, slug, chair_username=None, panel_deadline_hours=48)
    assert policy["panel_deadline_hours"] == 48
    vote(clients["expert2"], case_id, second["annotation"], "the second")
    later = timezone.now() + timedelta(hours=49)
    assert services.panel_deadlines_apply(now=later) == []  # below quorum: nothing to decide, even late
    vote(clients["expert1"], case_id, first["annotation"], "the first")
    assert case_status(manager, case_id) == S.IN_PANEL  # a tie before the deadline waits for expert3

    out = StringIO()
    call_command("apply_panel_deadlines", stdout=out)  # now: the deadline has not passed
    assert out.getvalue().startswith("0 panel case(s) decided")
    assert case_status(manager, case_id) == S.IN_PANEL

    assert services.panel_deadlines_apply(now=later) == [case_id]
    assert services.panel_deadlines_apply(now=later) == []  # run twice: decided once
    assert case_status(manager, case_id) == S.ADJUDICATED
    [decision] = decisions(manager, case_id)
    metrics = decision["metrics"]
    assert decision["actor"] is None
    assert (metrics["rule"], metrics["count"], metrics["casting_voter"]) == (
        "casting_vote_senior_expert",
        "1-1",
        "expert1",
    )
    assert (metrics["deadline_passed"], metrics["votes_cast"], metrics["seated"]) == (True, 2, 3)
    assert metrics["rule_text"] == "casting vote of the senior expert (deadline passed)"
    assert metrics["winner"]["annotation"] == first["annotation"]
    assert decision["reason"] == (
        "panel tied (1-1, 2 of 3 seated members voted; the voting deadline of 48 h passed): casting vote of the "
        "senior expert, expert1 (no chair is set), for first reading (annotator)"
    )
    response = clients["expert3"].post(
        f"{API}/cases/{case_id}/votes/", {"voted_for_annotation": second["annotation"], "rationale": "late"}, JSON
    )
    assert response.status_code == 409


def test_a_vote_that_ties_after_the_deadline_is_decided_at_once_by_the_chair(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User], monkeypatch: pytest.MonkeyPatch
):
    manager = clients["manager"]
    slug = reading_project.slug
    case_id, first, second, _ = disputed_case(slug, clients, panel_size=3, quorum=2, chair="expert2")
    set_policy(manager, slug, panel_deadline_hours=24)
    vote(clients["expert1"], case_id, first["annotation"])
    later = timezone.now() + timedelta(hours=25)
    monkeypatch.setattr(services.timezone, "now", lambda: later)
    vote(clients["expert2"], case_id, second["annotation"])
    assert case_status(manager, case_id) == S.ADJUDICATED
    [decision] = decisions(manager, case_id)
    metrics = decision["metrics"]
    assert (metrics["rule"], metrics["casting_voter"], metrics["deadline_passed"]) == (
        "casting_vote_chair",
        "expert2",
        True,
    )
    assert metrics["rule_text"] == "casting vote of the chair (deadline passed)"
    assert "the voting deadline of 24 h passed" in decision["reason"]


def test_the_votes_api_says_which_reading_each_vote_is_for(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    """A correction, its endorsement and a vote for the AI proposal: each vote names its reading; the correction
    wins 2-1 and the decision names it with its author."""
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=3, quorum=3)
    case = case_of(case_id)
    annotation_save_machine(case=case, model_version="test-model", values=chest_values(case, mask=True))
    ai = annotation_by_role(clients["expert3"], case_id, "ai")
    corrected = ok(
        clients["expert1"].post(
            f"{API}/cases/{case_id}/votes/",
            {"values": chest_values(case, mask=True, diameter=7.0), "rationale": "between the two"},
            JSON,
        ),
        201,
    )
    assert corrected["reading"]["description"] == "expert correction by expert1"
    correction = annotation_by_role(clients["expert2"], case_id, "panel_member")
    endorsement = vote(clients["expert2"], case_id, correction["id"], "agree with expert1")
    assert endorsement["reading"] == {
        "revision": corrected["corrected"],
        "annotation": correction["id"],
        "role": "panel_member",
        "reader": "expert1",
        "description": "expert correction by expert1",
    }
    vote(clients["expert3"], case_id, ai["id"], "the AI is closest")

    for name in ("expert1", "manager"):
        listed = ok(clients[name].get(f"{API}/cases/{case_id}/votes/"))
        assert [
            (v["expert"], v["reading"]["role"], v["reading"]["reader"], v["reading"]["description"]) for v in listed
        ] == [
            ("expert1", "panel_member", "expert1", "expert correction by expert1"),
            ("expert2", "panel_member", "expert1", "expert correction by expert1"),
            ("expert3", "ai", None, "AI proposal"),
        ]
        assert listed[2]["reading"]["annotation"] == ai["id"]
    [decision] = decisions(manager, case_id)
    assert (decision["metrics"]["rule"], decision["metrics"]["count"]) == ("majority", "2-1")
    assert decision["reason"].endswith(": expert correction by expert1")
    assert [v["reading"] for v in decision["metrics"]["votes"]] == [
        "expert correction by expert1",
        "expert correction by expert1",
        "AI proposal",
    ]


def test_an_expert_not_seated_cannot_vote_and_a_second_vote_does_not_count_twice(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    manager = clients["manager"]
    case_id, first, second, _ = disputed_case(reading_project.slug, clients, panel_size=2, quorum=2, chair="expert1")
    seated = sorted(seat_holders(manager, case_id))
    assert seated == ["expert1", "expert2"]
    outsider = clients["expert3"]  # an expert of the project, not on this case's panel
    body = {"voted_for_annotation": first["annotation"], "rationale": "not mine to vote"}
    # The case is not theirs to see: 404, as for any case outside one's assignments (existence does not leak).
    assert outsider.post(f"{API}/cases/{case_id}/votes/", body, JSON).status_code == 404
    values = chest_values(case_of(case_id), mask=True)
    response = outsider.post(f"{API}/cases/{case_id}/votes/", {"values": values, "rationale": "x"}, JSON)
    assert response.status_code == 404
    # The service refuses a seatless vote too, whoever calls it.
    with pytest.raises(PermissionDeniedError):
        services.panel_vote(
            case=case_of(case_id),
            expert=experts["expert3"],
            rationale="x",
            voted_for=AnnotationRevision.objects.get(pk=revision_pk(first)),
        )
    assert not PanelVote.objects.filter(case_id=case_id).exists()

    vote(clients["expert2"], case_id, second["annotation"], "the second")
    for reading in (second, first):  # neither again for the same reading nor for another
        body = {"voted_for_annotation": reading["annotation"], "rationale": "once more"}
        assert clients["expert2"].post(f"{API}/cases/{case_id}/votes/", body, JSON).status_code == 409
    response = clients["expert2"].post(f"{API}/cases/{case_id}/votes/", {"values": values, "rationale": "y"}, JSON)
    assert response.status_code == 409
    assert len(ok(manager.get(f"{API}/cases/{case_id}/votes/"))) == 1
    assert case_status(manager, case_id) == S.IN_PANEL  # one vote of two seats: no quorum, no decision

    vote(clients["expert1"], case_id, first["annotation"], "the chair: the first")
    [decision] = decisions(manager, case_id)
    # 1-1 decided by the chair: expert2's repeated attempts did not make it 2-1 for the second reading.
    assert (decision["metrics"]["count"], decision["metrics"]["rule"]) == ("1-1", "casting_vote_chair")
    assert decision["metrics"]["winner"]["annotation"] == first["annotation"]
    assert [v["expert"] for v in decision["metrics"]["votes"]] == ["expert2", "expert1"]


@pytest.mark.parametrize("outcome", ["accept", "reject"])
def test_verification_accept_and_reject_record_when_the_verifier_finished(
    reading_project: Project, clients: dict[str, Client], outcome: str
):
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    slug = reading_project.slug
    set_policy(manager, slug, mode="verification")
    case_id = claim(annotator, slug, "first_reader")
    save(annotator, case_id, chest_values(case_of(case_id), mask=True), role="first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    before = timezone.now()
    body = {"outcome": outcome, "reason": "" if outcome == "accept" else "the nodule is a vessel"}
    status = ok(reviewer.post(f"{API}/cases/{case_id}/verification/", body, JSON))["status"]
    assert status == (S.AGREED if outcome == "accept" else S.IN_PANEL)
    rows = {row["username"]: row for row in ok(manager.get(f"{API}/cases/{case_id}/assignments/"))}
    verifier = rows["reviewer"]
    assert (verifier["role"], verifier["status"]) == ("second_reader", "submitted")
    assert verifier["submitted_at"] is not None
    stored = Assignment.objects.get(pk=verifier["id"])
    assert stored.submitted_at is not None and stored.submitted_at >= before
    assert stored.submitted_at >= stored.created_at
    # The first reader's assignment was already closed by their submission, as before.
    assert rows["annotator"]["submitted_at"] is not None


# --- The rules on their own (review.services.panel_decision) ------------------------------------------------------

A, B, C, D = 101, 102, 103, 104
# Casting order: the chair (id 5) first, then the seated experts by seniority.
ORDER = [(5, "chair", True), (1, "senior", False), (2, "e2", False), (3, "e3", False), (4, "e4", False)]


def ballots(*votes: tuple[int, int]) -> list[services.Ballot]:
    return [services.Ballot(expert_id, f"e{expert_id}", choice) for expert_id, choice in votes]


@pytest.mark.parametrize(
    ("votes", "seated", "quorum", "deadline_passed", "expected"),
    [
        # below quorum: nothing, even after the deadline
        (((1, A),), 3, 2, True, None),
        # a majority of the votes cast at quorum decides while others may still vote
        (((1, A), (2, A)), 5, 2, False, (A, "majority", "2", "")),
        (((1, A), (2, B), (3, A)), 5, 3, False, (A, "majority", "2-1", "")),
        # no majority (2 of 4) with a member still to vote: wait; once all voted, the most votes win
        (((1, A), (2, A), (3, B), (4, C)), 5, 3, False, None),
        (((1, A), (2, A), (3, B), (4, C), (5, D)), 5, 3, False, (A, "plurality", "2-1-1-1", "")),
        # a tie with every member voted: the chair's casting vote
        (((1, A), (5, B)), 2, 2, False, (B, "casting_vote_chair", "1-1", "chair")),
        # the chair voted outside the tie: the senior expert who voted in it casts
        (((1, A), (2, A), (3, B), (4, B), (5, C)), 5, 5, False, (A, "casting_vote_senior_expert", "2-2-1", "senior")),
        # the deadline passed, the chair has not voted: the senior expert in the tie casts
        (((2, A), (3, B)), 5, 2, True, (A, "casting_vote_senior_expert", "1-1", "e2")),
    ],
)
def test_panel_decision_rules(
    votes: tuple[tuple[int, int], ...],
    seated: int,
    quorum: int,
    deadline_passed: bool,
    expected: tuple[int, str, str, str] | None,
) -> None:
    decision = services.panel_decision(
        ballots=ballots(*votes),
        seated=seated,
        quorum=quorum,
        casting_order=ORDER,
        deadline_passed=deadline_passed,
    )
    if expected is None:
        assert decision is None
        return
    assert decision is not None
    assert (decision.winner, decision.rule, decision.count, decision.casting_voter) == expected
    assert decision.deadline_passed == (deadline_passed and decision.rule != "majority" and len(votes) < seated)
    if decision.rule == "casting_vote_senior_expert":
        assert decision.casting_note is not None
        assert english(decision.casting_note) in (
            "the chair, chair, voted for neither",
            "the chair, chair, has not voted",
        )
