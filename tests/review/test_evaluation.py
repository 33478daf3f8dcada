"""Unit tests of review.evaluation.evaluate on hand-built readings: each label kind agreeing and disagreeing,
the reasons written for people, lesion matching, region attributes, masks per segment, and the consensus
(majority answers, mean boxes, union/intersection of two masks, STAPLE of three). No database."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from annotation.labels import validate_schema
from review.agreement import shape_average, staple
from review.evaluation import NOTHING_COMPARED, Evaluation, Reading, SliceIndex, Thresholds, evaluate

SERIES = "1.2.3.4"
SOPS = [f"1.2.3.4.{k}" for k in range(8)]
INDEX = SliceIndex(z_of_sop={sop: k for k, sop in enumerate(SOPS)}, spacing_of_series={SERIES: (2.0, 0.5, 0.5)})
SHAPE = (4, 16, 16)

SCHEMA = validate_schema(
    {
        "name": "evaluation test",
        "labels": [
            {"key": "present", "level": "study", "kind": "single_choice", "choices": [{"key": "yes"}, {"key": "no"}]},
            {"key": "grade", "level": "study", "kind": "ordinal", "scale": [{"value": v} for v in range(5)]},
            {"key": "volume", "level": "study", "kind": "number"},
            {
                "key": "findings",
                "level": "study",
                "kind": "multiple_choice",
                "choices": [{"key": "a"}, {"key": "b"}, {"key": "c"}],
            },
            {"key": "note", "level": "study", "kind": "text"},
            {"key": "lesion", "level": "region", "kind": "box"},
            {
                "key": "lesion_type",
                "level": "region",
                "kind": "single_choice",
                "applies_to": ["lesion"],
                "choices": [{"key": "solid"}, {"key": "ground_glass"}],
            },
            {"key": "spot", "level": "region", "kind": "point"},
            {"key": "outline", "level": "region", "kind": "polygon"},
            {
                "key": "organ",
                "level": "series",
                "kind": "mask",
                "segments": [{"value": 1, "key": "left"}, {"value": 2, "key": "right"}],
            },
            {
                "key": "scar",
                "level": "region",
                "kind": "mask",
                "segments": [{"value": 1, "key": "core"}, {"value": 2, "key": "border"}],
            },
            {
                "key": "scar_grade",
                "level": "region",
                "kind": "ordinal",
                "applies_to": ["scar"],
                "scale": [{"value": v} for v in range(1, 5)],
            },
        ],
    }
)


def schema_with(*keys: str) -> dict[str, Any]:
    """The test schema restricted to some labels (so that a test compares only what it is about)."""
    return {**SCHEMA, "labels": [label for label in SCHEMA["labels"] if label["key"] in keys]}


def value(label: str, answer: Any) -> dict[str, Any]:
    return {"label": label, "value": answer}


def box(
    region_id: str, x: float, y: float, width: float, height: float, *, slice_index: int = 3, label: str = "lesion"
) -> dict[str, Any]:
    return {
        "label": label,
        "id": region_id,
        "sop_instance_uid": SOPS[slice_index],
        "frame": 1,
        "geometry": {"x": x, "y": y, "width": width, "height": height},
    }


def attribute(label: str, region: str, answer: Any) -> dict[str, Any]:
    return {"label": label, "region": region, "value": answer}


def mask_item(label: str = "organ") -> dict[str, Any]:
    return {"label": label, "series_instance_uid": SERIES, "mask": {"shape": list(SHAPE), "dtype": "uint8"}}


def reading(name: str, items: list[dict[str, Any]], mask: np.ndarray | None = None) -> Reading:
    masks = {}
    if mask is not None:
        items = [*items, mask_item()]
        masks[len(items) - 1] = mask
    return Reading(name=name, items=items, masks=masks)


def run(keys: tuple[str, ...], *readings: Reading, **thresholds: Any) -> tuple[Evaluation, dict[str, dict[str, Any]]]:
    result = evaluate(schema_with(*keys), list(readings), Thresholds(**thresholds), INDEX)
    return result, {label.key: label.as_dict() for label in result.labels}


def consensus_of(result: Evaluation, label: str) -> list[dict[str, Any]]:
    return [item for item in result.consensus_items if item["label"] == label]


def iou_2d(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """IoU of two x/y/width/height boxes, written out independently of review.agreement."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    overlap = max(0.0, min(ax1, bx1) - max(a[0], b[0])) * max(0.0, min(ay1, by1) - max(a[1], b[1]))
    return overlap / (a[2] * a[3] + b[2] * b[3] - overlap)


def blob(z: slice, y: slice, x: slice, value: int = 1, base: np.ndarray | None = None) -> np.ndarray:
    array = np.zeros(SHAPE, np.uint8) if base is None else base.copy()
    array[z, y, x] = value
    return array


def dice_of(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


# --- Categorical, ordinal, number, multiple choice, text ------------------------------------------------------


def test_single_choice_equal_agrees_and_the_consensus_keeps_the_answer():
    result, labels = run(
        ("present",), reading("ann", [value("present", "yes")]), reading("rev", [value("present", "yes")])
    )
    assert result.agreed is True
    assert labels["present"]["agreed"] is True
    assert labels["present"]["metrics"] == {"pairs": 1, "percent_agreement": 1.0}
    assert result.reasons == []
    assert consensus_of(result, "present") == [value("present", "yes")]


def test_single_choice_unequal_is_disputed_with_both_answers_named():
    result, labels = run(
        ("present",), reading("ann", [value("present", "yes")]), reading("rev", [value("present", "no")])
    )
    assert result.agreed is False
    assert labels["present"]["agreed"] is False
    assert labels["present"]["metrics"]["percent_agreement"] == 0.0
    assert result.reasons == ["Present: ann chose Yes, rev chose No"]
    assert result.consensus_items == [] and result.consensus_masks == {}  # a disputed case has no consensus


@pytest.mark.parametrize(
    ("a", "b", "distance", "agreed"),
    [(2, 2, 0, True), (2, 3, 0, False), (2, 3, 1, True), (1, 3, 1, False), (0, 4, 4, True)],
)
def test_ordinal_agrees_within_the_distance_threshold(a: int, b: int, distance: int, agreed: bool):
    result, labels = run(
        ("grade",), reading("ann", [value("grade", a)]), reading("rev", [value("grade", b)]), ordinal_distance=distance
    )
    assert result.agreed is agreed
    if agreed:
        assert result.reasons == []
        assert consensus_of(result, "grade") == [value("grade", a)]
    else:
        assert result.reasons == [f"Grade: ann gave grade {a}, rev grade {b} (distance {abs(a - b)} > {distance})"]
        assert labels["grade"]["metrics"]["percent_agreement"] == 0.0


@pytest.mark.parametrize(
    ("a", "b", "tolerance", "agreed"),
    [(10.0, 10.0, 0.0, True), (10.0, 10.25, 0.0, False), (10.0, 10.25, 0.5, True), (10.0, 11.0, 0.5, False)],
)
def test_number_agrees_within_the_tolerance(a: float, b: float, tolerance: float, agreed: bool):
    result, _ = run(
        ("volume",),
        reading("ann", [value("volume", a)]),
        reading("rev", [value("volume", b)]),
        number_tolerance=tolerance,
    )
    assert result.agreed is agreed
    if not agreed:
        assert result.reasons == [f"Volume: ann gave {a:g}, rev {b:g} (difference {abs(a - b):g} > {tolerance:g})"]


def test_multiple_choice_compares_sets_not_order():
    same, _ = run(
        ("findings",), reading("ann", [value("findings", ["a", "b"])]), reading("rev", [value("findings", ["b", "a"])])
    )
    assert same.agreed is True
    assert [set(item["value"]) for item in consensus_of(same, "findings")] == [{"a", "b"}]

    differ, _ = run(
        ("findings",), reading("ann", [value("findings", ["a"])]), reading("rev", [value("findings", ["a", "b"])])
    )
    assert differ.agreed is False
    assert differ.reasons == ["Findings: ann chose A, rev chose A, B"]

    empty, _ = run(("findings",), reading("ann", [value("findings", [])]), reading("rev", [value("findings", [])]))
    assert empty.agreed is True


def test_an_answer_given_by_one_reader_only_is_a_disagreement():
    result, labels = run(("grade",), reading("ann", [value("grade", 2)]), reading("rev", []))
    assert result.agreed is False
    assert result.reasons == ["Grade: answered by ann only, not by rev"]
    # and the other way round
    result, _ = run(("grade",), reading("ann", []), reading("rev", [value("grade", 2)]))
    assert result.reasons == ["Grade: answered by rev only, not by ann"]
    # a label neither reader answered is no disagreement, and no agreement either: it was not compared
    result, labels = run(("grade",), reading("ann", []), reading("rev", []))
    assert labels["grade"]["status"] == "not_compared" and labels["grade"]["agreed"] is False
    assert labels["grade"]["metrics"]["pairs"] == 0 and "percent_agreement" not in labels["grade"]["metrics"]
    assert result.status == "not_compared" and result.agreed is False
    result, labels = run(
        ("grade", "present"), reading("ann", [value("present", "no")]), reading("rev", [value("present", "no")])
    )
    assert result.status == "agreed" and labels["grade"]["status"] == "not_compared"


def test_free_text_is_kept_out_of_the_comparison():
    result, labels = run(("note",), reading("ann", [value("note", "hello")]), reading("rev", [value("note", "other")]))
    assert labels["note"]["metrics"] == {"compared": False}
    assert labels["note"]["status"] == "not_compared" and labels["note"]["agreed"] is False
    # nothing else to compare: agreement was not shown
    assert result.agreed is False and result.status == "not_compared"
    assert result.reasons == [NOTHING_COMPARED]


def test_three_readers_agree_only_when_every_pair_agrees_and_the_majority_wins():
    readers = [reading(name, [value("grade", g)]) for name, g in (("r1", 2), ("r2", 3), ("r3", 3))]
    result, labels = run(("grade",), *readers, ordinal_distance=1)
    assert result.agreed is True
    assert labels["grade"]["metrics"]["pairs"] == 3
    assert consensus_of(result, "grade") == [value("grade", 3)]  # two of three said 3

    readers[0] = reading("r1", [value("grade", 1)])
    result, _ = run(("grade",), *readers, ordinal_distance=1)
    assert result.agreed is False
    assert sorted(result.reasons) == [
        "Grade: r1 gave grade 1, r2 grade 3 (distance 2 > 1)",
        "Grade: r1 gave grade 1, r3 grade 3 (distance 2 > 1)",
    ]


def test_fewer_than_two_readings_cannot_be_evaluated():
    with pytest.raises(ValueError, match="at least two"):
        evaluate(SCHEMA, [reading("ann", [])], Thresholds(), INDEX)


# --- Lesions: counts, matching, region attributes ---------------------------------------------------------------


def test_lesion_count_mismatch_is_explained_in_words():
    one = reading("annotator", [box("n1", 10, 10, 8, 8)])
    none = reading("reviewer", [])
    result, labels = run(("lesion",), one, none)
    assert result.agreed is False
    assert result.reasons == ["Lesion: different numbers of lesions (annotator found 1, reviewer found 0)"]
    assert labels["lesion"]["metrics"]["lesions_per_reader"] == {"annotator": 1, "reviewer": 0}

    two = reading("annotator", [box("n1", 10, 10, 8, 8), box("n2", 30, 30, 8, 8)])
    result, _ = run(("lesion",), two, reading("reviewer", [box("x", 10, 10, 8, 8)]))
    assert result.reasons == ["Lesion: different numbers of lesions (annotator found 2, reviewer found 1)"]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_a_lesion_is_matched_only_at_the_iou_threshold(threshold: float):
    a, b = (10, 10, 10, 10), (13, 10, 10, 10)  # IoU = 70 / 130 = 0.538
    expected_iou = iou_2d(a, b)
    assert expected_iou == pytest.approx(7 / 13)
    result, labels = run(
        ("lesion",), reading("ann", [box("n1", *a)]), reading("rev", [box("m1", *b)]), box_iou=threshold
    )
    pair = labels["lesion"]["metrics"]["ann~rev"]
    if expected_iou >= threshold:
        assert result.agreed is True
        assert pair["matched"] == 1 and pair["scores"] == [pytest.approx(expected_iou, abs=1e-6)]
        assert (pair["precision"], pair["recall"], pair["f1"]) == (1.0, 1.0, 1.0)
    else:
        assert result.agreed is False
        assert pair["matched"] == 0 and pair["f1"] == 0.0
        assert result.reasons == [f"Lesion: 1 of 1 lesions do not match at IoU {threshold:g} between ann and rev"]


def test_boxes_on_different_slices_never_match():
    result, _ = run(
        ("lesion",), reading("ann", [box("n1", 10, 10, 8, 8, slice_index=2)]), reading("rev", [box("m1", 10, 10, 8, 8)])
    )
    assert result.agreed is False
    assert result.reasons == ["Lesion: 1 of 1 lesions do not match at IoU 0.5 between ann and rev"]


def test_consensus_box_is_the_mean_of_the_matched_boxes_with_a_renumbered_id():
    result, labels = run(
        ("lesion",),
        reading("ann", [box("n1", 20, 22, 10, 8)]),
        reading("rev", [box("other-id", 21, 23, 11, 8)]),
    )
    assert result.agreed is True, result.reasons
    [item] = consensus_of(result, "lesion")
    assert item["id"] == "lesion-1"
    assert item["sop_instance_uid"] == SOPS[3]
    # corners (20, 22)-(30, 30) and (21, 23)-(32, 31): mean (20.5, 22.5)-(31, 30.5)
    assert item["geometry"] == {"x": 20.5, "y": 22.5, "width": 10.5, "height": 8.0}
    assert labels["lesion"]["metrics"]["ann~rev"]["scores"] == [
        pytest.approx(iou_2d((20, 22, 10, 8), (21, 23, 11, 8)), abs=1e-6)
    ]


def test_lesions_are_matched_by_geometry_not_by_their_ids_or_order():
    ann = reading(
        "ann",
        [
            box("n1", 5, 5, 6, 6),
            box("n2", 40, 40, 8, 8),
            attribute("lesion_type", "n1", "solid"),
            attribute("lesion_type", "n2", "ground_glass"),
        ],
    )
    rev = reading(
        "rev",
        [
            box("a", 40, 41, 8, 8),  # the reviewer's first box is the annotator's second lesion
            box("b", 5, 5, 6, 7),
            attribute("lesion_type", "a", "ground_glass"),
            attribute("lesion_type", "b", "solid"),
        ],
    )
    result, labels = run(("lesion", "lesion_type"), ann, rev)
    assert result.agreed is True, result.reasons
    assert labels["lesion"]["metrics"]["ann~rev"]["matched"] == 2
    boxes = {item["id"]: item["geometry"] for item in consensus_of(result, "lesion")}
    assert boxes == {
        "lesion-1": {"x": 5.0, "y": 5.0, "width": 6.0, "height": 6.5},
        "lesion-2": {"x": 40.0, "y": 40.5, "width": 8.0, "height": 8.0},
    }
    assert sorted((i["region"], i["value"]) for i in consensus_of(result, "lesion_type")) == [
        ("lesion-1", "solid"),
        ("lesion-2", "ground_glass"),
    ]

    # The same reviewer calling the matched second lesion solid: a disagreement on that lesion only.
    rev.items[3] = attribute("lesion_type", "b", "ground_glass")
    result, labels = run(("lesion", "lesion_type"), ann, rev)
    assert result.agreed is False
    assert labels["lesion"]["agreed"] is True
    assert result.reasons == ["Lesion type of Lesion 1: ann chose Solid, rev chose Ground glass"]


def test_region_attributes_of_unmatched_lesions_are_disagreed_as_found_by_one_reader_only():
    # Both readers found one lesion each, but in different places: the boxes disagree, and the attributes
    # of each lesion are disagreed too: the other reader never described that lesion.
    ann = reading("ann", [box("n1", 5, 5, 6, 6), attribute("lesion_type", "n1", "solid")])
    rev = reading("rev", [box("m1", 40, 40, 6, 6), attribute("lesion_type", "m1", "ground_glass")])
    result, labels = run(("lesion", "lesion_type"), ann, rev)
    assert result.agreed is False and result.status == "disagreed"
    assert labels["lesion"]["agreed"] is False
    assert labels["lesion_type"]["status"] == "disagreed" and labels["lesion_type"]["agreed"] is False
    assert labels["lesion_type"]["reasons"] == [
        "Lesion type of Lesion 1: lesion found by one reader only (ann)",
        "Lesion type of Lesion 2: lesion found by one reader only (rev)",
    ]
    assert labels["lesion"]["matching"]["pairs"] == []
    assert labels["lesion"]["matching"]["unmatched"] == {"ann": ["n1"], "rev": ["m1"]}
    assert result.reasons[0] == "Lesion: 1 of 1 lesions do not match at IoU 0.5 between ann and rev"

    # A matched region whose attribute one reader left out is a disagreement on that attribute.
    rev = reading("rev", [box("m1", 5, 5, 6, 6)])
    result, labels = run(("lesion", "lesion_type"), ann, rev)
    assert result.agreed is False
    assert labels["lesion_type"]["reasons"] == ["Lesion type of Lesion 1: answered by ann only, not by rev"]


def test_points_match_within_the_distance_and_polygons_by_their_bounding_box():
    def point(region_id: str, x: float, y: float) -> dict[str, Any]:
        return {"label": "spot", "id": region_id, "sop_instance_uid": SOPS[3], "frame": 1, "geometry": {"x": x, "y": y}}

    near, labels = run(("spot",), reading("ann", [point("p", 10, 10)]), reading("rev", [point("q", 13, 14)]))
    assert near.agreed is True
    assert labels["spot"]["metrics"]["ann~rev"]["scores"] == [pytest.approx(5.0)]
    far, _ = run(
        ("spot",), reading("ann", [point("p", 10, 10)]), reading("rev", [point("q", 13, 14)]), point_distance=4.0
    )
    assert far.agreed is False
    assert far.reasons == ["Spot: 1 of 1 lesions do not match at 4 px between ann and rev"]

    def polygon(region_id: str, points: list[list[float]]) -> dict[str, Any]:
        return {
            "label": "outline",
            "id": region_id,
            "sop_instance_uid": SOPS[3],
            "frame": 1,
            "geometry": {"points": points},
        }

    # Different shapes with the same bounding box (10..20 x 10..20) match with IoU 1.
    square = polygon("s", [[10, 10], [20, 10], [20, 20], [10, 20]])
    diamond = polygon("d", [[15, 10], [20, 15], [15, 20], [10, 15]])
    result, labels = run(("outline",), reading("ann", [square]), reading("rev", [diamond]))
    assert result.agreed is True
    assert labels["outline"]["metrics"]["ann~rev"]["scores"] == [1.0]
    shifted = polygon("d", [[30, 30], [40, 30], [40, 40]])
    result, _ = run(("outline",), reading("ann", [square]), reading("rev", [shifted]))
    assert result.agreed is False


# --- Masks ------------------------------------------------------------------------------------------------------


def test_mask_dice_is_computed_per_segment_with_a_readable_reason():
    left_a = blob(slice(0, 2), slice(2, 8), slice(2, 8), 1)  # 72 voxels of segment 1
    left_b = blob(slice(0, 2), slice(2, 8), slice(2, 7), 1)  # 60 of them, all inside left_a
    a = blob(slice(0, 2), slice(8, 12), slice(8, 12), 2, base=left_a)  # segment 2: 32 voxels
    b = blob(slice(1, 3), slice(8, 12), slice(8, 12), 2, base=left_b)  # segment 2 shifted one slice: half overlap
    expected_1 = dice_of(a == 1, b == 1)
    expected_2 = dice_of(a == 2, b == 2)
    assert expected_1 == pytest.approx(120 / 132)  # above 0.8
    assert expected_2 == pytest.approx(0.5)

    result, labels = run(("organ",), reading("annotator", [], a), reading("reviewer", [], b))
    metrics = labels["organ"]["metrics"][SERIES]
    assert metrics["segment 1: annotator~reviewer"]["dice"] == pytest.approx(expected_1, abs=1e-6)
    assert metrics["segment 2: annotator~reviewer"]["dice"] == pytest.approx(expected_2, abs=1e-6)
    # surface distances in mm with the series spacing (2 mm between slices): segment 2 is one slice off
    assert metrics["segment 2: annotator~reviewer"]["hd95_mm"] == pytest.approx(2.0)
    assert result.agreed is False
    assert result.reasons == ["Organ, segment Right: Dice 0.50 < 0.80 (annotator and reviewer)"]

    # With a lower threshold both segments agree, and the consensus holds both segment values.
    result, _ = run(("organ",), reading("annotator", [], a), reading("reviewer", [], b), mask_dice=0.5)
    assert result.agreed is True
    [(index, combined)] = result.consensus_masks.items()
    assert result.consensus_items[index]["label"] == "organ"
    assert np.array_equal(combined == 1, (a == 1) | (b == 1))
    assert np.array_equal(combined == 2, (a == 2) | (b == 2))


def test_a_mask_from_one_reader_only_is_a_disagreement():
    a = blob(slice(0, 2), slice(2, 8), slice(2, 8))
    result, _ = run(("organ",), reading("annotator", [], a), reading("reviewer", []))
    assert result.agreed is False
    assert result.reasons == [f"Organ on series {SERIES}: no mask from reviewer"]


def test_segment_painted_by_one_reader_only_has_dice_zero_and_no_surface_distance():
    a = blob(slice(0, 2), slice(2, 8), slice(2, 8), 1)
    b = blob(slice(0, 2), slice(10, 12), slice(10, 12), 2, base=a)
    result, labels = run(("organ",), reading("ann", [], a), reading("rev", [], b))
    entry = labels["organ"]["metrics"][SERIES]["segment 2: ann~rev"]
    assert entry == {"dice": 0.0, "hd95_mm": None, "assd_mm": None}
    assert result.reasons == ["Organ, segment Right: Dice 0.00 < 0.80 (ann and rev)"]
    # a segment neither reader painted agrees (Dice of two empty masks is 1)
    result, labels = run(("organ",), reading("ann", [], a), reading("rev", [], a.copy()))
    assert result.agreed is True
    assert labels["organ"]["metrics"][SERIES]["segment 2: ann~rev"]["dice"] == 1.0


@pytest.mark.parametrize("rule", ["union", "intersection", "majority"])
def test_two_readers_masks_are_combined_by_the_policy_rule(rule: str):
    a = blob(slice(0, 2), slice(2, 10), slice(2, 10))
    b = blob(slice(0, 2), slice(3, 11), slice(2, 10))
    assert dice_of(a, b) >= 0.8
    result, _ = run(("organ",), reading("ann", [], a), reading("rev", [], b), mask_rule=rule)
    assert result.agreed is True
    [combined] = result.consensus_masks.values()
    expected = np.logical_and(a, b) if rule == "intersection" else np.logical_or(a, b)  # majority of two = union
    assert combined.dtype == a.dtype
    assert np.array_equal(combined, expected.astype(np.uint8))
    assert not np.array_equal(np.logical_or(a, b), np.logical_and(a, b))  # the rules really differ here


def test_two_readers_masks_by_shape_average_meet_halfway():
    a = blob(slice(0, 2), slice(2, 10), slice(2, 10))
    b = blob(slice(0, 2), slice(2, 12), slice(2, 10))  # two rows (1 mm at 0.5 mm) taller
    assert dice_of(a, b) >= 0.8
    result, _ = run(("organ",), reading("ann", [], a), reading("rev", [], b), mask_rule="shape_average")
    [combined] = result.consensus_masks.values()
    assert np.array_equal(combined, blob(slice(0, 2), slice(2, 11), slice(2, 10)))  # one row: halfway
    assert np.array_equal(combined != 0, shape_average([a != 0, b != 0], (2.0, 0.5, 0.5)))


def test_three_readers_masks_are_combined_by_staple():
    base = blob(slice(0, 3), slice(2, 12), slice(2, 12))
    r1 = base.copy()
    r2 = base.copy()
    r2[0:3, 12, 2:12] = 1  # one row wider
    r3 = base.copy()
    r3[0:3, 2, 2:12] = 0  # one row narrower
    r3[3, 5:8, 5:8] = 1  # and a small extra blob on the last slice
    masks = [r1, r2, r3]
    readers = [reading(name, [], m) for name, m in zip(("r1", "r2", "r3"), masks, strict=True)]
    for rule in ("union", "intersection"):  # the two-reader rule does not apply to three readers
        result, labels = run(("organ",), *readers, mask_rule=rule)
        assert result.agreed is True, result.reasons
        assert len(labels["organ"]["metrics"][SERIES]) == 6  # 3 pairs x 2 segments
        [combined] = result.consensus_masks.values()
        expected = staple(np.stack([m == 1 for m in masks])).consensus
        assert np.array_equal(combined == 1, expected)
        assert not np.array_equal(combined == 1, np.logical_or.reduce(masks))
        assert not np.array_equal(combined == 1, np.logical_and.reduce(masks))
        assert (combined == 2).sum() == 0


# --- Everything at once -----------------------------------------------------------------------------------------


def test_a_full_reading_agrees_label_by_label_and_the_consensus_is_complete():
    a = blob(slice(0, 2), slice(2, 8), slice(2, 8))
    b = blob(slice(0, 2), slice(2, 8), slice(2, 9))
    ann = reading(
        "ann",
        [
            value("present", "yes"),
            value("grade", 3),
            value("findings", ["c"]),
            box("n1", 10, 10, 8, 8),
            attribute("lesion_type", "n1", "solid"),
        ],
        a,
    )
    rev = reading(
        "rev",
        [
            value("present", "yes"),
            value("grade", 3),
            value("findings", ["c"]),
            box("k", 10, 10, 8, 9),
            attribute("lesion_type", "k", "solid"),
        ],
        b,
    )
    result = evaluate(SCHEMA, [ann, rev], Thresholds(), INDEX)
    assert result.agreed is True, result.reasons
    assert {label.key for label in result.labels} == {label["key"] for label in SCHEMA["labels"]}
    # Free text, a volume nobody gave and the grade of scars nobody painted are not compared; no scar, spot
    # or outline from either reader is agreement on their absence.
    statuses = {label.key: label.status for label in result.labels}
    assert {key for key, status in statuses.items() if status != "agreed"} == {"note", "volume", "scar_grade"}
    assert statuses["note"] == statuses["volume"] == statuses["scar_grade"] == "not_compared"
    by_label = {item["label"]: item for item in result.consensus_items}
    assert set(by_label) == {"present", "grade", "findings", "lesion", "lesion_type", "organ"}
    assert by_label["lesion_type"] == attribute("lesion_type", "lesion-1", "solid")
    assert by_label["lesion"]["geometry"] == {"x": 10.0, "y": 10.0, "width": 8.0, "height": 8.5}
    [(index, combined)] = result.consensus_masks.items()
    assert result.consensus_items[index]["label"] == "organ"
    assert np.array_equal(combined, np.logical_or(a, b).astype(np.uint8))


# --- Region masks: several per series, matched by overlap, with attributes ---------------------------------------


def scar(region_id: str, array: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    item = {"label": "scar", "id": region_id, "series_instance_uid": SERIES, "mask": {"shape": list(SHAPE)}}
    return item, array


def scar_reading(name: str, scars: list[tuple[dict[str, Any], np.ndarray]], grades: dict[str, int]) -> Reading:
    items = [item for item, _ in scars] + [attribute("scar_grade", rid, grade) for rid, grade in grades.items()]
    return Reading(name=name, items=items, masks={i: array for i, (_, array) in enumerate(scars)})


UPPER = blob(slice(0, 2), slice(1, 6), slice(1, 6))
UPPER_B = blob(slice(0, 2), slice(1, 6), slice(1, 7))  # Dice 100 / 110 with UPPER
LOWER = blob(slice(1, 3), slice(9, 14), slice(9, 14), 2)
LOWER_B = blob(slice(1, 3), slice(9, 14), slice(9, 15), 2)


def test_region_masks_are_matched_by_overlap_and_combined_region_by_region():
    ann = scar_reading("ann", [scar("s1", UPPER), scar("s2", LOWER)], {"s1": 2, "s2": 4})
    rev = scar_reading("rev", [scar("a", LOWER_B), scar("b", UPPER_B)], {"a": 4, "b": 2})  # other order and ids
    result, labels = run(("scar", "scar_grade"), ann, rev)
    assert result.agreed is True, result.reasons
    metrics = labels["scar"]["metrics"]
    assert metrics["regions_per_reader"] == {"ann": 2, "rev": 2}
    assert metrics["ann~rev"]["matched"] == 2
    assert metrics["region 1"]["segment 1: ann~rev"]["dice"] == pytest.approx(dice_of(UPPER, UPPER_B), abs=1e-6)
    lower_dice = dice_of(LOWER == 2, LOWER_B == 2)
    assert metrics["region 2"]["segment 2: ann~rev"]["dice"] == pytest.approx(lower_dice, abs=1e-6)
    scars = {
        item["id"]: result.consensus_masks[i]
        for i, item in enumerate(result.consensus_items)
        if item["label"] == "scar"
    }
    assert set(scars) == {"scar-1", "scar-2"}
    assert np.array_equal(scars["scar-1"], np.logical_or(UPPER, UPPER_B).astype(np.uint8))
    assert np.array_equal(scars["scar-2"], 2 * np.logical_or(LOWER, LOWER_B).astype(np.uint8))
    assert sorted((i["region"], i["value"]) for i in consensus_of(result, "scar_grade")) == [
        ("scar-1", 2),
        ("scar-2", 4),
    ]


def test_region_mask_attributes_disagree_on_the_matched_region():
    ann = scar_reading("ann", [scar("s1", UPPER), scar("s2", LOWER)], {"s1": 2, "s2": 4})
    rev = scar_reading("rev", [scar("a", LOWER_B), scar("b", UPPER_B)], {"a": 1, "b": 2})
    result, labels = run(("scar", "scar_grade"), ann, rev)
    assert result.agreed is False
    assert labels["scar"]["agreed"] is True
    assert result.reasons == ["Scar grade of Scar 2: ann gave grade 4, rev grade 1 (distance 3 > 0)"]


def test_region_masks_count_overlap_and_dice_disagreements_are_explained():
    two = scar_reading("ann", [scar("s1", UPPER), scar("s2", LOWER)], {})
    one = scar_reading("rev", [scar("b", UPPER_B)], {})
    result, _ = run(("scar",), two, one)
    assert result.agreed is False
    assert result.reasons == ["Scar: different numbers of regions (ann painted 2, rev painted 1)"]

    elsewhere = scar_reading("rev", [scar("b", blob(slice(3, 4), slice(12, 16), slice(0, 4)))], {})
    result, _ = run(("scar",), scar_reading("ann", [scar("s1", UPPER)], {}), elsewhere)
    assert result.reasons == ["Scar: 1 of 1 regions do not overlap between ann and rev"]

    half = blob(slice(1, 2), slice(1, 6), slice(1, 6))  # one of UPPER's two slices: Dice 50 / 75
    result, _ = run(("scar",), scar_reading("ann", [scar("s1", UPPER)], {}), scar_reading("rev", [scar("b", half)], {}))
    assert result.reasons == ["Scar 1, segment Core: Dice 0.67 < 0.80 (ann and rev)"]
