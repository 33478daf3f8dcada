"""Agreement on 3D boxes (issue 15 item 4): the reader's 3D boxes (x, y, z, width, height, depth: a slice range) are
matched between readers by their 3D IoU, so that two boxes with the same outline on disjoint slice ranges are two
lesions, and partly overlapping ranges count in proportion; the consensus box keeps whole slices. No database."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.labels import validate_schema
from review.evaluation import Reading, SliceIndex, Thresholds, evaluate

SERIES = "1.2.3.4"
INDEX = SliceIndex(z_of_sop={}, spacing_of_series={SERIES: (2.0, 0.5, 0.5)})
SCHEMA = validate_schema(
    {
        "name": "3D boxes",
        "labels": [{"key": "volume", "level": "region", "kind": "box", "dimensions": 3}],
    }
)


def box3d(region_id: str, z: int, depth: int, x: float = 10, y: float = 10, size: float = 20) -> dict[str, Any]:
    geometry = {"x": x, "y": y, "z": z, "width": size, "height": size, "depth": depth}
    return {"label": "volume", "id": region_id, "series_instance_uid": SERIES, "geometry": geometry}


def run(a: list[dict[str, Any]], b: list[dict[str, Any]], iou: float = 0.5) -> tuple[Any, dict[str, Any]]:
    result = evaluate(SCHEMA, [Reading("a", a), Reading("b", b)], Thresholds(box_iou=iou), INDEX)
    (label,) = [label.as_dict() for label in result.labels]
    return result, label


def test_same_outline_on_disjoint_slices_is_not_a_match() -> None:
    result, label = run([box3d("a1", z=0, depth=4)], [box3d("b1", z=6, depth=4)])
    assert not result.agreed
    assert label["metrics"]["a~b"]["matched"] == 0


@pytest.mark.parametrize(
    ("z_b", "depth_b", "iou"),
    [
        (0, 4, 1.0),  # the same box
        (2, 4, 2 / 6),  # slices 2-3 of 0-3 and 2-5: the outline is equal, so the IoU is the slices' (2 of 6)
        (0, 8, 0.5),  # slices 0-3 inside 0-7
    ],
)
def test_the_match_score_is_the_3d_iou_of_the_slice_ranges(z_b: int, depth_b: int, iou: float) -> None:
    _, label = run([box3d("a1", z=0, depth=4)], [box3d("b1", z=z_b, depth=depth_b)], iou=0.3)
    scores = label["metrics"]["a~b"]["scores"]
    if iou >= 0.3:
        assert scores == [pytest.approx(iou, abs=1e-6)]
    else:
        assert scores == []


def test_agreed_3d_boxes_give_a_consensus_box_of_whole_slices() -> None:
    result, _ = run([box3d("a1", z=2, depth=5)], [box3d("b1", z=3, depth=4, x=12)], iou=0.5)
    assert result.agreed
    (item,) = [i for i in result.consensus_items if i["label"] == "volume"]
    geometry = item["geometry"]
    assert isinstance(geometry["z"], int) and isinstance(geometry["depth"], int)
    # Mean corners: z from (2 + 3) / 2 = 2.5 -> 2 (round half to even), end (7 + 7) / 2 = 7; x from 11.
    assert (geometry["z"], geometry["z"] + geometry["depth"]) == (2, 7)
    assert geometry["x"] == pytest.approx(11.0)
    assert item["series_instance_uid"] == SERIES
