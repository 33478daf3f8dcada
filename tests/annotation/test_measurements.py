"""A region's measurements (issue 15 item 2): stored with the region, the millimetres computed by the server
from the points and the series' pixel spacing, bad ones refused with a message naming the problem."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.labels import SeriesGeometry, StudyGeometry, validate_values
from tests.annotation.test_labels import SCHEMA, label_error

SPACED = StudyGeometry(
    study_instance_uid="1.2.3",
    series={
        "S1": SeriesGeometry(
            "S1", rows=100, columns=200, number_of_slices=2, frames={"I0": 1, "I1": 1}, pixel_spacing=(0.5, 0.8)
        ),
        "S2": SeriesGeometry("S2", rows=100, columns=200, number_of_slices=1, frames={"J0": 1}),
    },
)


def box(measurements: Any, sop: str = "I0") -> dict[str, Any]:
    return {
        "label": "box",
        "id": "b1",
        "sop_instance_uid": sop,
        "geometry": {"x": 10, "y": 10, "width": 50, "height": 40},
        "measurements": measurements,
    }


def stored(item: dict[str, Any]) -> list[dict[str, Any]]:
    validated = validate_values(SCHEMA, {"items": [item]}, SPACED, complete=False)
    (out,) = validated.items
    return list(out["measurements"])


def test_lengths_are_computed_from_the_pixel_spacing_not_taken_from_the_browser() -> None:
    (length,) = stored(box([{"id": "m1", "kind": "length", "points": [[10, 20], [40, 60]], "length_mm": 999}]))
    # 30 columns x 0.8 mm and 40 rows x 0.5 mm: a 24 x 20 mm right triangle.
    assert length == {"id": "m1", "kind": "length", "points": [[10.0, 20.0], [40.0, 60.0]], "length_mm": 31.24}


def test_bidirectional_keeps_the_longer_axis_as_long() -> None:
    (m,) = stored(box([{"id": "m1", "kind": "bidirectional", "points": [[10, 50], [20, 50], [15, 20], [15, 80]]}]))
    assert (m["long_mm"], m["short_mm"]) == (30.0, 8.0)


def test_an_ellipse_keeps_its_hu_statistics_and_gets_its_area() -> None:
    hu = {"mean": 35.5, "sd": 11.2, "min": -5, "max": 70}
    (m,) = stored(box([{"id": "m1", "kind": "ellipse", "points": [[20, 30], [20, 50], [10, 40], [30, 40]], "hu": hu}]))
    assert m["hu"] == {"mean": 35.5, "sd": 11.2, "min": -5.0, "max": 70.0}
    assert m["area_mm2"] == pytest.approx(3.14159 * 10 * 16 / 4, abs=0.01)


def test_without_pixel_spacing_the_millimetres_are_unknown() -> None:
    (m,) = stored(box([{"id": "m1", "kind": "length", "points": [[10, 20], [40, 60]]}], sop="J0"))
    assert m["length_mm"] is None


@pytest.mark.parametrize(
    ("measurements", "field", "message"),
    [
        ({"id": "m1"}, "items[0].measurements", "expected a list of measurements"),
        (
            [{"id": "m1", "kind": "angle", "points": []}],
            "items[0].measurements[0].kind",
            "'angle' is not a measurement kind",
        ),
        ([{"id": "m1", "kind": "length", "points": [[1, 1]]}], "items[0].measurements[0].points", "has 2 points"),
        (
            [{"id": "m1", "kind": "length", "points": [[1, 1], [500, 1]]}],
            "items[0].measurements[0].points[1]",
            "outside the image",
        ),
        (
            [
                {
                    "id": "m1",
                    "kind": "ellipse",
                    "points": [[20, 30], [20, 50], [10, 40], [30, 40]],
                    "hu": {"mean": 90, "sd": 1, "min": 0, "max": 50},
                }
            ],
            "items[0].measurements[0].hu",
            "do not add up",
        ),
        (
            [
                {"id": "m1", "kind": "length", "points": [[1, 1], [2, 2]]},
                {"id": "m1", "kind": "length", "points": [[1, 1], [3, 3]]},
            ],
            "items[0].measurements[1].id",
            "used twice",
        ),
        (
            [{"id": "m1", "kind": "length", "points": [[1, 1], [2, 2]], "slice": 0}],
            "items[0].measurements[0].slice",
            "names its slice only on a 3D box",
        ),
        (
            [{"id": "m1", "kind": "length", "points": [[1, 1], [2, 2]], "colour": "red"}],
            "items[0].measurements[0].colour",
            "unknown field for a measurement",
        ),
    ],
)
def test_bad_measurements_are_refused_naming_the_problem(measurements: Any, field: str, message: str) -> None:
    with label_error(field, message):
        validate_values(SCHEMA, {"items": [box(measurements)]}, SPACED, complete=False)


def test_measurements_belong_to_2d_regions_only() -> None:
    item = {"label": "present", "value": "yes", "measurements": []}
    with label_error("items[0].measurements", "not allowed"):
        validate_values(SCHEMA, {"items": [item]}, SPACED, complete=False)
