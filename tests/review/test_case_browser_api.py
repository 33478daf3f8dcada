"""The case browser's server side (issue 16 item 6, issue 14): the case list filtered and paginated on the server,
managers-only columns and filters, bulk distribute and reassign, unmarking a gold case, and the dashboards that
leave gold readings out of the peer figures."""

from __future__ import annotations

from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotation.models import Annotation, Assignment, AssignmentEvent, Case, CaseStatus, Project, ReadingRole, Role
from review.dashboards import case_summaries_refresh
from review.models import CaseEvent, GoldCase
from tests.factories import MembershipFactory, UserFactory
from tests.review.conftest import API, JSON, annotation_by_role, claim, ok, save, set_policy

pytestmark = pytest.mark.django_db(transaction=True)
SLUG = "nodules"


def listed(client: Client, **params: Any) -> dict[str, Any]:
    return cast(dict[str, Any], ok(client.get(f"{API}/projects/{SLUG}/cases/", params)))


def ids(page: dict[str, Any]) -> set[int]:
    return {int(row["id"]) for row in page["results"]}


@pytest.fixture
def annotator2(reading_project: Project) -> User:
    user = cast(User, UserFactory(username="annotator2"))
    MembershipFactory(project=reading_project, user=user, role=Role.ANNOTATOR)
    return user


def test_case_list_filters_on_the_server_and_paginates(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator = clients["manager"], clients["annotator"]
    a, b, c = reading_cases
    Case.objects.filter(pk=a.pk).update(priority=5.0)
    Case.objects.filter(pk=b.pk).update(priority=1.0)
    ok(manager.post(f"{API}/cases/{c.pk}/gold/", data={"values": chest_values(c)}, content_type=JSON), 201)
    ok(manager.post(f"{API}/cases/{a.pk}/assignments/", {"username": "annotator", "role": "first_reader"}), 201)

    page = listed(manager)
    assert page["count"] == 3 and ids(page) == {a.pk, b.pk, c.pk}
    rows = {row["id"]: row for row in page["results"]}
    assert rows[c.pk]["gold"] is True and rows[a.pk]["gold"] is False
    assert rows[a.pk]["readers"] == [{"username": "annotator", "role": "first_reader", "status": "active"}]

    assert ids(listed(manager, gold="true")) == {c.pk}
    assert ids(listed(manager, gold="false")) == {a.pk, b.pk}
    assert ids(listed(manager, reader="annotator")) == {a.pk}
    assert ids(listed(manager, priority_min=2)) == {a.pk}
    assert ids(listed(manager, priority_max=1.5)) == {b.pk, c.pk}
    assert ids(listed(manager, status="awaiting_first_read", gold="false", priority_min=0.5)) == {a.pk, b.pk}
    assert ids(listed(manager, created_from="2000-01-01", created_to="2999-12-31")) == {a.pk, b.pk, c.pk}
    assert ids(listed(manager, created_to="2000-01-01")) == set()
    # Paginated: two pages of two and one, in priority order.
    first = listed(manager, limit=2, ordering="-priority")
    assert first["count"] == 3 and [row["id"] for row in first["results"]] == [a.pk, b.pk]
    assert [row["id"] for row in listed(manager, limit=2, offset=2)["results"]] == [c.pk]

    # A reader sees no gold column, and may filter neither by gold nor by reader: either would tell them apart.
    mine = listed(annotator)
    assert ids(mine) == {a.pk} and "gold" not in mine["results"][0] and "readers" not in mine["results"][0]
    for params in ({"gold": "true"}, {"reader": "reviewer"}, {"ai_score_min": 0}):
        refused = annotator.get(f"{API}/projects/{SLUG}/cases/", params)
        assert refused.status_code == 403 and "managers" in refused.json()["detail"]


def test_case_list_query_count_does_not_grow_with_the_page(
    reading_cases: list[Case], clients: dict[str, Client]
) -> None:
    manager = clients["manager"]
    for case in reading_cases:
        ok(manager.post(f"{API}/cases/{case.pk}/assignments/", {"username": "annotator", "role": "first_reader"}), 201)
    counts = []
    for limit in (1, 3):
        with CaptureQueriesContext(connection) as queries:
            assert len(listed(manager, limit=limit)["results"]) == limit
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_bulk_distribute_fills_only_the_chosen_cases(
    reading_cases: list[Case], clients: dict[str, Client], annotator2: User
) -> None:
    manager = clients["manager"]
    a, b, c = reading_cases
    made = ok(
        manager.post(
            f"{API}/projects/{SLUG}/assignments/distribute/",
            data={"role": "first_reader", "cases": [a.pk, c.pk]},
            content_type=JSON,
        ),
        201,
    )
    assert {row["case"]["id"] for row in made} == {a.pk, c.pk}
    assert set(Assignment.objects.values_list("case_id", flat=True)) == {a.pk, c.pk}
    # Balanced: one each.
    assert sorted(Assignment.objects.values_list("user__username", flat=True)) == ["annotator", "annotator2"]
    unknown = manager.post(
        f"{API}/projects/{SLUG}/assignments/distribute/",
        data={"role": "first_reader", "cases": [b.pk, 999999]},
        content_type=JSON,
    )
    assert unknown.status_code == 404 and "999999" in unknown.json()["detail"]
    assert not Assignment.objects.filter(case=b).exists()


def test_reassign_moves_unfinished_readings_all_or_nothing(
    reading_cases: list[Case], clients: dict[str, Client], annotator2: User, chest_values: Any
) -> None:
    manager, annotator = clients["manager"], clients["annotator"]
    a, b, c = reading_cases
    for case in (a, b, c):
        ok(manager.post(f"{API}/cases/{case.pk}/assignments/", {"username": "annotator", "role": "first_reader"}), 201)
    # The annotator submits case c and starts a draft of case a.
    save(annotator, c.pk, chest_values(c), role="first_reader")
    save(annotator, a.pk, chest_values(a), role="first_reader", submit=False)
    url = f"{API}/projects/{SLUG}/assignments/reassign/"

    # A submitted reading stays with its reader: the whole request is refused, nothing moves.
    refused = manager.post(
        url, data={"cases": [a.pk, c.pk], "from_username": "annotator", "to_username": "annotator2"}, content_type=JSON
    )
    assert refused.status_code == 409 and str(c.pk) in refused.json()["detail"]
    assert set(Assignment.objects.filter(user__username="annotator").values_list("case_id", flat=True)) == {
        a.pk,
        b.pk,
        c.pk,
    }
    # Someone without the annotator role cannot take a first reading; a reader cannot reassign.
    assert (
        manager.post(
            url, data={"cases": [a.pk], "from_username": "annotator", "to_username": "reviewer"}, content_type=JSON
        ).status_code
        == 403
    )
    assert (
        annotator.post(
            url, data={"cases": [a.pk], "from_username": "annotator", "to_username": "annotator2"}, content_type=JSON
        ).status_code
        == 403
    )

    moved = ok(
        manager.post(
            url,
            data={"cases": [a.pk, b.pk], "from_username": "annotator", "to_username": "annotator2"},
            content_type=JSON,
        )
    )
    assert {row["case"]["id"] for row in moved} == {a.pk, b.pk} and {row["username"] for row in moved} == {"annotator2"}
    rows = {x.case_id: x for x in Assignment.objects.select_related("user", "assigned_by")}
    assert rows[a.pk].user.username == rows[b.pk].user.username == "annotator2"
    by = rows[a.pk].assigned_by
    assert rows[a.pk].how == "manual" and by is not None and by.username == "manager"
    assert rows[c.pk].user.username == "annotator"
    # The previous reader no longer sees the case; their draft stays theirs, out of the new reader's sight.
    assert annotator.get(f"{API}/cases/{a.pk}/").status_code == 404
    assert Annotation.objects.filter(case=a, reader__username="annotator", status="draft").exists()
    assert ok(clients_for_user(annotator2).get(f"{API}/cases/{a.pk}/annotations/")) == []

    # The trail says who read before: three assignments made, two moved, none for the refused requests.
    trail = ok(manager.get(f"{API}/projects/{SLUG}/audit/", {"kind": "assignment"}))
    said = sorted(
        (r["case"], r["detail"]["action"], r["detail"]["from_reader"], r["detail"]["to_reader"], r["actor"])
        for r in trail["results"]
    )
    assert said == sorted(
        [(case.pk, "assigned", "", "annotator", "manager") for case in (a, b, c)]
        + [(case.pk, "reassigned", "annotator", "annotator2", "manager") for case in (a, b)]
    )
    assert {r["detail"]["role"] for r in trail["results"]} == {"first_reader"}
    # Append-only: the database refuses to rewrite who read a case.
    with pytest.raises(DatabaseError), transaction.atomic():
        AssignmentEvent.objects.filter(case=a).update(to_user=annotator2)


def clients_for_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_unmark_a_gold_case_before_anyone_read_it_and_refuse_after(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator = clients["manager"], clients["annotator"]
    a, b, _c = reading_cases
    ok(manager.post(f"{API}/cases/{a.pk}/gold/", data={"values": chest_values(a)}, content_type=JSON), 201)
    # Readers may not unmark.
    assert annotator.delete(f"{API}/cases/{a.pk}/gold/").status_code in (403, 404)
    # Not served yet: unmarking makes it an ordinary case again.
    assert manager.delete(f"{API}/cases/{a.pk}/gold/").status_code == 204
    assert not GoldCase.objects.filter(case=a).exists()
    assert manager.delete(f"{API}/cases/{a.pk}/gold/").status_code == 409  # not gold (any more)

    # Served and scored: the reader's score is their record; the case stays gold.
    set_policy(manager, SLUG, gold_rate=1.0)
    ok(manager.post(f"{API}/cases/{b.pk}/gold/", data={"values": chest_values(b)}, content_type=JSON), 201)
    assert claim(annotator, SLUG, "first_reader") == b.pk
    save(annotator, b.pk, chest_values(b), role="first_reader")
    refused = manager.delete(f"{API}/cases/{b.pk}/gold/")
    assert refused.status_code == 409 and refused.json()["code"] == "gold_case_in_use"
    assert "served" in refused.json()["detail"]
    assert (
        GoldCase.objects.filter(case=b).exists()
        and ok(manager.get(f"{API}/cases/{b.pk}/gold/"))["readings_scored"] == 1
    )


def test_unmarking_a_gold_case_made_from_its_consensus_gives_it_back_its_status(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    case_id = claim(annotator, SLUG, "first_reader")
    assert claim(reviewer, SLUG, "second_reader") == case_id
    case = Case.objects.get(pk=case_id)
    save(annotator, case_id, chest_values(case), role="first_reader")
    save(reviewer, case_id, chest_values(case), role="second_reader")
    consensus = annotation_by_role(manager, case_id, "consensus")
    revision = Annotation.objects.get(pk=consensus["id"]).current_revision
    assert revision is not None
    ok(manager.post(f"{API}/cases/{case_id}/gold/", data={"reference_revision": revision.pk}, content_type=JSON), 201)
    assert Case.objects.get(pk=case_id).status == CaseStatus.AWAITING_FIRST_READ
    # Its two original readers were served it before it was gold: they are not gold readers, but a case that has
    # readers is refused all the same (its readers' assignments are still on it).
    assert manager.delete(f"{API}/cases/{case_id}/gold/").status_code == 409


def test_unmarking_a_consensus_gold_case_nobody_was_served_restores_agreed(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    """Made with its consensus and unread since: unmarking returns it to agreed, with an event saying why."""
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    case_id = claim(annotator, SLUG, "first_reader")
    claim(reviewer, SLUG, "second_reader")
    case = Case.objects.get(pk=case_id)
    save(annotator, case_id, chest_values(case), role="first_reader")
    save(reviewer, case_id, chest_values(case), role="second_reader")
    revision = Annotation.objects.get(case_id=case_id, role="consensus").current_revision
    assert revision is not None
    # The case browser names the consensus annotation (its current revision is the reference).
    marked = ok(
        manager.post(
            f"{API}/cases/{case_id}/gold/", data={"reference_annotation": revision.annotation_id}, content_type=JSON
        ),
        201,
    )
    assert marked["reference_revision"] == revision.pk and marked["source"] == "consensus"
    # The original readers' assignments are what refused it above; a case whose readers were taken off (the
    # readings stay) has been served to no one as gold.
    Assignment.objects.filter(case_id=case_id).delete()
    assert manager.delete(f"{API}/cases/{case_id}/gold/").status_code == 204
    assert Case.objects.get(pk=case_id).status == CaseStatus.AGREED
    last = CaseEvent.objects.filter(case_id=case_id).order_by("-pk").first()
    assert last is not None and last.to_status == CaseStatus.AGREED and "no longer a gold case" in last.reason


def test_dashboards_leave_gold_readings_out_of_the_peer_figures(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    """A gold case is read by every reader served it and scored against its reference, not against peers: its
    readings are no double reading, so no reader pair and no peer agreement comes from it."""
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    set_policy(manager, SLUG, gold_rate=1.0)
    gold_case = reading_cases[0]
    ok(
        manager.post(f"{API}/cases/{gold_case.pk}/gold/", data={"values": chest_values(gold_case)}, content_type=JSON),
        201,
    )
    assert claim(annotator, SLUG, "first_reader") == gold_case.pk
    assert claim(reviewer, SLUG, "second_reader") == gold_case.pk
    save(annotator, gold_case.pk, chest_values(gold_case), role="first_reader")
    save(reviewer, gold_case.pk, chest_values(gold_case, malignancy=5), role="second_reader")
    assert (
        Assignment.objects.filter(
            case=gold_case, role__in=[ReadingRole.FIRST_READER, ReadingRole.SECOND_READER]
        ).count()
        == 2
    )

    # Rebuilt from the source tables, as `manage.py rebuild_dashboards` does after an import: the gold readings
    # were counted as a double reading of the case (a reader pair, peer agreement) before the fix.
    case_summaries_refresh(project=gold_case.project)
    assert ok(manager.get(f"{API}/projects/{SLUG}/reader-pairs/")) == []
    readers = ok(manager.get(f"{API}/projects/{SLUG}/readers/"))
    assert [row["username"] for row in readers] == []
    # The gold scores are where these readings count.
    assert {row["reader"] for row in ok(manager.get(f"{API}/projects/{SLUG}/gold-scores/"))} == {
        "annotator",
        "reviewer",
    }
