"""Paging through a project's cases sorted by a column many cases share (every new case has priority 0): the
pages must partition the cases, each exactly once. Without a tie-breaker PostgreSQL may order equal rows
differently for each page's query, and a manager paging the case browser would see a case twice and miss another."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotation.models import Case, Project
from tests.annotation.test_api_queries import API, client_of, manager, new_case, project  # noqa: F401 (fixtures)

PAGE = 7


@pytest.mark.parametrize("ordering", ["-priority", "priority", "status", "-status"])
def test_pages_of_cases_sorted_on_a_shared_value_hold_each_case_once(
    project: Project, manager: User, ordering: str  # noqa: F811 (fixtures)
) -> None:
    made = {new_case(project).pk for _ in range(30)}
    # Updates move rows on disk, which is what makes an order among equal rows drift between queries.
    for case in Case.objects.filter(pk__in=sorted(made)[::3]):
        case.save()
    client = client_of(manager)
    seen: list[int] = []
    for offset in range(0, len(made), PAGE):
        response = client.get(f"{API}/projects/{project.slug}/cases/?ordering={ordering}&limit={PAGE}&offset={offset}")
        assert response.status_code == 200, response.content
        seen += [row["id"] for row in response.json()["results"]]
    assert len(seen) == len(made) and set(seen) == made
