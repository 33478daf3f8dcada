"""Manager dashboards: agreement per label, readers, reader pairs.

A project of four cases is read through the real API by the annotator (first reader) and the reviewer
(second reader): cases 1-2 both "yes", case 3 both "no", case 4 annotator "yes" and reviewer "no" with masks
that overlap at Dice 0.4. Case 4 is disputed and the panel decides for the reviewer's reading (an
overturn). Every figure is checked against hand-computed values and scikit-learn.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from sklearn.metrics import cohen_kappa_score

from annotation.models import Annotation, Assignment, CaseStatus, Project
from annotation.services import cases_create
from review import dashboards
from review.agreement import bootstrap_ci, cohen_kappa, dice
from review.models import CaseSummary
from tests.annotation.conftest import chest_values, ingest_study
from tests.factories import place_studies
from tests.review.conftest import (
    API,
    JSON,
    case_of,
    case_status,
    claim,
    ok,
    save,
    series_mask,
    set_policy,
)

# Per case in claim order: (annotator's answer, reviewer's answer).
ANSWERS = [("yes", "yes"), ("yes", "yes"), ("no", "no"), ("yes", "no")]
ANNOTATOR_MINUTES = [2.0, 4.0, 6.0, 30.0]
REVIEWER_MINUTES = [1.0, 3.0, 5.0, 7.0]


def _strict_json(response: Any) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON")

    return json.loads(response.content, parse_constant=refuse)


@pytest.fixture
def read_project(reading_project: Project, clients: dict[str, Client], experts: dict[str, User]) -> dict[str, Any]:
    """Four cases read through the API; the disputed one adjudicated for the second reading."""
    slug = reading_project.slug
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    fourth = ingest_study(104)
    place_studies(reading_project, [fourth.study_uid])
    cases_create(project=reading_project, study_uids=[fourth.study_uid])
    set_policy(manager, slug, panel_size=3, quorum=2, mask_dice=0.8)

    case_ids: list[int] = []
    saved: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for first_answer, second_answer in ANSWERS:
        case_id = claim(annotator, slug, "first_reader")
        assert claim(reviewer, slug, "second_reader") == case_id
        case = case_of(case_id)
        if first_answer == second_answer:
            values_a = chest_values(case, nodule_present=first_answer, box=first_answer == "yes", mask=True)
            values_b = values_a
        else:
            mask_a = series_mask(case, slice(2, 5), slice(20, 30), slice(22, 32))
            mask_b = series_mask(case, slice(2, 5), slice(26, 36), slice(22, 32))
            assert dice(mask_a, mask_b) == pytest.approx(0.4)
            values_a = chest_values(case, nodule_present=first_answer, box=True, mask=mask_a)
            values_b = chest_values(case, nodule_present=second_answer, box=False, mask=mask_b)
        first = save(annotator, case_id, values_a, role="first_reader")
        second = save(reviewer, case_id, values_b, role="second_reader")
        case_ids.append(case_id)
        saved[case_id] = (first, second)

    assert [case_status(manager, c) for c in case_ids] == ["agreed"] * 3 + ["in_panel"]
    disputed = case_ids[3]
    seated = Assignment.objects.filter(case_id=disputed, role="panel_member").order_by("pk")
    voters = [a.user.username for a in seated.select_related("user")][:2]
    for name in voters:
        body = {"voted_for_annotation": saved[disputed][1]["annotation"], "rationale": f"{name}: no nodule"}
        ok(clients[name].post(f"{API}/cases/{disputed}/votes/", body, JSON), 201)
    assert case_status(manager, disputed) == "adjudicated"

    # Known reading times, and the annotator's first case read a week earlier.
    for name, minutes in (("annotator", ANNOTATOR_MINUTES), ("reviewer", REVIEWER_MINUTES)):
        for case_id, spent in zip(case_ids, minutes, strict=True):
            assignment = Assignment.objects.get(case_id=case_id, user__username=name)
            assert assignment.submitted_at is not None
            Assignment.objects.filter(pk=assignment.pk).update(
                created_at=assignment.submitted_at - timedelta(minutes=spent)
            )
    early = Annotation.objects.get(case_id=case_ids[0], reader__username="annotator")
    assert early.submitted_at is not None
    Annotation.objects.filter(pk=early.pk).update(submitted_at=early.submitted_at - timedelta(days=7))
    # Those direct changes bypass the services that keep the dashboards' per-case summaries: rebuild them.
    call_command("rebuild_dashboards", "--project", slug, stdout=io.StringIO())
    return {"slug": slug, "case_ids": case_ids, "early": early.submitted_at - timedelta(days=7)}


def _week(moment: Any) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


FIRST = [a for a, _ in ANSWERS]
SECOND = [b for _, b in ANSWERS]
TRUTH = SECOND  # consensus on cases 1-3, the panel chose the reviewer's reading on case 4


def test_project_dashboard_figures(read_project: dict[str, Any], clients: dict[str, Client]):
    response = clients["manager"].get(f"{API}/projects/{read_project['slug']}/dashboard/")
    assert response.status_code == 200, response.content[:2000]
    body = _strict_json(response)

    assert (body["cases"], body["evaluated"], body["disputed"]) == (4, 4, 1)
    assert body["dispute_rate"] == pytest.approx(0.25)
    assert (body["adjudicated"], body["overturned"], body["panel_overturn_rate"]) == (1, 1, 1.0)
    assert body["status_counts"] == {status: 0 for status in CaseStatus.values} | {"agreed": 3, "adjudicated": 1}

    labels = {row["key"]: row for row in body["labels"]}
    assert list(labels) == [
        "nodule_present",
        "nodule_box",
        "nodule_mask",
        "nodule_type",
        "lobe",
        "diameter",
        "malignancy",
        "findings",
        "comment",
    ]
    present = labels["nodule_present"]
    assert (present["n_cases"], present["percent_agreement"]) == (4, 0.75)
    # po = 3/4, pe = 3/4 * 2/4 + 1/4 * 2/4 = 1/2, kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2
    assert present["kappa"]["value"] == pytest.approx(0.5)
    assert present["kappa"]["value"] == pytest.approx(cohen_kappa_score(FIRST, SECOND))
    expected_ci = bootstrap_ci(
        lambda x, y: cohen_kappa(list(x), list(y), labels=["yes", "no"]),
        np.asarray(FIRST, dtype=object),
        np.asarray(SECOND, dtype=object),
        seed=dashboards.BOOTSTRAP_SEED,
        n_resamples=dashboards.BOOTSTRAP_RESAMPLES,
    )
    assert present["kappa"]["ci_low"] == pytest.approx(expected_ci.low, abs=1e-6)
    assert present["kappa"]["ci_high"] == pytest.approx(expected_ci.high, abs=1e-6)
    assert present["kappa"]["ci_low"] <= 0.5 <= present["kappa"]["ci_high"]
    assert (present["kappa"]["n"], present["kappa"]["weights"], present["kappa"]["note"]) == (4, "none", "")
    assert present["dice"] is None

    # Nobody answered "findings": kappa is undefined, null with a note (never NaN).
    findings = labels["findings"]
    assert findings["kappa"]["value"] is None and findings["kappa"]["ci_low"] is None
    assert findings["kappa"]["n"] == 0 and "undefined" in findings["kappa"]["note"]
    # Free text is not compared.
    assert labels["comment"]["percent_agreement"] is None and labels["comment"]["note"] == "not compared"
    assert labels["nodule_box"]["kappa"] is None  # only categorical study-level labels get a kappa

    mask = labels["nodule_mask"]
    assert mask["percent_agreement"] == 0.75
    values = [0.4, 1.0, 1.0, 1.0]
    assert "values" not in mask["dice"]  # summarised: 30,000 scores are no chart
    assert (mask["dice"]["n"], mask["dice"]["min"], mask["dice"]["max"]) == (4, 0.4, 1.0)
    histogram = mask["dice"]["histogram"]
    assert histogram["edges"] == pytest.approx([i / 20 for i in range(21)])
    assert histogram["counts"] == [0] * 8 + [1] + [0] * 10 + [3]  # 0.4 in [0.40, 0.45), 1.0 in the last bin
    assert histogram["counts"] == np.histogram(values, bins=20, range=(0, 1))[0].tolist()
    assert mask["dice"]["median"] == pytest.approx(1.0)
    assert mask["dice"]["q1"] == pytest.approx(0.85)  # 0.4 + 0.75 * (1.0 - 0.4), linear interpolation
    assert mask["dice"]["q3"] == pytest.approx(1.0)
    assert mask["dice"]["median"] == pytest.approx(statistics.median(values))


def test_readers_figures(read_project: dict[str, Any], clients: dict[str, Client]):
    response = clients["manager"].get(f"{API}/projects/{read_project['slug']}/readers/")
    assert response.status_code == 200, response.content[:2000]
    rows = {row["username"]: row for row in _strict_json(response)}
    assert sorted(rows) == ["annotator", "reviewer"]
    annotator, reviewer = rows["annotator"], rows["reviewer"]

    assert annotator["cases_read"] == reviewer["cases_read"] == 4
    assert annotator["median_minutes"] == pytest.approx(5.0, abs=1e-3)
    assert reviewer["median_minutes"] == pytest.approx(4.0, abs=1e-3)
    # Categorical study-level labels: nodule_present (agreed on 3 of 4); findings, which nobody answered, was
    # not compared and counts neither way.
    for row in (annotator, reviewer):
        assert row["peer_agreement"] == {"rate": pytest.approx(3 / 4), "n": 4}

    truth_a = {t["key"]: t for t in annotator["truth"]}["nodule_present"]
    assert (truth_a["n"], truth_a["percent_agreement"]) == (4, 0.75)
    assert truth_a["kappa"]["value"] == pytest.approx(cohen_kappa_score(FIRST, TRUTH))
    assert truth_a["kappa"]["value"] == pytest.approx(0.5)
    # Positive = "yes" (the schema's first choice): truth positives 1-2 both found; negatives 3-4, one called yes.
    assert (truth_a["positive"], truth_a["sensitivity"], truth_a["specificity"]) == ("yes", 1.0, 0.5)
    truth_r = {t["key"]: t for t in reviewer["truth"]}["nodule_present"]
    assert (truth_r["percent_agreement"], truth_r["sensitivity"], truth_r["specificity"]) == (1.0, 1.0, 1.0)
    assert truth_r["kappa"]["value"] == pytest.approx(cohen_kappa_score(SECOND, TRUTH))
    findings_truth = {t["key"]: t for t in reviewer["truth"]}["findings"]
    assert findings_truth["n"] == 0 and findings_truth["kappa"]["value"] is None
    assert findings_truth["positive"] is None and findings_truth["percent_agreement"] is None

    # Weekly trend: the annotator's first case a week earlier (nodule_present agreed there).
    early_week = _week(read_project["early"])
    later = Annotation.objects.get(case_id=read_project["case_ids"][1], reader__username="annotator").submitted_at
    assert later is not None and _week(later) != early_week
    assert annotator["weekly"] == [
        {"week": early_week, "cases_read": 1, "agreement_rate": 1.0},
        {"week": _week(later), "cases_read": 3, "agreement_rate": pytest.approx(2 / 3, abs=1e-6)},
    ]
    assert reviewer["weekly"] == [{"week": _week(later), "cases_read": 4, "agreement_rate": pytest.approx(3 / 4)}]


def test_reader_pairs_figures(read_project: dict[str, Any], clients: dict[str, Client]):
    response = clients["manager"].get(f"{API}/projects/{read_project['slug']}/reader-pairs/")
    assert response.status_code == 200, response.content[:2000]
    [pair] = _strict_json(response)
    assert (pair["reader_a"], pair["reader_b"], pair["cases"]) == ("annotator", "reviewer", 4)
    labels = {row["key"]: row for row in pair["labels"]}
    assert list(labels) == ["nodule_present", "findings"]
    present = labels["nodule_present"]
    assert present["categories"] == ["yes", "no"]
    assert present["matrix"] == [[2, 1], [0, 1]]  # rows: annotator; columns: reviewer
    assert present["n"] == 4
    assert present["kappa"] == pytest.approx(cohen_kappa_score(FIRST, SECOND))
    findings = labels["findings"]
    assert (findings["n"], findings["matrix"], findings["kappa"]) == (0, [], None)
    assert "undefined" in findings["note"]


def test_ordinal_labels_use_linear_weights():
    label = {"key": "grade", "kind": "ordinal", "level": "study", "scale": [{"value": v} for v in (1, 2, 3, 4)]}
    a, b = [1, 2, 3, 4, 2, 3], [1, 3, 3, 2, 2, 4]
    figure = dashboards.kappa_figure(label, a, b)
    assert figure["weights"] == "linear"
    assert figure["value"] == pytest.approx(cohen_kappa_score(a, b, weights="linear", labels=[1, 2, 3, 4]))
    assert figure["ci_low"] is not None and figure["ci_low"] <= figure["value"] <= figure["ci_high"]
    assert dashboards.study_value([{"label": "grade", "value": 3}], label) == 3
    choices = {"key": "f", "kind": "multiple_choice", "level": "study"}
    assert dashboards.study_value([{"label": "f", "value": ["b", "a"]}], choices) == "a+b"


def test_empty_project_has_null_figures_not_nan(reading_project: Project, clients: dict[str, Client]):
    slug = reading_project.slug
    body = _strict_json(clients["manager"].get(f"{API}/projects/{slug}/dashboard/"))
    assert (body["evaluated"], body["dispute_rate"], body["panel_overturn_rate"]) == (0, None, None)
    present = {row["key"]: row for row in body["labels"]}["nodule_present"]
    assert present["percent_agreement"] is None and present["kappa"]["value"] is None
    assert {row["key"]: row for row in body["labels"]}["nodule_mask"]["dice"]["median"] is None
    assert _strict_json(clients["manager"].get(f"{API}/projects/{slug}/readers/")) == []
    assert _strict_json(clients["manager"].get(f"{API}/projects/{slug}/reader-pairs/")) == []


@pytest.mark.parametrize("endpoint", ["dashboard", "readers", "reader-pairs"])
def test_only_managers_see_the_dashboards(
    reading_project: Project, clients: dict[str, Client], client_for: Any, endpoint: str
):
    url = f"{API}/projects/{reading_project.slug}/{endpoint}/"
    assert clients["manager"].get(url).status_code == 200
    for name in ("annotator", "reviewer", "expert"):
        assert clients[name].get(url).status_code == 403, name
    assert clients["outsider"].get(url).status_code == 404
    assert client_for(None).get(url).status_code in (401, 403)


@pytest.mark.parametrize("endpoint", ["dashboard", "readers", "reader-pairs"])
def test_queries_are_bounded(
    read_project: dict[str, Any], clients: dict[str, Client], django_assert_max_num_queries: Any, endpoint: str
):
    # A cold request: authentication, the project and membership, the version stamp, then schema, case
    # statuses and the per-case summaries.
    with django_assert_max_num_queries(9):
        ok(clients["manager"].get(f"{API}/projects/{read_project['slug']}/{endpoint}/"))


def test_figures_are_cached_until_the_project_changes(
    read_project: dict[str, Any], clients: dict[str, Client], django_assert_max_num_queries: Any
):
    slug = read_project["slug"]
    url = f"{API}/projects/{slug}/dashboard/"
    first = _strict_json(clients["manager"].get(url))
    # Unchanged project: the version query and a cache read, for every dashboard (all three were computed).
    for endpoint in ("dashboard", "readers", "reader-pairs"):
        with django_assert_max_num_queries(6):
            ok(clients["manager"].get(f"{API}/projects/{slug}/{endpoint}/"))
    assert _strict_json(clients["manager"].get(url)) == first

    # A new case changes the figures at once.
    project = Project.objects.get(slug=slug)
    fifth = ingest_study(105)
    place_studies(project, [fifth.study_uid])
    cases_create(project=project, study_uids=[fifth.study_uid])
    after = _strict_json(clients["manager"].get(url))
    assert (first["cases"], after["cases"]) == (4, 5)
    assert after["status_counts"]["awaiting_first_read"] == 1

    # So does a transition: the new case read by both readers, agreeing.
    annotator, reviewer = clients["annotator"], clients["reviewer"]
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    values = chest_values(case_of(case_id), nodule_present="no", box=False, mask=True)
    save(annotator, case_id, values, role="first_reader")
    save(reviewer, case_id, values, role="second_reader")
    final = _strict_json(clients["manager"].get(url))
    assert (final["evaluated"], final["status_counts"]["agreed"]) == (5, 4)
    readers = {row["username"]: row for row in _strict_json(clients["manager"].get(f"{API}/projects/{slug}/readers/"))}
    assert readers["annotator"]["cases_read"] == 5


def test_summaries_match_the_source_tables(read_project: dict[str, Any]):
    """The per-case summaries written by the workflow give the same figures as reading every source table."""
    project = Project.objects.get(slug=read_project["slug"])
    from_summaries = dashboards.project_snapshot(project)
    from_sources = dashboards.full_snapshot(project)
    for fn in (dashboards.project_dashboard, dashboards.reader_stats, dashboards.reader_pairs):
        assert fn(project, from_summaries) == fn(project, from_sources)
    assert CaseSummary.objects.filter(project=project).count() == 4
    with pytest.raises(CommandError, match="No project"):
        call_command("rebuild_dashboards", "--project", "no-such-project")


def test_a_worker_refreshes_the_figures_after_each_change_and_drafts_do_not_invalidate_them(
    read_project: dict[str, Any],
    clients: dict[str, Client],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
    django_assert_max_num_queries: Any,
):
    """After a submission commits, the refresh task (run eagerly here, as a worker would) has the figures cached,
    so the manager's next request is the version query and a cache read, with the new counts."""
    from config.celery import app

    # The Celery app reads Django's settings once; set eager mode on the app itself, whatever ran before.
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    slug = read_project["slug"]
    url = f"{API}/projects/{slug}/dashboard/"
    project = Project.objects.get(slug=slug)
    fifth = ingest_study(106)
    place_studies(project, [fifth.study_uid])
    cases_create(project=project, study_uids=[fifth.study_uid])
    before = _strict_json(clients["manager"].get(url))

    annotator, reviewer = clients["annotator"], clients["reviewer"]
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    values = chest_values(case_of(case_id), nodule_present="no", box=False, mask=True)
    # A draft moves nothing the dashboards show: the cached figures stay valid.
    version = dashboards.figures_version(project)
    save(annotator, case_id, values, role="first_reader", submit=False)
    assert dashboards.figures_version(project) == version

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        save(annotator, case_id, values, role="first_reader", base=1)
    assert callbacks, "a submission schedules a dashboards refresh"
    with django_capture_on_commit_callbacks(execute=True):
        save(reviewer, case_id, values, role="second_reader")
    with django_assert_max_num_queries(6):
        after = _strict_json(clients["manager"].get(url))
    assert (before["evaluated"], after["evaluated"]) == (4, 5)
    assert dashboards.dashboards_precompute(project.pk) == 0  # already current: nothing recomputed


class _Rollback(Exception):
    pass


@pytest.mark.django_db
def test_dashboards_refresh_is_asked_once_per_transaction_and_survives_a_rolled_back_savepoint(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """review.dashboards.schedule_dashboards_refresh queues one refresh per project and transaction (issue 19), and
    never relies on a request that a rolled-back savepoint took away."""
    from django.db import transaction

    from review.dashboards import schedule_dashboards_refresh

    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            schedule_dashboards_refresh(7)
            try:
                with transaction.atomic():
                    schedule_dashboards_refresh(7)  # covered by the enclosing one
                    schedule_dashboards_refresh(9)  # only here: rolled back with the savepoint
                    raise _Rollback
            except _Rollback:
                pass
            schedule_dashboards_refresh(9)  # the rolled-back one is gone: queued again
            with transaction.atomic():
                schedule_dashboards_refresh(8)
            schedule_dashboards_refresh(8)  # the inner one's savepoint is released, not enclosing: queued again
    projects = [int(getattr(c, "dashboards_project", 0)) for c in callbacks]
    assert sorted(projects) == [7, 8, 8, 9]


@pytest.mark.django_db
def test_each_process_queues_one_delayed_refresh_per_project_while_one_is_pending(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A burst of changes queues one refresh per project (issue 19: a message on every submission cost each reader's
    request CPU), delayed so that it runs after every change it covers; once it is due, the next change queues
    another. Counted on the real broker (Redis): the messages in the default queue."""
    import redis
    from django.conf import settings
    from django.db import transaction

    from review.dashboards import schedule_dashboards_refresh

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE

    def commit_change(project_id: int) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                schedule_dashboards_refresh(project_id)

    dashboards._refresh_due.clear()
    before = broker.llen(queue)
    for _ in range(5):
        commit_change(7001)
    commit_change(7002)  # another project: its own
    assert broker.llen(queue) - before == 2
    queued = [json.loads(raw) for raw in broker.lrange(queue, 0, 1)]
    assert {m["headers"]["task"] for m in queued} == {"review.tasks.refresh_dashboards"}
    assert all(m["headers"]["eta"] for m in queued)  # delayed: it covers the changes committed before it runs
    # Once the queued one is about to run, a change can no longer count on it: another is queued.
    dashboards._refresh_due[7001] = time.monotonic() + dashboards.REFRESH_MARGIN_S / 2
    commit_change(7001)
    assert broker.llen(queue) - before == 3
    for _ in range(3):
        broker.lpop(queue)  # the newest three, this test's: no worker here, none left for another test's worker
