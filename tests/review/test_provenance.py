"""Which part of a corrected label came from whom (review.provenance), on items as revisions store them."""

from __future__ import annotations

from typing import Any

from review.provenance import Source, correction_provenance

FIRST = Source(
    reading={
        "revision": 1,
        "annotation": 10,
        "role": "first_reader",
        "reader": "annotator",
        "description": "first reading",
    },
    items=[
        {"label": "nodule_present", "value": "yes"},
        {
            "label": "nodule_box",
            "id": "n1",
            "sop_instance_uid": "1.1",
            "frame": 1,
            "geometry": {"x": 1, "y": 1, "width": 4, "height": 4},
        },
        {"label": "nodule_type", "region": "n1", "value": "solid"},
        {"label": "lobe", "region": "n1", "value": "right_upper"},
        {
            "label": "nodule_mask",
            "series_instance_uid": "1",
            "mask": {"shape": [2, 4, 4], "dtype": "uint8", "sha256": "aaa"},
        },
    ],
)
AI = Source(
    reading={"revision": 2, "annotation": 20, "role": "ai", "reader": None, "description": "AI proposal"},
    items=[
        {
            "label": "nodule_box",
            "id": "n1",
            "sop_instance_uid": "1.2",
            "frame": 1,
            "geometry": {"x": 9, "y": 9, "width": 2, "height": 2},
        },
        {"label": "nodule_type", "region": "n1", "value": "ground_glass"},
    ],
)


def test_a_renamed_copied_lesion_keeps_its_source_and_a_dropped_attribute_or_new_mask_is_the_experts_change():
    items: list[dict[str, Any]] = [
        {"label": "nodule_present", "value": "yes"},
        {
            "label": "nodule_box",
            "id": "n1",
            "sop_instance_uid": "1.1",
            "frame": 1,
            "geometry": {"x": 1, "y": 1, "width": 4, "height": 4},
        },
        {
            "label": "nodule_box",
            "id": "n1-2",
            "sop_instance_uid": "1.2",
            "frame": 1,
            "geometry": {"x": 9, "y": 9, "width": 2, "height": 2},
        },
        {"label": "nodule_type", "region": "n1", "value": "solid"},
        {"label": "nodule_type", "region": "n1-2", "value": "ground_glass"},
        {"label": "diameter", "region": "n1-2", "value": 3.0},
        {
            "label": "nodule_mask",
            "series_instance_uid": "1",
            "mask": {"shape": [2, 4, 4], "dtype": "uint8", "sha256": "bbb"},
        },
        {"label": "comment", "value": "seen"},
    ]
    result = correction_provenance(
        items=items, expert="expert1", seed=FIRST, origins={"n1": (FIRST, "n1"), "n1-2": (AI, "n1")}
    )
    by = {(e["label"], e.get("id") or e.get("region")): e for e in result["items"]}
    assert (by[("nodule_present", None)]["by"], by[("nodule_present", None)]["modified"]) == ("annotator", False)
    assert (by[("nodule_box", "n1-2")]["from"]["id"], by[("nodule_box", "n1-2")]["by"]) == ("n1", "AI proposal")
    assert by[("nodule_type", "n1-2")]["from"]["role"] == "ai"
    assert (by[("diameter", "n1-2")]["from"], by[("diameter", "n1-2")]["by"]) == (None, "expert1")
    assert (by[("nodule_mask", None)]["modified"], by[("nodule_mask", None)]["by"]) == (True, "expert1")
    assert (by[("comment", None)]["from"], by[("comment", None)]["by"]) == (None, "expert1")
    lesions = {lesion["id"]: lesion for lesion in result["lesions"]}
    # n1 lost its lobe: the expert's change, though every item left is the annotator's.
    assert (lesions["n1"]["modified"], lesions["n1"]["by"]) == (True, "expert1")
    # The AI's lesion got a diameter it did not have.
    assert (lesions["n1-2"]["modified"], lesions["n1-2"]["by"], lesions["n1-2"]["from"]["role"]) == (
        True,
        "expert1",
        "ai",
    )
    assert result["seed"]["reader"] == "annotator"


def test_an_untouched_copy_is_its_readers_and_a_region_the_expert_drew_is_theirs():
    items = [
        *FIRST.items,
        {
            "label": "nodule_box",
            "id": "x7",
            "sop_instance_uid": "1.1",
            "frame": 1,
            "geometry": {"x": 2, "y": 2, "width": 2, "height": 2},
        },
        {"label": "nodule_type", "region": "x7", "value": "solid"},
    ]
    result = correction_provenance(items=items, expert="expert2", seed=FIRST, origins={"n1": (FIRST, "n1")})
    lesions = {lesion["id"]: lesion for lesion in result["lesions"]}
    assert (lesions["n1"]["modified"], lesions["n1"]["by"]) == (False, "annotator")
    assert (lesions["x7"]["from"], lesions["x7"]["modified"], lesions["x7"]["by"]) == (None, False, "expert2")
    assert all(not e["modified"] for e in result["items"])


def test_a_mask_stored_again_under_another_name_with_the_same_voxels_is_not_the_experts_change():
    # The reader's browser re-sends an unchanged mask run-length encoded: stored under another name ("bbb") than the
    # first reader's gzip one ("aaa"). By name it looks changed; by its voxels it is the first reader's.
    resent = {**FIRST.items[-1], "mask": {**FIRST.items[-1]["mask"], "sha256": "bbb"}}
    items = [*FIRST.items[:-1], resent]
    by_name = correction_provenance(items=items, expert="expert1", seed=FIRST, origins={"n1": (FIRST, "n1")})
    by_voxels = correction_provenance(
        items=items,
        expert="expert1",
        seed=FIRST,
        origins={"n1": (FIRST, "n1")},
        mask_contents={"aaa": "voxels-1", "bbb": "voxels-1"},
    )
    painted = correction_provenance(
        items=items,
        expert="expert1",
        seed=FIRST,
        origins={"n1": (FIRST, "n1")},
        mask_contents={"aaa": "voxels-1", "bbb": "voxels-2"},
    )

    def mask_entry(result: dict[str, Any]) -> dict[str, Any]:
        return next(e for e in result["items"] if e["label"] == "nodule_mask")

    assert (mask_entry(by_name)["modified"], mask_entry(by_name)["by"]) == (True, "expert1")
    assert (mask_entry(by_voxels)["modified"], mask_entry(by_voxels)["by"]) == (False, "annotator")
    assert (mask_entry(painted)["modified"], mask_entry(painted)["by"]) == (True, "expert1")
