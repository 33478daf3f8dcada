"""3D boxes through the revision API (issue 15 item 4): a 3D box is stored with its slice range (z, depth) on its
series; an extent past the series' last slice, before its first, or reversed (its last slice before its first) is
a 400 that names the box and says it in the reader's words (in English and Chinese), and stores nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Case, LabelSchema, Project
from annotation.services import assignment_create, schema_create_version
from tests.annotation.conftest import case_series, db_state, post_revision

BOX3D = {
    "key": "nodule_volume",
    "name": {"en": "Nodule 3D box", "zh-hans": "结节三维框"},
    "level": "region",
    "kind": "box",
    "dimensions": 3,
}


@pytest.fixture
def box3d_case(
    reading_project: Project,
    reading_cases: list[Case],
    users: dict[str, User],
) -> Case:
    latest = LabelSchema.objects.filter(project=reading_project).order_by("-version").first()
    assert latest is not None
    definition = copy.deepcopy(latest.definition)
    definition["labels"].append(BOX3D)
    schema_create_version(project=reading_project, definition=definition, created_by=users["manager"])
    case = reading_cases[0]
    assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=users["manager"])
    return case


def values(case: Case, z: int, depth: int) -> dict[str, Any]:
    series = case_series(case)
    geometry = {"x": 10, "y": 12, "z": z, "width": 20, "height": 16, "depth": depth}
    item = {"label": "nodule_volume", "id": "v1", "series_instance_uid": series.series_instance_uid}
    return {"items": [{"label": "nodule_present", "value": "yes"}, {**item, "geometry": geometry}]}


def test_a_3d_box_is_stored_with_its_slice_range(
    box3d_case: Case, users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    client = client_for(users["annotator"])
    slices = case_series(box3d_case).number_of_slices
    assert slices and slices >= 4
    response = post_revision(client, box3d_case, values(box3d_case, 1, slices - 1), base_revision=0)
    assert response.status_code == 201, response.content
    case = Case.objects.get(pk=box3d_case.pk)
    revision = case.annotations.get(reader=users["annotator"]).current_revision
    assert revision is not None
    (box,) = [i for i in revision.items if i["label"] == "nodule_volume"]
    assert box["geometry"] == {"x": 10, "y": 12, "z": 1, "width": 20, "height": 16, "depth": slices - 1}
    assert "sop_instance_uid" not in box


@pytest.mark.parametrize(
    ("extent", "field", "english", "chinese"),
    [
        (lambda n: (n - 2, 4), "geometry.z", "the box spans slices {a} to {b} of a series of {n} slices", "框跨越第"),
        (lambda n: (-1, 3), "geometry.z", "the box starts before the series' first slice", "起始层在序列第一层之前"),
        (lambda n: (3, -2), "geometry.depth", "the box's last slice comes before its first", "结束层在起始层之前"),
        (lambda n: (3, 0), "geometry.depth", "the box's last slice comes before its first", "结束层在起始层之前"),
    ],
)
def test_an_extent_outside_the_series_or_reversed_is_refused_and_nothing_is_stored(
    box3d_case: Case,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
    extent: Callable[[int], tuple[int, int]],
    field: str,
    english: str,
    chinese: str,
) -> None:
    slices = case_series(box3d_case).number_of_slices
    assert slices
    z, depth = extent(slices)
    before = db_state(isolated_storage)
    for language, said in (("en", english.format(a=z + 1, b=z + depth, n=slices)), ("zh-hans", chinese)):
        for submit in (False, True):  # a draft too: a box outside the series is not a value to keep as typed
            client = client_for(users["annotator"])
            client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
            response = post_revision(client, box3d_case, values(box3d_case, z, depth), base_revision=0, submit=submit)
            assert response.status_code == 400, response.content
            body = response.json()
            assert body["field"] == f"items[1].{field}", body
            assert said in body["detail"], body
            assert "Nodule 3D box" in body["detail"] or "结节三维框" in body["detail"], body
    assert db_state(isolated_storage) == before


def measured(case: Case, z: int, depth: int, on_slice: int) -> dict[str, Any]:
    """A 3D box (slices z to z + depth - 1) with a length measurement drawn on slice ``on_slice`` (from 0)."""
    body = values(case, z, depth)
    length = {"id": "m1", "kind": "length", "points": [[12, 14], [28, 14]], "slice": on_slice}
    body["items"][1]["measurements"] = [length]
    return body


def test_a_measurement_on_a_slice_of_a_3d_box_is_stored_with_the_box(
    box3d_case: Case, users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    client = client_for(users["annotator"])
    series = case_series(box3d_case)
    response = post_revision(client, box3d_case, measured(box3d_case, 1, 3, on_slice=3), base_revision=0)
    assert response.status_code == 201, response.content
    revision = Case.objects.get(pk=box3d_case.pk).annotations.get(reader=users["annotator"]).current_revision
    assert revision is not None
    (box,) = [i for i in revision.items if i["label"] == "nodule_volume"]
    (length,) = box["measurements"]
    assert length["slice"] == 3 and length["points"] == [[12.0, 14.0], [28.0, 14.0]]
    # 16 columns at the series' column spacing: the server's millimetres, not the browser's.
    spacing = series.pixel_spacing
    assert spacing
    assert length["length_mm"] == pytest.approx(16 * float(spacing[1]), abs=0.01)


@pytest.mark.parametrize(
    ("on_slice", "english", "chinese"),
    [
        (
            5,
            "the measurement is on slice 6, outside the 3D box's slices 2 to 4",
            "测量位于第 6 层，不在三维框的第 2 至 4 层之内",
        ),
        (0, "the measurement is on slice 1, outside the 3D box's slices 2 to 4", "测量位于第 1 层"),
        (None, "slice is required", "slice"),
    ],
)
def test_a_measurement_off_the_3d_box_slices_is_refused_and_nothing_is_stored(
    box3d_case: Case,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
    on_slice: int | None,
    english: str,
    chinese: str,
) -> None:
    body = measured(box3d_case, 1, 3, on_slice=on_slice if on_slice is not None else 0)
    if on_slice is None:
        del body["items"][1]["measurements"][0]["slice"]
    before = db_state(isolated_storage)
    for language, said in (("en", english), ("zh-hans", chinese)):
        for submit in (False, True):
            client = client_for(users["annotator"])
            client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
            response = post_revision(client, box3d_case, body, base_revision=0, submit=submit)
            assert response.status_code == 400, response.content
            detail = response.json()
            assert detail["field"] == "items[1].measurements[0].slice", detail
            assert said in detail["detail"], detail
    assert db_state(isolated_storage) == before
