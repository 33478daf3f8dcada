"""The dashboards right after a manager marks a case gold with its final label, or unmarks it: the same figures
a rebuild from the source tables (`manage.py rebuild_dashboards`) gives, without one.

A case made gold with its final label goes back to awaiting its first reading, with its earlier readings and
their agreement kept (ordinary readings made before it became gold). The dashboards skip computing a summary
for a case awaiting its first reading, which has nothing to show unless it has been further: when nobody had
looked at the dashboards between the case's agreement and its marking, the case had no summary, none was made,
and its readings were missing from the figures until `rebuild_dashboards`."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from annotation.models import Annotation, Case
from review import dashboards
from review.models import CaseSummary
from tests.review.conftest import API, JSON, claim, ok, save

pytestmark = pytest.mark.django_db(transaction=True)
SLUG = "nodules"
BOARDS = ("dashboard", "readers", "reader-pairs")


def boards(manager: Client) -> dict[str, Any]:
    return {name: ok(manager.get(f"{API}/projects/{SLUG}/{name}/")) for name in BOARDS}


def rebuilt(manager: Client, case: Case) -> dict[str, Any]:
    """The figures after `manage.py rebuild_dashboards`, computed afresh."""
    dashboards.case_summaries_refresh(project=case.project)
    dashboards._cache().clear()
    return boards(manager)


def agreed_case(clients: dict[str, Client], chest_values: Any) -> Case:
    annotator, reviewer = clients["annotator"], clients["reviewer"]
    case_id = claim(annotator, SLUG, "first_reader")
    claim(reviewer, SLUG, "second_reader")
    case = Case.objects.get(pk=case_id)
    save(annotator, case_id, chest_values(case), role="first_reader")
    save(reviewer, case_id, chest_values(case), role="second_reader")
    return case


def mark_gold(manager: Client, case: Case) -> None:
    revision = Annotation.objects.get(case=case, role="consensus").current_revision
    assert revision is not None
    body = {"reference_annotation": revision.annotation_id}
    ok(manager.post(f"{API}/cases/{case.pk}/gold/", data=body, content_type=JSON), 201)


@pytest.mark.parametrize("looked_before", [False, True], ids=["unseen-before", "seen-before"])
def test_case_made_gold_with_its_final_label_is_on_the_dashboards_at_once(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any, looked_before: bool
) -> None:
    manager = clients["manager"]
    case = agreed_case(clients, chest_values)
    if looked_before:
        boards(manager)  # summaries computed and figures cached while the case is agreed
    else:
        CaseSummary.objects.all().delete()  # as if no worker and no manager had computed them yet
        dashboards._cache().clear()
    mark_gold(manager, case)
    marked = boards(manager)
    # Its readings and their agreement stay on the dashboards (readers, the pair, the label agreement).
    assert [row["username"] for row in marked["readers"]] == ["annotator", "reviewer"], marked["readers"]
    assert len(marked["reader-pairs"]) == 1, marked["reader-pairs"]
    assert marked["dashboard"]["status_counts"]["awaiting_first_read"] == 3
    assert marked == rebuilt(manager, case)
