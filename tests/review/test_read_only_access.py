"""Who may open one reading read-only (issue 16 item 6: the case page opens any reading in the read-only reader),
through the three endpoints that reader loads: GET annotations/<id>/, its revisions and one revision.

- a manager of the project: every reading, at every step (drafts too);
- an expert: only while seated on the case's panel and the case is in panel or decided;
- a reader: only their own; never the other reader's while blind double reading goes on, nor after;
- anybody outside the project (a member of no project, the manager of another project): 404, the same answer as
  for an annotation that does not exist.

Each step of a case that goes from reading to panel to decision checks the whole table."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Annotation, CaseStatus, Project, Role
from tests.annotation.conftest import chest_values
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.review.conftest import API, case_of, case_status, claim, save, series_mask, set_policy
from tests.review.test_committee_rules import vote
from tests.review.test_workflow_e2e import seat_holders

S = CaseStatus
ENDPOINTS = ("{id}/", "{id}/revisions/", "{id}/revisions/1/")


def answers(client: Client, annotation_id: int) -> set[int]:
    """The status codes of the three endpoints for one annotation (one code when they agree)."""
    return {client.get(f"{API}/annotations/" + path.format(id=annotation_id)).status_code for path in ENDPOINTS}


def check(table: dict[str, Client], readings: dict[str, int], allowed: dict[str, set[str]]) -> None:
    """Every client against every reading: 200 where ``allowed`` says so, 404 everywhere else."""
    seen = {
        (who, name): answers(client, annotation_id)
        for who, client in table.items()
        for name, annotation_id in readings.items()
    }
    expected = {(who, name): {200} if name in allowed.get(who, set()) else {404} for who in table for name in readings}
    assert seen == expected


def test_who_may_open_a_reading_at_each_step_of_a_case(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User], client_for: Any
) -> None:
    slug = reading_project.slug
    # A manager of another project, with a reading of their own there, is still outside this one.
    elsewhere = UserFactory(username="other-manager")
    MembershipFactory(project=ProjectFactory(slug="elsewhere"), user=elsewhere, role=Role.MANAGER)
    table = {name: clients[name] for name in ("manager", "annotator", "reviewer", "expert", "expert3", "outsider")}
    table["other-manager"] = client_for(elsewhere)
    set_policy(clients["manager"], slug, panel_size=3, quorum=2, chair_username=None, mask_dice=0.8)

    case_id = claim(clients["annotator"], slug, "first_reader")
    assert claim(clients["reviewer"], slug, "second_reader") == case_id
    case = case_of(case_id)
    first = save(clients["annotator"], case_id, _values(case, 20), role="first_reader", submit=False)
    readings = {"first": int(first["annotation"])}
    missing = {"missing": 10_000_000}

    # A draft first reading: its reader and the manager only.
    check(table, {**readings, **missing}, {"manager": {"first"}, "annotator": {"first"}})

    # Submitted, the second reading a draft: blind, each reader their own.
    save(clients["annotator"], case_id, _values(case, 20), role="first_reader", base=1)
    second = save(clients["reviewer"], case_id, _values(case, 26), role="second_reader", submit=False)
    readings["second"] = int(second["annotation"])
    assert case_status(clients["manager"], case_id) == S.AWAITING_CROSS_VERIFICATION
    check(
        table,
        readings,
        {"manager": {"first", "second"}, "annotator": {"first"}, "reviewer": {"second"}},
    )

    # Both submitted, they disagree: in panel. The seated experts see both readings; the unseated one nothing.
    save(clients["reviewer"], case_id, _values(case, 26), role="second_reader", base=1)
    assert case_status(clients["manager"], case_id) == S.IN_PANEL
    seated = seat_holders(clients["manager"], case_id)
    assert "expert" in seated and "expert3" not in seated
    both = {"first", "second"}
    check(table, readings, {"manager": both, "annotator": {"first"}, "reviewer": {"second"}, "expert": both})

    # Decided by the panel: the adjudicated label joins; readers still see only their own.
    voters = sorted(seated - {"expert"})[:1] + ["expert"]
    for name in voters:
        vote(clients[name], case_id, readings["second"])
    assert case_status(clients["manager"], case_id) == S.ADJUDICATED
    readings["adjudicated"] = Annotation.objects.get(case_id=case_id, role="adjudicated").pk
    everything = set(readings)
    check(
        table,
        readings,
        {"manager": everything, "annotator": {"first"}, "reviewer": {"second"}, "expert": everything},
    )


def _values(case: Any, top: int) -> dict[str, Any]:
    """A complete reading whose mask starts at row ``top``: 20 and 26 overlap too little to agree (Dice < 0.8)."""
    return chest_values(case, mask=series_mask(case, slice(2, 5), slice(top, top + 10), slice(22, 32)))
