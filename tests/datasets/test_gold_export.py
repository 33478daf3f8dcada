"""Gold-standard cases stay out of exports unless an export asks for them (issue 14): their label is the reference
readers are measured against. Asked for, each comes with its reference as the final label, at QA level "gold"."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import AnnotationRevision, Case, CaseStatus
from datasets.models import Export
from tests.datasets.conftest import run_export

pytestmark = pytest.mark.django_db(transaction=True)
JSON = "application/json"


def test_gold_cases_are_exported_only_when_asked_for(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    manager = client_for(users["manager"])
    (gold_case, _winner), *_ = adjudicated_cases
    slug = gold_case.project.slug
    adjudicated = AnnotationRevision.objects.filter(annotation__case=gold_case, annotation__role="adjudicated").latest(
        "pk"
    )
    marked = manager.post(
        f"/api/v1/cases/{gold_case.pk}/gold/", data={"reference_revision": adjudicated.pk}, content_type=JSON
    )
    assert marked.status_code == 201, marked.content
    gold_case.refresh_from_db()
    assert gold_case.status == CaseStatus.AWAITING_FIRST_READ

    body = {"formats": ["csv"], "filters": {"min_qa_level": "adjudicated"}}
    plain = manager.post(f"/api/v1/projects/{slug}/exports/", data=body, content_type=JSON)
    assert plain.status_code == 202, plain.content
    plain_export = Export.objects.get(pk=plain.json()["id"])
    assert gold_case.pk not in [row["case"] for row in plain_export.selection]
    assert plain.json()["cases"] == 2

    body["filters"] = {"min_qa_level": "adjudicated", "include_gold": True}
    asked = manager.post(f"/api/v1/projects/{slug}/exports/", data=body, content_type=JSON)
    assert asked.status_code == 202, asked.content
    export = Export.objects.get(pk=asked.json()["id"])
    assert export.filters["include_gold"] is True
    [row] = [row for row in export.selection if row["case"] == gold_case.pk]
    assert row == {"case": gold_case.pk, "revision": adjudicated.pk, "qa_level": "gold"}
    built = run_export(export)
    assert built.sha256
