"""Blind double reading keeps the readers apart: while a case is read twice (both readers assigned, one or
both submitted, not yet decided, and after the decision too) the second reader gets nothing of the first
reading through any endpoint: not its content, not its id, not its author, not a count that includes it.
The same holds the other way round. A reader is not even shown the workflow status of a case they read
("awaiting_cross_verification" would say the other reader is done) but their own progress: in_progress,
submitted, then closed once the reading is over; the manager sees the real status. Nothing else in the
reader's view changes while the other reader acts. A hidden annotation answers exactly like a missing one.
Experts see the readings only when seated on the case's panel and only once the
case is in panel.

Every endpoint that could leak is a parameter; each test walks a case through its states (in both orders of
submission, to an agreed and to a disputed outcome) and checks the endpoint at every step."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Annotation, Case, CaseStatus, Project, Role
from annotation.selectors import READER_STATUSES
from tests.annotation.conftest import chest_values, post_revision
from tests.factories import MembershipFactory, UserFactory
from tests.review.conftest import (
    API,
    JSON,
    case_annotations,
    case_of,
    case_status,
    claim,
    ok,
    results,
    save,
    series_mask,
    set_policy,
)

S = CaseStatus
SECRET = "SECRET-FIRST-READING-7f3a"  # the first reader's free-text comment: must never reach the second reader
FIRST = "first-reader-kim"  # the first reader's user name: must never reach the second reader either
REVIEWER_NOTE = "the reviewer's own note"


@dataclass
class World:
    slug: str
    case: Case
    clients: dict[str, Client]
    reviewer_annotation: int
    reviewer_revisions: int = 1
    reviewer_submitted: bool = False
    first_annotation: int | None = None
    first_revisions: int = 0
    baseline: dict[str, Any] = field(default_factory=dict)

    @property
    def case_id(self) -> int:
        return int(self.case.pk)

    @property
    def reviewer(self) -> Client:
        return self.clients["reviewer"]

    def hidden_annotations(self) -> list[int]:
        """Every annotation of the case other than the reviewer's own (the first reading, a consensus...),
        and an id that does not exist at all."""
        ids = list(
            Annotation.objects.filter(case=self.case).exclude(pk=self.reviewer_annotation).values_list("pk", flat=True)
        )
        return [*ids, 10_000_000]


def no_leak(response: Any, what: str) -> None:
    """Nothing in the body names the first reading's content or author."""
    body = response.content.decode(errors="replace")
    assert SECRET not in body, what
    assert FIRST not in body, what


def first_values(case: Case) -> dict[str, Any]:
    mask = series_mask(case, slice(2, 5), slice(20, 30), slice(22, 32))
    return chest_values(case, mask=mask, findings=["emphysema"], comment=SECRET)


def reviewer_values(case: Case, outcome: str) -> dict[str, Any]:
    if outcome == "disputed":
        return chest_values(case, nodule_present="no", box=False, comment=REVIEWER_NOTE)
    mask = series_mask(case, slice(2, 5), slice(21, 31), slice(22, 32))  # Dice 0.9 with the first reading's
    return chest_values(case, mask=mask, findings=["emphysema"], comment=REVIEWER_NOTE)


# --- The endpoints, each checked from the second reader's side -------------------------------------------------


def check_case_annotations(w: World) -> None:
    response = w.reviewer.get(f"{API}/cases/{w.case_id}/annotations/")
    no_leak(response, "case annotations")
    rows = ok(response)
    assert [(a["id"], a["reader"], a["role"]) for a in rows] == [(w.reviewer_annotation, "reviewer", "second_reader")]
    assert rows[0]["current_revision"] == w.reviewer_revisions
    assert_same_as_baseline(w, "case annotations", rows)


def check_annotation_detail(w: World) -> None:
    for annotation_id in w.hidden_annotations():
        response = w.reviewer.get(f"{API}/annotations/{annotation_id}/")
        assert response.status_code == 404, annotation_id
        no_leak(response, "annotation detail")
    assert ok(w.reviewer.get(f"{API}/annotations/{w.reviewer_annotation}/"))["reader"] == "reviewer"


def check_revision_list(w: World) -> None:
    for annotation_id in w.hidden_annotations():
        response = w.reviewer.get(f"{API}/annotations/{annotation_id}/revisions/")
        assert response.status_code == 404, annotation_id
        no_leak(response, "revision list")


def check_revision_detail(w: World) -> None:
    for annotation_id in w.hidden_annotations():
        for number in (1, 2):
            for query in ("", "?masks=0"):
                response = w.reviewer.get(f"{API}/annotations/{annotation_id}/revisions/{number}/{query}")
                assert response.status_code == 404, (annotation_id, number, query)
                no_leak(response, "revision detail")


def check_diff(w: World) -> None:
    for annotation_id in w.hidden_annotations():
        response = w.reviewer.get(f"{API}/annotations/{annotation_id}/diff/?from=1&to=2")
        assert response.status_code == 404, annotation_id
        no_leak(response, "diff")


def check_case_detail(w: World) -> None:
    response = w.reviewer.get(f"{API}/cases/{w.case_id}/")
    no_leak(response, "case detail")
    body = ok(response)
    # Counts are the reader's own (or not given at all), never the other reader's.
    assert body["readers_assigned"] in (None, 1)
    assert body["readings_submitted"] in (None, int(w.reviewer_submitted))
    # The status the reviewer is shown follows their own work only; no time of the other reader's acts.
    assert (body["status"], body["updated_at"]) == (shown_status(w), None)
    assert_same_as_baseline(w, "case detail", body)


def check_case_list(w: World) -> None:
    for query in ("", "?ordering=-status", "?ordering=status", f"?status={shown_status(w)}"):
        response = w.reviewer.get(f"{API}/projects/{w.slug}/cases/{query}")
        no_leak(response, "case list")
        rows = results(response)
        assert [row["id"] for row in rows] == [w.case_id], query  # only the case the reviewer reads
        assert (rows[0]["readers_assigned"], rows[0]["readings_submitted"]) == (1, int(w.reviewer_submitted))
        assert (rows[0]["status"], rows[0]["updated_at"]) == (shown_status(w), None)
    # Filtering cannot probe the hidden status: every workflow status, and the other shown ones, list nothing.
    for status in [*S.values, *(v for v in READER_STATUSES if v != shown_status(w))]:
        assert results(w.reviewer.get(f"{API}/projects/{w.slug}/cases/?status={status}")) == [], status
    assert_same_as_baseline(w, "case list", results(w.reviewer.get(f"{API}/projects/{w.slug}/cases/")))


def check_worklist(w: World) -> None:
    response = w.reviewer.get(f"{API}/projects/{w.slug}/worklist/?role=second_reader")
    no_leak(response, "worklist")
    body = ok(response)
    assert [(a["username"], a["case"]["id"]) for a in body["assignments"]] == [("reviewer", w.case_id)]
    expected = {"active": 0, "submitted": 0, "released": 0}
    expected["submitted" if w.reviewer_submitted else "active"] = 1
    assert body["counts"] == expected
    assert body["assignments"][0]["case"]["readings_submitted"] in (None, int(w.reviewer_submitted))
    assert body["assignments"][0]["case"]["status"] == shown_status(w)
    assert_same_as_baseline(w, "worklist", body)
    for role in ("first_reader", "panel_member"):  # roles the reviewer does not have
        response = w.reviewer.get(f"{API}/projects/{w.slug}/worklist/?role={role}")
        assert response.status_code == 403
        no_leak(response, "worklist of another role")


def check_worklist_next(w: World) -> None:
    response = w.reviewer.post(f"{API}/projects/{w.slug}/worklist/next/", {"role": "second_reader"}, JSON)
    no_leak(response, "worklist next")
    if not w.reviewer_submitted:
        body = ok(response)
        assert (body["username"], body["case"]["id"], body["status"]) == ("reviewer", w.case_id, "active")
        assert body["case"]["status"] == shown_status(w) == "in_progress"
    else:  # the reviewer is done with this case: "next" is another one, never the first reading
        assert response.status_code in (200, 204)
        if response.status_code == 200:
            assert response.json()["case"]["id"] != w.case_id


def check_case_assignments(w: World) -> None:
    response = w.reviewer.get(f"{API}/cases/{w.case_id}/assignments/")
    no_leak(response, "case assignments")
    rows = ok(response)
    assert [(a["username"], a["role"]) for a in rows] == [("reviewer", "second_reader")]
    assert rows[0]["case"]["status"] == shown_status(w)
    assert_same_as_baseline(w, "case assignments", rows)


def check_agreement(w: World) -> None:
    response = w.reviewer.get(f"{API}/cases/{w.case_id}/agreement/")
    assert response.status_code == 403
    no_leak(response, "agreement")


def check_events(w: World) -> None:
    response = w.reviewer.get(f"{API}/cases/{w.case_id}/events/")
    assert response.status_code == 403
    no_leak(response, "events")


def check_votes(w: World) -> None:
    response = w.reviewer.get(f"{API}/cases/{w.case_id}/votes/")
    assert response.status_code == 403
    no_leak(response, "votes")
    for annotation_id in w.hidden_annotations():
        body = {"voted_for_annotation": annotation_id, "rationale": "probe"}
        response = w.reviewer.post(f"{API}/cases/{w.case_id}/votes/", body, JSON)
        assert response.status_code == 404, annotation_id  # the same for the first reading and for nothing
        no_leak(response, "vote for a hidden reading")


def check_save_errors(w: World) -> None:
    """Saving errors speak of the reviewer's own reading only."""
    values = reviewer_values(w.case, "agreed")
    # As the first reader (the other reader's role): not assigned.
    response = post_revision(w.reviewer, w.case_id, values, base_revision=w.first_revisions, role="first_reader")
    assert response.status_code == 403
    no_leak(response, "save in the other reader's role")
    # A stale base: the conflict names the reviewer's own annotation and revision.
    response = post_revision(
        w.reviewer, w.case_id, values, base_revision=w.reviewer_revisions + 5, role="second_reader"
    )
    assert response.status_code == 409
    no_leak(response, "stale save")
    if not w.reviewer_submitted:
        body = response.json()
        assert (body["annotation"], body["current_revision"]) == (w.reviewer_annotation, w.reviewer_revisions)
    # Invalid values: the error is about the values sent.
    response = post_revision(
        w.reviewer, w.case_id, {"items": [{"label": "nope"}]}, base_revision=0, role="second_reader"
    )
    assert response.status_code in (400, 409)
    no_leak(response, "invalid save")


def check_verification(w: World) -> None:
    for body in ({"outcome": "accept"}, {"outcome": "reject", "reason": "probe"}):
        response = w.reviewer.post(f"{API}/cases/{w.case_id}/verification/", body, JSON)
        assert response.status_code == 409  # blind double reading: nothing to verify
        no_leak(response, "verification")


def check_dicomweb(w: World) -> None:
    """The same images as the first reader sees, and no annotation data."""
    study = w.case.study.study_instance_uid
    for path in (
        f"/dicomweb/projects/{w.slug}/studies",
        f"/dicomweb/projects/{w.slug}/studies/{study}/series",
        f"/dicomweb/projects/{w.slug}/studies/{study}/metadata",
        f"/dicomweb/studies/{study}/instances",
        f"{API}/imaging/studies/{study}/",
    ):
        mine = w.reviewer.get(path)
        theirs = w.clients["annotator"].get(path)
        assert mine.status_code == 200, (path, mine.content[:300])
        no_leak(mine, path)
        assert json.loads(mine.content) == json.loads(theirs.content), path
        assert_same_as_baseline(w, path, json.loads(mine.content))


CHECKS: list[Callable[[World], None]] = [
    check_case_annotations,
    check_annotation_detail,
    check_revision_list,
    check_revision_detail,
    check_diff,
    check_case_detail,
    check_case_list,
    check_worklist,
    check_worklist_next,
    check_case_assignments,
    check_agreement,
    check_events,
    check_votes,
    check_save_errors,
    check_verification,
    check_dicomweb,
]

# Nothing in the second reader's view may change while only the first reader acts: not the status they are
# shown, not a time. (Their view changes with their own saves, and once when the reading is over.)
VOLATILE: set[str] = set()


def reading_over(w: World) -> bool:
    return Case.objects.get(pk=w.case_id).status not in (S.AWAITING_FIRST_READ, S.AWAITING_CROSS_VERIFICATION)


def shown_status(w: World) -> str:
    """The status the reviewer must be shown: their own progress, then "closed" once the reading is over."""
    if reading_over(w):
        assert w.reviewer_submitted  # a blind double reading cannot end without the reviewer's reading
        return "closed"
    return "submitted" if w.reviewer_submitted else "in_progress"


def normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def assert_same_as_baseline(w: World, key: str, body: Any) -> None:
    """While the reviewer does nothing, their view does not change when the first reader acts."""
    key = f"{key} after the reviewer's revision {w.reviewer_revisions}"  # the reviewer's own saves do change it
    if reading_over(w):
        key += ", the reading over"
    if key not in w.baseline:
        w.baseline[key] = normalised(body)
    else:
        assert normalised(body) == w.baseline[key], key


# --- Walking a case through its states -------------------------------------------------------------------------


def start(reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]) -> World:
    first_reader = cast(User, UserFactory(username=FIRST))
    MembershipFactory(project=reading_project, user=first_reader, role=Role.ANNOTATOR)
    clients = {name: client_for(users[name]) for name in ("reviewer", "manager", "expert")}
    clients["annotator"] = client_for(first_reader)
    slug = reading_project.slug
    set_policy(clients["manager"], slug, mode="blind_double", second_read_share=1.0)
    case_id = claim(clients["annotator"], slug, "first_reader")
    assert claim(clients["reviewer"], slug, "second_reader") == case_id
    case = case_of(case_id)
    # The reviewer starts with a draft of their own, so that "their own" is never an empty answer.
    draft = save(
        clients["reviewer"],
        case_id,
        {"items": [{"label": "nodule_present", "value": "yes"}]},
        role="second_reader",
        submit=False,
    )
    return World(slug=slug, case=case, clients=clients, reviewer_annotation=draft["annotation"])


def annotator_draft(w: World, outcome: str) -> None:
    saved = save(w.clients["annotator"], w.case_id, first_values(w.case), role="first_reader", submit=False)
    w.first_annotation, w.first_revisions = saved["annotation"], saved["number"]


def annotator_submit(w: World, outcome: str) -> None:
    saved = save(w.clients["annotator"], w.case_id, first_values(w.case), role="first_reader", base=w.first_revisions)
    w.first_revisions = saved["number"]


def reviewer_submit(w: World, outcome: str) -> None:
    save(w.reviewer, w.case_id, reviewer_values(w.case, outcome), role="second_reader", base=w.reviewer_revisions)
    w.reviewer_revisions += 1
    w.reviewer_submitted = True


ORDERS = {
    "annotator_first": [annotator_draft, annotator_submit, reviewer_submit],
    "reviewer_first": [reviewer_submit, annotator_draft, annotator_submit],
}
FINAL = {"agreed": S.AGREED, "disputed": S.IN_PANEL}


@pytest.mark.parametrize("outcome", ["agreed", "disputed"])
@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("check", [pytest.param(c, id=c.__name__.removeprefix("check_")) for c in CHECKS])
def test_second_reader_gets_nothing_of_the_first_reading(
    check: Callable[[World], None],
    order: str,
    outcome: str,
    reading_project: Project,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
):
    w = start(reading_project, users, client_for)
    check(w)  # both assigned, only the reviewer's draft
    for step in ORDERS[order]:
        step(w, outcome)
        check(w)
    manager = w.clients["manager"]
    assert case_status(manager, w.case_id) == FINAL[outcome]
    if outcome == "agreed":
        consensus = [a for a in case_annotations(manager, w.case_id) if a["role"] == "consensus"]
        assert len(consensus) == 1 and consensus[0]["id"] in w.hidden_annotations()
    # Every state has been checked; the first reading did exist and held the secret all along.
    assert w.first_annotation is not None
    items = ok(manager.get(f"{API}/annotations/{w.first_annotation}/revisions/{w.first_revisions}/?masks=0"))["items"]
    assert {"label": "comment", "value": SECRET} in items


def test_the_first_reader_gets_nothing_of_the_second_reading(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
):
    """The same blindness the other way round (the reviewer submits first, then the annotator reads)."""
    w = start(reading_project, users, client_for)
    reviewer_submit(w, "agreed")
    annotator = w.clients["annotator"]
    for step in (annotator_draft, annotator_submit):
        visible = case_annotations(annotator, w.case_id) if w.first_annotation else []
        assert all(a["reader"] == FIRST for a in visible)
        for path in (
            f"{API}/annotations/{w.reviewer_annotation}/",
            f"{API}/annotations/{w.reviewer_annotation}/revisions/",
            f"{API}/annotations/{w.reviewer_annotation}/revisions/2/",
            f"{API}/annotations/{w.reviewer_annotation}/diff/?from=1&to=2",
        ):
            response = annotator.get(path)
            assert response.status_code == 404, path
            assert REVIEWER_NOTE not in response.content.decode() and "reviewer" not in response.content.decode()
        for path in ("agreement", "events", "votes"):
            assert annotator.get(f"{API}/cases/{w.case_id}/{path}/").status_code == 403
        step(w, "agreed")
    assert case_status(w.clients["manager"], w.case_id) == S.AGREED
    assert [a["reader"] for a in case_annotations(annotator, w.case_id)] == [FIRST]
    row = results(annotator.get(f"{API}/projects/{w.slug}/cases/"))[0]
    assert (row["readers_assigned"], row["readings_submitted"]) == (1, 1)


def test_a_hidden_annotation_answers_exactly_like_a_missing_one(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
):
    w = start(reading_project, users, client_for)
    annotator_draft(w, "agreed")
    assert w.first_annotation is not None
    hidden = w.reviewer.get(f"{API}/annotations/{w.first_annotation}/")
    missing = w.reviewer.get(f"{API}/annotations/10000000/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == json.loads(missing.content.decode().replace("10000000", str(w.first_annotation)))


# --- Experts: nothing unless seated, and readings only once in panel --------------------------------------------


def outsider_paths(w: World) -> list[tuple[str, str, dict[str, Any] | None]]:
    ids = w.hidden_annotations()[:-1] + [w.reviewer_annotation]
    paths: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"{API}/cases/{w.case_id}/", None),
        ("GET", f"{API}/cases/{w.case_id}/annotations/", None),
        ("GET", f"{API}/cases/{w.case_id}/assignments/", None),
        ("GET", f"{API}/cases/{w.case_id}/agreement/", None),
        ("GET", f"{API}/cases/{w.case_id}/events/", None),
        ("GET", f"{API}/cases/{w.case_id}/votes/", None),
        ("POST", f"{API}/cases/{w.case_id}/votes/", {"voted_for_annotation": ids[0], "rationale": "probe"}),
        ("POST", f"{API}/cases/{w.case_id}/verification/", {"outcome": "accept"}),
    ]
    for annotation_id in ids:
        paths += [
            ("GET", f"{API}/annotations/{annotation_id}/", None),
            ("GET", f"{API}/annotations/{annotation_id}/revisions/", None),
            ("GET", f"{API}/annotations/{annotation_id}/revisions/1/", None),
            ("GET", f"{API}/annotations/{annotation_id}/diff/?from=1&to=2", None),
        ]
    return paths


def assert_sees_nothing(w: World, client: Client, who: str) -> None:
    for method, path, body in outsider_paths(w):
        response = client.get(path) if method == "GET" else client.post(path, body, JSON)
        assert response.status_code == 404, (who, method, path, response.status_code)
        no_leak(response, f"{who} {method} {path}")
        assert REVIEWER_NOTE not in response.content.decode()
    listed = client.get(f"{API}/projects/{w.slug}/cases/")
    assert listed.status_code in (200, 404)  # 404: not a member of the project at all
    if listed.status_code == 200:
        assert w.case_id not in [c["id"] for c in results(listed)]
    worklist = client.get(f"{API}/projects/{w.slug}/worklist/?role=panel_member")
    if worklist.status_code == 200:
        assert w.case_id not in [a["case"]["id"] for a in worklist.json()["assignments"]]


@pytest.mark.parametrize("outcome", ["agreed", "disputed"])
def test_an_expert_not_seated_on_the_panel_sees_nothing_of_the_case(
    outcome: str,
    reading_project: Project,
    users: dict[str, User],
    experts: dict[str, User],
    client_for: Callable[[User | None], Client],
):
    w = start(reading_project, users, client_for)
    set_policy(w.clients["manager"], w.slug, panel_size=3, quorum=2)
    unseated = {name: client_for(user) for name, user in experts.items()}
    unseated["outsider"] = client_for(users["outsider"])
    for step in (annotator_draft, annotator_submit, reviewer_submit):
        step(w, outcome)
        seated = {a.user.username for a in w.case.assignments.filter(role="panel_member")}
        for name, client in unseated.items():
            if name not in seated:
                assert_sees_nothing(w, client, name)
    assert case_status(w.clients["manager"], w.case_id) == FINAL[outcome]
    seated = {a.user.username for a in w.case.assignments.filter(role="panel_member")}
    assert len(seated) == (3 if outcome == "disputed" else 0)
    left_out = {"expert", "expert1", "expert2", "expert3"} - seated
    assert left_out  # four experts, three seats: at least one was left out and was checked above
    # Pressing "next" does not get the unseated expert onto the full panel.
    for name in left_out - {"expert"}:
        response = unseated[name].post(f"{API}/projects/{w.slug}/worklist/next/", {"role": "panel_member"}, JSON)
        assert response.status_code == 204
        assert_sees_nothing(w, unseated[name], name)


def test_a_seated_expert_sees_every_reading_only_once_the_case_is_in_panel(
    reading_project: Project,
    users: dict[str, User],
    experts: dict[str, User],
    client_for: Callable[[User | None], Client],
):
    w = start(reading_project, users, client_for)
    manager = w.clients["manager"]
    set_policy(manager, w.slug, panel_size=2, quorum=2, chair_username="expert1")
    expert1, expert2 = client_for(experts["expert1"]), client_for(experts["expert2"])
    # The manager seats expert1 on the panel early, while the case is still read blind.
    ok(
        manager.post(f"{API}/cases/{w.case_id}/assignments/", {"username": "expert1", "role": "panel_member"}, JSON),
        201,
    )
    for step in (annotator_draft, annotator_submit):
        step(w, "disputed")
        assert case_annotations(expert1, w.case_id) == []  # seated, but the case is not in panel yet
        assert w.first_annotation is not None
        for path in (
            f"{API}/annotations/{w.first_annotation}/",
            f"{API}/annotations/{w.first_annotation}/revisions/{w.first_revisions}/",
            f"{API}/annotations/{w.reviewer_annotation}/",
        ):
            response = expert1.get(path)
            assert response.status_code == 404, path
            assert SECRET not in response.content.decode()
        body = {"voted_for_annotation": w.first_annotation, "rationale": "too early"}
        assert expert1.post(f"{API}/cases/{w.case_id}/votes/", body, JSON).status_code == 404
    reviewer_submit(w, "disputed")
    assert case_status(manager, w.case_id) == S.IN_PANEL
    seated = {a.user.username for a in w.case.assignments.filter(role="panel_member")}
    assert seated == {"expert1", "expert"}  # the early seat, plus the least-loaded, earliest expert
    assert_sees_nothing(w, expert2, "expert2")

    # In panel: both submitted readings, in full, with the first reader's mask.
    seen = {a["reader"]: a for a in case_annotations(expert1, w.case_id)}
    assert set(seen) == {FIRST, "reviewer"}
    assert all(a["status"] == "submitted" for a in seen.values())
    items = ok(expert1.get(f"{API}/annotations/{w.first_annotation}/revisions/{w.first_revisions}/"))["items"]
    assert {"label": "comment", "value": SECRET} in items
    [mask_item] = [i for i in items if i["label"] == "nodule_mask"]
    assert "data" in mask_item["mask"]
    assert ok(expert1.get(f"{API}/cases/{w.case_id}/agreement/"))["agreed"] is False
    # The history of a submitted reading comes with it (the draft before the submission).
    assert [r["number"] for r in ok(expert1.get(f"{API}/annotations/{w.first_annotation}/revisions/"))] == [1, 2]

    # The panel decides; the seated experts still see the readings and now the adjudicated label.
    for client, annotation_id in ((expert1, w.first_annotation), (client_for(users["expert"]), w.reviewer_annotation)):
        body = {"voted_for_annotation": annotation_id, "rationale": "seen"}
        ok(client.post(f"{API}/cases/{w.case_id}/votes/", body, JSON), 201)
    assert case_status(manager, w.case_id) == S.ADJUDICATED  # a tie broken by the chair (expert1)
    roles = sorted(a["role"] for a in case_annotations(expert1, w.case_id))
    assert roles == ["adjudicated", "first_reader", "second_reader"]
    assert_sees_nothing(w, expert2, "expert2")
    # The readers, who were not on the panel, still see only their own readings.
    assert [a["reader"] for a in case_annotations(w.reviewer, w.case_id)] == ["reviewer"]
    assert [a["reader"] for a in case_annotations(w.clients["annotator"], w.case_id)] == [FIRST]


def test_readers_are_shown_their_own_progress_and_managers_the_workflow_status(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
):
    w = start(reading_project, users, client_for)
    annotator, manager = w.clients["annotator"], w.clients["manager"]

    def shown(client: Client) -> str:
        return str(ok(client.get(f"{API}/cases/{w.case_id}/"))["status"])

    assert (shown(w.reviewer), shown(annotator), shown(manager)) == (
        "in_progress",
        "in_progress",
        S.AWAITING_FIRST_READ,
    )
    annotator_draft(w, "agreed")
    annotator_submit(w, "agreed")
    # The first reading is in: the manager sees it, the reviewer does not, the annotator sees their own part.
    assert (shown(w.reviewer), shown(annotator), shown(manager)) == (
        "in_progress",
        "submitted",
        S.AWAITING_CROSS_VERIFICATION,
    )
    assert ok(manager.get(f"{API}/cases/{w.case_id}/"))["updated_at"] is not None
    reviewer_submit(w, "agreed")
    assert (shown(w.reviewer), shown(annotator), shown(manager)) == ("closed", "closed", S.AGREED)
    # Managers filter by the workflow status, readers by theirs.
    assert [r["id"] for r in results(manager.get(f"{API}/projects/{w.slug}/cases/?status=agreed"))] == [w.case_id]
    assert [r["id"] for r in results(annotator.get(f"{API}/projects/{w.slug}/cases/?status=closed"))] == [w.case_id]
    assert results(annotator.get(f"{API}/projects/{w.slug}/cases/?status=agreed")) == []


def test_in_verification_mode_readers_see_the_workflow_status(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
):
    """Verification is not blind (the verifier reads the first reading), so there is nothing to hide."""
    manager = client_for(users["manager"])
    annotator = client_for(users["annotator"])
    set_policy(manager, reading_project.slug, mode="verification")
    case_id = claim(annotator, reading_project.slug, "first_reader")
    assert ok(annotator.get(f"{API}/cases/{case_id}/"))["status"] == S.AWAITING_FIRST_READ
