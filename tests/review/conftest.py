"""Fixtures and API helpers for the review workflow tests.

Reuses the annotation fixtures (three ingested synthetic CT studies, the ``nodules`` project with the
chest_ct_nodules schema and one case per study, one user per role). Adds three more experts and helpers
that drive the reading flow through the API: claim, submit, read the case's annotations and events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import decode_mask
from annotation.models import AnnotationRevision, Case, Project, Role
from tests.annotation import conftest as annotation_fixtures
from tests.annotation.conftest import case_series, post_revision
from tests.factories import MembershipFactory, UserFactory

# The annotation fixtures, shared with these tests (pytest looks fixtures up by name in this module).
admin = annotation_fixtures.admin
bare_project = annotation_fixtures.bare_project
chest_values = annotation_fixtures._chest_values_fixture
client_for = annotation_fixtures.client_for
ingested_studies = annotation_fixtures.ingested_studies
reading_cases = annotation_fixtures.reading_cases
reading_project = annotation_fixtures.reading_project
users = annotation_fixtures.users

API = "/api/v1"
JSON = "application/json"


def results(response: Any) -> list[dict[str, Any]]:
    """The rows of a list response, paginated or not."""
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.content[:2000])
    return response.json() if response.content else None


def set_policy(manager: Client, slug: str, **fields: Any) -> dict[str, Any]:
    """PATCH the project's review policy as a manager; returns the policy as the API shows it."""
    return cast(
        dict[str, Any],
        ok(manager.patch(f"{API}/projects/{slug}/review-policy/", data=fields, content_type=JSON)),
    )


def claim(client: Client, slug: str, role: str) -> int:
    """Press "next" in a reading role; returns the claimed case id."""
    body = ok(client.post(f"{API}/projects/{slug}/worklist/next/", data={"role": role}, content_type=JSON))
    assert body["role"] == role
    return int(body["case"]["id"])


def save(
    client: Client, case_id: int, values: dict[str, Any], *, role: str, base: int = 0, submit: bool = True
) -> dict[str, Any]:
    """Save (by default: submit) a reading through the API; returns the revision with its annotation id."""
    return cast(
        dict[str, Any], ok(post_revision(client, case_id, values, base_revision=base, submit=submit, role=role), 201)
    )


def revision_pk(saved: dict[str, Any]) -> int:
    """The database id of a saved revision (votes and events refer to revisions by id; the revision API
    shows annotation id and number)."""
    return int(AnnotationRevision.objects.get(annotation_id=saved["annotation"], number=saved["number"]).pk)


def case_of(case_id: int) -> Case:
    return Case.objects.select_related("project", "study", "series").get(pk=case_id)


def case_status(client: Client, case_id: int) -> str:
    return str(ok(client.get(f"{API}/cases/{case_id}/"))["status"])


def case_annotations(client: Client, case_id: int) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], ok(client.get(f"{API}/cases/{case_id}/annotations/")))


def annotation_by_role(client: Client, case_id: int, role: str) -> dict[str, Any]:
    [found] = [a for a in case_annotations(client, case_id) if a["role"] == role]
    return found


def revision_items(client: Client, annotation_id: int, number: int | None = None) -> list[dict[str, Any]]:
    """The items of a revision (the current one by default), masks included (encoded)."""
    if number is None:
        number = int(ok(client.get(f"{API}/annotations/{annotation_id}/"))["current_revision"])
    return cast(list[dict[str, Any]], ok(client.get(f"{API}/annotations/{annotation_id}/revisions/{number}/"))["items"])


def mask_of(items: list[dict[str, Any]], label: str = "nodule_mask") -> np.ndarray:
    [item] = [i for i in items if i["label"] == label]
    return decode_mask(item["mask"], "mask")


def without_masks(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items with mask payloads reduced to their metadata, for comparing two readings' other content."""
    return [
        {**item, "mask": {k: v for k, v in item["mask"].items() if k not in ("data", "sha256", "encoding")}}
        if "mask" in item
        else item
        for item in items
    ]


def events(client: Client, case_id: int) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], ok(client.get(f"{API}/cases/{case_id}/events/")))


def series_mask(case: Case, z: slice, y: slice, x: slice) -> np.ndarray:
    """A uint8 mask of the case's series shape with one painted block."""
    series = case_series(case)
    assert series.rows and series.columns
    array = np.zeros((series.number_of_slices, series.rows, series.columns), dtype=np.uint8)
    array[z, y, x] = 1
    return array


@pytest.fixture
def experts(reading_project: Project) -> dict[str, User]:
    """Three more experts of the project: expert1, expert2, expert3 (created in that order)."""
    made = {}
    for name in ("expert1", "expert2", "expert3"):
        user = cast(User, UserFactory(username=name))
        MembershipFactory(project=reading_project, user=user, role=Role.EXPERT)
        made[name] = user
    return made


@pytest.fixture
def clients(
    users: dict[str, User], experts: dict[str, User], client_for: Callable[[User | None], Client]
) -> dict[str, Client]:
    """A logged-in client per user name: annotator, reviewer, expert, manager, outsider, expert1..3."""
    return {name: client_for(user) for name, user in {**users, **experts}.items()}
