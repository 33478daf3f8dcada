"""The audit log API for managers (issue 16, item 9): GET /projects/<slug>/audit/ filtered by who, what, case
and date, and the same rows as CSV from /projects/<slug>/audit.csv."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from annotation.models import AnnotationRevision, Case, Project
from inference.models import ModelVersion, ModelVersionEvent
from review.models import CaseEvent
from tests.factories import UserFactory
from tests.review.test_audit import submit_first_reading

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def trail(reading_project: Project, users: dict[str, User]) -> dict[str, Any]:
    """A first reading submitted by the annotator (two revisions, one transition) and a manager's transition
    on another case."""
    read = submit_first_reading(reading_project, users["annotator"])
    other = Case.objects.filter(project=reading_project).exclude(pk=read.pk).first()
    assert other is not None
    CaseEvent.objects.create(
        case=other, actor=users["manager"], from_status="new", to_status="new", reason="priority raised"
    )
    return {"read": read, "other": other}


def _audit(client: Client, slug: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"{API}/projects/{slug}/audit/", params)
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_manager_reads_the_whole_trail_newest_first(
    reading_project: Project, users: dict[str, User], trail: dict[str, Any]
) -> None:
    body = _audit(_client(users["manager"]), reading_project.slug)
    events = CaseEvent.objects.filter(case__project=reading_project).count()
    revisions = AnnotationRevision.objects.filter(annotation__case__project=reading_project).count()
    assert body["count"] == events + revisions == len(body["results"])
    times = [row["time"] for row in body["results"]]
    assert times == sorted(times, reverse=True)
    assert {row["kind"] for row in body["results"]} == {"case_transition", "annotation_revision"}


def test_filters_by_who_what_case_and_date(
    reading_project: Project, users: dict[str, User], trail: dict[str, Any]
) -> None:
    client = _client(users["manager"])
    slug = reading_project.slug
    by_manager = _audit(client, slug, actor="manager")["results"]
    assert [(r["kind"], r["case"], r["detail"]["reason"]) for r in by_manager] == [
        ("case_transition", trail["other"].pk, "priority raised")
    ]
    revisions = _audit(client, slug, kind="annotation_revision", case=trail["read"].pk)["results"]
    expected = AnnotationRevision.objects.filter(annotation__case=trail["read"]).order_by("-created_at")
    assert [(r["actor"], r["detail"]["revision"]) for r in revisions] == [
        ("annotator", revision.number) for revision in expected
    ]
    today = timezone.localdate()
    assert _audit(client, slug, since=today.isoformat(), until=today.isoformat())["count"] >= 4
    assert _audit(client, slug, since=(today + timedelta(days=1)).isoformat())["count"] == 0
    assert _audit(client, slug, until=(today - timedelta(days=1)).isoformat())["count"] == 0
    assert _audit(client, slug, actor="nobody-here")["count"] == 0
    page = _audit(client, slug, limit=1, offset=1)
    assert len(page["results"]) == 1 and page["count"] >= 4
    assert page["results"][0] == _audit(client, slug)["results"][1]


def test_csv_has_the_same_rows_as_the_filtered_log(
    reading_project: Project, users: dict[str, User], trail: dict[str, Any]
) -> None:
    client = _client(users["manager"])
    rows = _audit(client, reading_project.slug, actor="annotator")["results"]
    response = client.get(f"{API}/projects/{reading_project.slug}/audit.csv", {"actor": "annotator"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith(f'attachment; filename="audit-{reading_project.slug}-')
    lines = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    assert len(lines) == len(rows) == 3
    for line, row in zip(lines, rows, strict=True):
        assert (line["kind"], line["case"], line["actor"]) == (row["kind"], str(row["case"]), row["actor"])
        assert json.loads(line["detail"]) == row["detail"]
    # A client that asks for JSON still gets the CSV, not a 406.
    asked_json = client.get(
        f"{API}/projects/{reading_project.slug}/audit.csv", {"actor": "annotator"}, HTTP_ACCEPT="application/json"
    )
    assert asked_json.status_code == 200 and asked_json.content == response.content


def test_only_managers_read_the_audit_log(reading_project: Project, users: dict[str, User]) -> None:
    slug = reading_project.slug
    refused = _client(users["annotator"]).get(f"{API}/projects/{slug}/audit/")
    assert refused.status_code == 403 and "manager" in refused.json()["detail"]
    assert _client(users["annotator"]).get(f"{API}/projects/{slug}/audit.csv").status_code == 403
    stranger = _client(cast(User, UserFactory(username="stranger")))
    assert stranger.get(f"{API}/projects/{slug}/audit/").status_code == 404
    assert stranger.get(f"{API}/projects/{slug}/audit.csv").status_code == 404


def test_bad_filters_are_named(reading_project: Project, users: dict[str, User]) -> None:
    client = _client(users["manager"])
    url = f"{API}/projects/{reading_project.slug}/audit/"
    bad_date = client.get(url, {"since": "last tuesday"})
    assert bad_date.status_code == 400 and "since" in bad_date.json()
    backwards = client.get(url, {"since": "2026-12-05", "until": "2026-12-01"})
    assert backwards.status_code == 400 and "until" in backwards.json()
    assert client.get(url, {"kind": "gossip"}).status_code == 400


def test_model_changes_are_project_wide_entries_found_by_who_but_not_by_case(
    reading_project: Project, users: dict[str, User], trail: dict[str, Any]
) -> None:
    version = ModelVersion.objects.create(
        project=reading_project, number=1, task_type="segmentation", architecture="unet", status="active"
    )
    ModelVersionEvent.objects.create(
        model_version=version, actor=users["manager"], from_status="validated", to_status="active", reason="better Dice"
    )
    client = _client(users["manager"])
    slug = reading_project.slug
    [row] = _audit(client, slug, kind="model_event")["results"]
    assert (row["case"], row["actor"], row["to_status"]) == (None, "manager", "active")
    assert row["detail"] == {"model_version": 1, "reason": "better Dice", "metrics": {}}
    assert len(_audit(client, slug, actor="manager")["results"]) == 2  # the case transition and the model change
    assert _audit(client, slug, kind="model_event", case=trail["read"].pk)["count"] == 0
    lines = list(
        csv.DictReader(
            io.StringIO(client.get(f"{API}/projects/{slug}/audit.csv", {"kind": "model_event"}).content.decode())
        )
    )
    assert [(line["case"], line["to_status"]) for line in lines] == [("", "active")]
