"""Comparing the readings of one case label by label, deciding agreed or disputed, and building the
consensus label. Pure functions over validated items (annotation/labels.py) and decoded masks: the
services feed them from the database.

Readers are compared pairwise; a label agrees only when every pair agrees. Reasons are written for
people ("nodule_mask: Dice 0.62 < 0.80"; "nodule_box: annotator found 3 lesions, reviewer 2").

Agreement is never claimed where nothing was measured. Each label ends in one of three statuses:
"agreed", "disagreed", or "not_compared" (free text; a label no reader answered; a region attribute with
no lesion to compare it on). The attributes of a lesion found by one reader only are disagreed ("lesion
found by one reader only"): the other reader never described that lesion. Two readers who both found no
lesion agree on the absence (the lesion label agrees; its attributes are not compared). A case agrees
only when no label disagrees and at least one label agreed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from review.agreement import (
    UndefinedMetricError,
    assd,
    consensus_mean,
    dice,
    hausdorff95,
    match_lesions,
    match_points,
    mean_box,
    shape_average,
    staple,
)

VALUE_KINDS = ("single_choice", "multiple_choice", "ordinal", "number", "text")

AGREED = "agreed"
DISAGREED = "disagreed"
NOT_COMPARED = "not_compared"
FOUND_BY_ONE_READER = "lesion found by one reader only"


@dataclass
class Reading:
    """One reader's submitted revision: its validated items and the decoded mask of each mask item."""

    name: str
    items: list[dict[str, Any]]
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # index in items -> array


@dataclass(frozen=True)
class Thresholds:
    mask_dice: float = 0.8
    box_iou: float = 0.5
    ordinal_distance: int = 0
    number_tolerance: float = 0.0
    point_distance: float = 10.0
    mask_rule: str = "union"


@dataclass
class LabelResult:
    key: str
    kind: str
    agreed: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    compared: bool = True
    # Lesion labels: the matched pairs and the unmatched region ids per reader (see _matching).
    matching: dict[str, Any] | None = None

    def not_compared(self) -> LabelResult:
        """Nothing to compare: neither agreed nor disagreed (the dashboards and the browser read
        metrics["compared"] as well as the status)."""
        self.compared = False
        self.agreed = False
        self.metrics["compared"] = False
        return self

    @property
    def status(self) -> str:
        if not self.compared:
            return NOT_COMPARED
        return AGREED if self.agreed else DISAGREED

    def as_dict(self) -> dict[str, Any]:
        entry = {
            "key": self.key,
            "kind": self.kind,
            "status": self.status,
            "agreed": self.status == AGREED,
            "metrics": self.metrics,
            "reasons": self.reasons,
        }
        if self.matching is not None:
            entry["matching"] = self.matching
        return entry


NOTHING_COMPARED = "no label could be compared (nothing answered or found by both readers): agreement was not shown"


@dataclass
class Evaluation:
    agreed: bool
    labels: list[LabelResult]
    consensus_items: list[dict[str, Any]]
    consensus_masks: dict[int, np.ndarray]
    status: str = AGREED

    @property
    def reasons(self) -> list[str]:
        reasons = [reason for label in self.labels for reason in label.reasons]
        if self.status == NOT_COMPARED:
            reasons.append(NOTHING_COMPARED)
        return reasons


def evaluation_status(statuses: list[str]) -> str:
    """A case's status from its labels': disagreed when any label disagrees; agreed when none does and at
    least one agreed; not compared when no label could be compared (agreement was not shown)."""
    if DISAGREED in statuses:
        return DISAGREED
    return AGREED if AGREED in statuses else NOT_COMPARED


def entry_status(entry: dict[str, Any]) -> str:
    """The status of a stored label entry, also of results stored before statuses existed (their free text
    and unanswered labels said "agreed" with metrics {"compared": false})."""
    status = entry.get("status")
    if status in (AGREED, DISAGREED, NOT_COMPARED):
        return str(status)
    metrics = entry.get("metrics")
    if isinstance(metrics, dict) and metrics.get("compared") is False:
        return NOT_COMPARED
    return AGREED if entry.get("agreed") else DISAGREED


def result_status(agreed: bool, entries: list[Any]) -> str:
    """The status of a stored agreement result: agreed, disagreed (some label disagreed) or not compared."""
    if agreed:
        return AGREED
    return evaluation_status([entry_status(e) for e in entries if isinstance(e, dict)]) if entries else NOT_COMPARED


def display_name(label: dict[str, Any]) -> str:
    """The schema's display name of a label (English; the reasons are English until they are translated)."""
    name = label.get("name")
    if isinstance(name, dict) and name:
        return str(name.get("en") or next(iter(name.values())))
    if isinstance(name, str) and name:
        return name
    return str(label["key"])


@dataclass(frozen=True)
class SliceIndex:
    """Where each image sits in its series, to place 2D boxes in the volume."""

    z_of_sop: dict[str, int]
    spacing_of_series: dict[str, tuple[float, float, float]]  # (slice, row, column) mm


def _target(item: dict[str, Any]) -> tuple[Any, ...]:
    return (item.get("series_instance_uid"), item.get("sop_instance_uid"), item.get("frame"))


def _target_text(target: tuple[Any, ...]) -> str:
    series, sop, frame = target
    if sop:
        return f" on image {sop}" + (f" frame {frame}" if frame and frame != 1 else "")
    if series:
        return f" on series {series}"
    return ""


def _values_agree(kind: str, a: Any, b: Any, thresholds: Thresholds) -> tuple[bool, str]:
    if a is None or b is None:
        return False, "answered by one reader only"
    if kind == "ordinal":
        distance = abs(int(a) - int(b))
        return (
            distance <= thresholds.ordinal_distance,
            f"grades {a} and {b} (distance {distance} > {thresholds.ordinal_distance})",
        )
    if kind == "number":
        difference = abs(float(a) - float(b))
        return (
            difference <= thresholds.number_tolerance,
            f"values {a} and {b} differ by {difference:g} > {thresholds.number_tolerance:g}",
        )
    if kind == "multiple_choice":
        return set(a) == set(b), f"selections {sorted(a)} and {sorted(b)}"
    return a == b, f"answers {a!r} and {b!r}"


def _majority(values: list[Any]) -> Any:
    counts = Counter(repr(v) for v in values if v is not None)
    if not counts:
        return None
    best = counts.most_common(1)[0][0]
    return next(v for v in values if repr(v) == best)


def _compare_values(
    label: dict[str, Any], readings: list[Reading], thresholds: Thresholds, consensus: list[dict[str, Any]]
) -> LabelResult:
    key, kind = label["key"], label["kind"]
    by_target: dict[tuple[Any, ...], dict[int, Any]] = defaultdict(dict)
    for index, reading in enumerate(readings):
        for item in reading.items:
            if item["label"] == key and "region" not in item:
                by_target[_target(item)][index] = item["value"]
    result = LabelResult(key=key, kind=kind, agreed=True)
    if kind == "text":
        return result.not_compared()  # free text is kept, not compared
    pairs = agreeing = 0
    for target, values in sorted(by_target.items(), key=lambda kv: repr(kv[0])):
        answers = [values.get(i) for i in range(len(readings))]
        target_agreed = True
        for i, j in combinations(range(len(readings)), 2):
            pairs += 1
            ok, why = _values_agree(kind, answers[i], answers[j], thresholds)
            agreeing += ok
            if not ok:
                target_agreed = False
                result.reasons.append(f"{key}{_target_text(target)}: {readings[i].name} and {readings[j].name} {why}")
        if target_agreed:
            template = next(item for item in readings[0].items if item["label"] == key and _target(item) == target)
            consensus.append({**template, "value": _majority(answers)})
        result.agreed &= target_agreed
    result.metrics["pairs"] = pairs
    if not pairs:
        return result.not_compared()  # no reader answered: nothing was measured
    result.metrics["percent_agreement"] = agreeing / pairs
    return result


def _box_of(item: dict[str, Any], index: SliceIndex) -> list[float]:
    geometry = item["geometry"]
    if "points" in geometry:  # a polygon is compared by its bounding box
        xs = [p[0] for p in geometry["points"]]
        ys = [p[1] for p in geometry["points"]]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    else:
        x0, y0 = geometry["x"], geometry["y"]
        x1, y1 = x0 + geometry["width"], y0 + geometry["height"]
    if "z" in geometry:
        return [x0, y0, geometry["z"], x1, y1, geometry["z"] + geometry["depth"]]
    # A 2D box occupies its image's slice: boxes on different slices do not overlap.
    z = index.z_of_sop.get(item["sop_instance_uid"], 0)
    return [x0, y0, z, x1, y1, z + 1]


def _compare_regions(
    label: dict[str, Any],
    readings: list[Reading],
    thresholds: Thresholds,
    index: SliceIndex,
    consensus: list[dict[str, Any]],
) -> tuple[LabelResult, list[list[str | None]]]:
    """Match the regions of every reader with reader 0's; returns the groups of matched region ids."""
    key, kind = label["key"], label["kind"]
    regions = [[item for item in r.items if item["label"] == key] for r in readings]
    result = LabelResult(key=key, kind=kind, agreed=True)
    counts = [len(r) for r in regions]
    result.metrics["lesions_per_reader"] = dict(zip((r.name for r in readings), counts, strict=True))
    groups: list[list[str | None]] = [[item["id"]] + [None] * (len(readings) - 1) for item in regions[0]]
    pairs: list[dict[str, Any]] = []
    unmatched: dict[int, list[str]] = {}
    for other in range(1, len(readings)):
        if kind == "point":
            points_a = np.array(
                [
                    [g["geometry"]["x"], g["geometry"]["y"], index.z_of_sop.get(g["sop_instance_uid"], 0)]
                    for g in regions[0]
                ],
                dtype=float,
            ).reshape(-1, 3)
            points_b = np.array(
                [
                    [g["geometry"]["x"], g["geometry"]["y"], index.z_of_sop.get(g["sop_instance_uid"], 0)]
                    for g in regions[other]
                ],
                dtype=float,
            ).reshape(-1, 3)
            match = match_points(points_a, points_b, thresholds.point_distance)
        else:
            boxes_a = np.array([_box_of(g, index) for g in regions[0]], dtype=float).reshape(-1, 6)
            boxes_b = np.array([_box_of(g, index) for g in regions[other]], dtype=float).reshape(-1, 6)
            match = match_lesions(boxes_a, boxes_b, thresholds.box_iou)
        result.metrics[f"{readings[0].name}~{readings[other].name}"] = {
            "matched": match.n_matched,
            "precision": round(match.precision, 6),
            "recall": round(match.recall, 6),
            "f1": round(match.f1, 6),
            "scores": [round(p[2], 6) for p in match.pairs],
        }
        for a, b, score in match.pairs:
            groups[a][other] = regions[other][b]["id"]
            pairs.append(_pair(readings, other, regions[0][a]["id"], regions[other][b]["id"], score))
        unmatched[other] = [regions[other][b]["id"] for b in match.unmatched_b]
        if counts[0] != counts[other]:
            result.agreed = False
            result.reasons.append(
                f"{key}: {readings[0].name} found {counts[0]} lesion{'s' * (counts[0] != 1)}, "
                f"{readings[other].name} {counts[other]}"
            )
        elif match.n_matched < counts[0]:
            result.agreed = False
            what = f"IoU {thresholds.box_iou:g}" if kind != "point" else f"{thresholds.point_distance:g} px"
            result.reasons.append(
                f"{key}: {counts[0] - match.n_matched} of {counts[0]} lesions do not match at {what} "
                f"between {readings[0].name} and {readings[other].name}"
            )
    if result.agreed:
        for number, group in enumerate(groups, start=1):
            members = [next(i for i in regions[r] if i["id"] == rid) for r, rid in enumerate(group) if rid is not None]
            item = dict(members[0])
            item["id"] = f"{key}-{number}"
            if kind == "box" and "x" in item["geometry"]:
                item["geometry"] = _mean_geometry([m["geometry"] for m in members])
            consensus.append(item)
    result.matching = _matching(readings, groups, pairs, unmatched, "distance_px" if kind == "point" else "iou")
    return result, _with_unmatched(groups, unmatched, len(readings))


def _pair(readings: list[Reading], other: int, id_a: str, id_b: str, score: float) -> dict[str, Any]:
    return {"readers": [readings[0].name, readings[other].name], "ids": [id_a, id_b], "score": round(score, 6)}


def _matching(
    readings: list[Reading],
    groups: list[list[str | None]],
    pairs: list[dict[str, Any]],
    unmatched: dict[int, list[str]],
    score: str,
) -> dict[str, Any]:
    """What the browser draws: the pairs matched (Hungarian, each reader against the first reader) and, per
    reader, the ids of the regions matched with no other reader's."""
    alone = [group[0] for group in groups if group[0] is not None and all(rid is None for rid in group[1:])]
    return {
        "method": "hungarian",
        "reference": readings[0].name,
        "score": score,
        "pairs": pairs,
        "unmatched": {
            reading.name: [rid for rid in alone if rid is not None] if r == 0 else unmatched.get(r, [])
            for r, reading in enumerate(readings)
        },
    }


def _with_unmatched(
    groups: list[list[str | None]], unmatched: dict[int, list[str]], n_readers: int
) -> list[list[str | None]]:
    """The groups of the first reader's regions, then one group for each region of another reader that
    matched none of the first reader's: every lesion found, so that its attributes are accounted for."""
    extra: list[list[str | None]] = []
    for other, ids in sorted(unmatched.items()):
        for rid in ids:
            group: list[str | None] = [None] * n_readers
            group[other] = rid
            extra.append(group)
    return groups + extra


def _mean_geometry(geometries: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of matched boxes, corner by corner (mean_box takes corners, not x/y/width/height).

    2D: x, y, width, height as floats. 3D: the slice range stays whole slices (z and depth integers)."""
    three_d = "z" in geometries[0]
    axes = (("x", "width"), ("y", "height"), ("z", "depth")) if three_d else (("x", "width"), ("y", "height"))
    corners = np.array(
        [[g[start] for start, _ in axes] + [g[start] + g[size] for start, size in axes] for g in geometries], float
    )
    mean = mean_box(corners)
    d = len(axes)
    result = dict(geometries[0])
    for position, (start, size) in enumerate(axes):
        low, high = float(mean[position]), float(mean[position + d])
        if start == "z":
            z0 = round(low)
            result[start], result[size] = z0, max(round(high) - z0, 1)
        else:
            result[start], result[size] = low, high - low
    return result


def _compare_segments(
    key: str,
    where: str,
    arrays: list[np.ndarray],
    readings: list[Reading],
    segments: list[int],
    thresholds: Thresholds,
    spacing: tuple[float, float, float],
    result: LabelResult,
) -> tuple[bool, dict[str, Any]]:
    """Dice (and surface distances) of every pair of readers' masks, segment by segment."""
    metrics: dict[str, Any] = {}
    agreed = True
    for value in segments:
        masks = [a == value for a in arrays]
        for i, j in combinations(range(len(readings)), 2):
            score = dice(masks[i], masks[j])
            entry: dict[str, Any] = {"dice": round(score, 6)}
            try:
                entry["hd95_mm"] = round(hausdorff95(masks[i], masks[j], spacing), 4)
                entry["assd_mm"] = round(assd(masks[i], masks[j], spacing), 4)
            except UndefinedMetricError:
                entry["hd95_mm"] = entry["assd_mm"] = None  # one reader painted nothing of this segment
            metrics[f"segment {value}: {readings[i].name}~{readings[j].name}"] = entry
            if score < thresholds.mask_dice:
                agreed = False
                result.reasons.append(
                    f"{key}{where} segment {value}: Dice {score:.2f} < {thresholds.mask_dice:.2f} "
                    f"({readings[i].name} vs {readings[j].name})"
                )
    return agreed, metrics


def _combine_masks(
    arrays: list[np.ndarray], segments: list[int], thresholds: Thresholds, spacing: tuple[float, float, float]
) -> np.ndarray:
    """Two readers' masks by the policy's rule, three or more by STAPLE; segment by segment."""
    combined = np.zeros_like(arrays[0])
    for value in segments:
        masks = [a == value for a in arrays]
        if len(masks) >= 3:
            merged = staple(np.stack(masks)).consensus
        elif thresholds.mask_rule == "shape_average":
            merged = shape_average(np.stack(masks), spacing)
        else:
            merged = consensus_mean(np.stack(masks), rule=thresholds.mask_rule)  # type: ignore[arg-type]
        combined[merged & (combined == 0)] = value
    return combined


def _compare_masks(
    label: dict[str, Any],
    readings: list[Reading],
    thresholds: Thresholds,
    index: SliceIndex,
    consensus: list[dict[str, Any]],
    consensus_masks: dict[int, np.ndarray],
) -> LabelResult:
    key = label["key"]
    segments = [segment["value"] for segment in label["segments"]]
    result = LabelResult(key=key, kind="mask", agreed=True)
    by_series: dict[str, dict[int, tuple[dict[str, Any], np.ndarray]]] = defaultdict(dict)
    for r, reading in enumerate(readings):
        for i, item in enumerate(reading.items):
            if item["label"] == key and i in reading.masks:
                by_series[item["series_instance_uid"]][r] = (item, reading.masks[i])
    for series_uid, per_reader in sorted(by_series.items()):
        if len(per_reader) < len(readings):
            missing = [readings[r].name for r in range(len(readings)) if r not in per_reader]
            result.agreed = False
            result.reasons.append(f"{key} on series {series_uid}: no mask from {', '.join(missing)}")
            continue
        spacing = index.spacing_of_series.get(series_uid, (1.0, 1.0, 1.0))
        arrays = [per_reader[r][1] for r in range(len(readings))]
        series_agreed, metrics = _compare_segments(key, "", arrays, readings, segments, thresholds, spacing, result)
        result.metrics[series_uid] = metrics
        if not series_agreed:
            result.agreed = False
            continue
        item = dict(per_reader[0][0])
        consensus_masks[len(consensus)] = _combine_masks(arrays, segments, thresholds, spacing)
        consensus.append(item)
    if not by_series:
        return result.not_compared()  # no reader painted this label
    return result


def _compare_region_masks(
    label: dict[str, Any],
    readings: list[Reading],
    thresholds: Thresholds,
    index: SliceIndex,
    consensus: list[dict[str, Any]],
    consensus_masks: dict[int, np.ndarray],
) -> tuple[LabelResult, list[list[str | None]]]:
    """Region masks (one mask per lesion, with an id): a reader may paint several per series. The regions
    of every reader are matched with reader 0's by overlap (Dice of the painted voxels, one to one), the
    counts must be equal, and matched regions are compared segment by segment like series masks. Returns
    the groups of matched region ids, for the region attributes."""
    key = label["key"]
    segments = [segment["value"] for segment in label["segments"]]
    result = LabelResult(key=key, kind="mask", agreed=True)
    regions = [
        [
            (item, reading.masks[i])
            for i, item in enumerate(reading.items)
            if item["label"] == key and i in reading.masks
        ]
        for reading in readings
    ]
    counts = [len(r) for r in regions]
    result.metrics["regions_per_reader"] = dict(zip((r.name for r in readings), counts, strict=True))
    groups: list[list[str | None]] = [[item["id"]] + [None] * (len(readings) - 1) for item, _ in regions[0]]
    matched_pairs: list[dict[str, Any]] = []
    unmatched: dict[int, list[str]] = {}
    for other in range(1, len(readings)):
        overlap = np.zeros((counts[0], counts[other]))
        for a, (item_a, mask_a) in enumerate(regions[0]):
            for b, (item_b, mask_b) in enumerate(regions[other]):
                if item_a["series_instance_uid"] == item_b["series_instance_uid"] and mask_a.shape == mask_b.shape:
                    overlap[a, b] = dice(mask_a != 0, mask_b != 0)
        rows, columns = linear_sum_assignment(overlap, maximize=True) if overlap.size else ([], [])
        pairs = [(int(a), int(b)) for a, b in zip(rows, columns, strict=True) if overlap[a, b] > 0]
        for a, b in pairs:
            groups[a][other] = regions[other][b][0]["id"]
            matched_pairs.append(
                _pair(readings, other, regions[0][a][0]["id"], regions[other][b][0]["id"], float(overlap[a, b]))
            )
        paired = {b for _, b in pairs}
        unmatched[other] = [item["id"] for b, (item, _) in enumerate(regions[other]) if b not in paired]
        result.metrics[f"{readings[0].name}~{readings[other].name}"] = {
            "matched": len(pairs),
            "dice": [round(float(overlap[a, b]), 6) for a, b in sorted(pairs)],
        }
        if counts[0] != counts[other]:
            result.agreed = False
            result.reasons.append(
                f"{key}: {readings[0].name} found {counts[0]} region{'s' * (counts[0] != 1)}, "
                f"{readings[other].name} {counts[other]}"
            )
        elif len(pairs) < counts[0]:
            result.agreed = False
            result.reasons.append(
                f"{key}: {counts[0] - len(pairs)} of {counts[0]} regions do not overlap "
                f"between {readings[0].name} and {readings[other].name}"
            )
    matched_groups: list[tuple[int, list[tuple[dict[str, Any], np.ndarray]]]] = []
    for number, group in enumerate(groups, start=1):
        if any(rid is None for rid in group):
            continue  # unmatched: already a disagreement above
        members = [next(m for m in regions[r] if m[0]["id"] == rid) for r, rid in enumerate(group)]
        series_uid = members[0][0]["series_instance_uid"]
        spacing = index.spacing_of_series.get(series_uid, (1.0, 1.0, 1.0))
        arrays = [array for _, array in members]
        where = f" region {number}"
        group_agreed, metrics = _compare_segments(key, where, arrays, readings, segments, thresholds, spacing, result)
        result.metrics[f"region {number}"] = metrics
        result.agreed &= group_agreed
        matched_groups.append((number, members))
    if result.agreed:
        for number, members in matched_groups:
            item = dict(members[0][0])
            item["id"] = f"{key}-{number}"
            spacing = index.spacing_of_series.get(members[0][0]["series_instance_uid"], (1.0, 1.0, 1.0))
            arrays = [array for _, array in members]
            consensus_masks[len(consensus)] = _combine_masks(arrays, segments, thresholds, spacing)
            consensus.append(item)
    result.matching = _matching(readings, groups, matched_pairs, unmatched, "dice")
    return result, _with_unmatched(groups, unmatched, len(readings))


def evaluate(schema: dict[str, Any], readings: list[Reading], thresholds: Thresholds, index: SliceIndex) -> Evaluation:
    """Compare every label of the schema across the readings; build the consensus items if all agree."""
    if len(readings) < 2:
        raise ValueError("Agreement needs at least two readings")
    labels: list[LabelResult] = []
    consensus: list[dict[str, Any]] = []
    consensus_masks: dict[int, np.ndarray] = {}
    region_groups: dict[str, list[list[str | None]]] = {}
    names_of_labels = {label["key"]: display_name(label) for label in schema["labels"]}
    # Geometry first: region attributes are compared between the regions matched here.
    ordered = sorted(schema["labels"], key=lambda label: label["kind"] not in ("box", "polygon", "point", "mask"))
    for label in ordered:
        kind, level = label["kind"], label["level"]
        if kind == "mask" and level == "region":
            result, groups = _compare_region_masks(label, readings, thresholds, index, consensus, consensus_masks)
            region_groups[label["key"]] = groups
            labels.append(result)
        elif kind == "mask":
            labels.append(_compare_masks(label, readings, thresholds, index, consensus, consensus_masks))
        elif kind in ("box", "polygon", "point"):
            result, groups = _compare_regions(label, readings, thresholds, index, consensus)
            region_groups[label["key"]] = groups
            labels.append(result)
        elif level == "region":
            labels.append(
                _compare_region_attributes(label, readings, thresholds, region_groups, consensus, names_of_labels)
            )
        else:
            labels.append(_compare_values(label, readings, thresholds, consensus))
    status = evaluation_status([label.status for label in labels])
    agreed = status == AGREED
    if not agreed:
        consensus, consensus_masks = [], {}
    return Evaluation(
        agreed=agreed, labels=labels, consensus_items=consensus, consensus_masks=consensus_masks, status=status
    )


def _compare_region_attributes(
    label: dict[str, Any],
    readings: list[Reading],
    thresholds: Thresholds,
    region_groups: dict[str, list[list[str | None]]],
    consensus: list[dict[str, Any]],
    names_of_labels: dict[str, str],
) -> LabelResult:
    """An attribute of a region (nodule type, diameter) is compared between matched regions.

    A region that not every reader found has its attribute disagreed, whatever its value: the readers who
    missed the lesion never described it. A matched region on which no reader answered the attribute adds
    nothing; when no region added anything, the attribute was not compared."""
    key, kind = label["key"], label["kind"]
    result = LabelResult(key=key, kind=kind, agreed=True)
    values = [{item["region"]: item["value"] for item in r.items if item["label"] == key} for r in readings]
    if kind == "text":
        return result.not_compared()
    name = names_of_labels.get(key, key)
    compared = found_by_some = 0
    for parent in label.get("applies_to", []):
        parent_name = names_of_labels.get(parent, parent)
        for number, group in enumerate(region_groups.get(parent, []), start=1):
            answers = [values[r].get(rid) if rid is not None else None for r, rid in enumerate(group)]
            finders = [readings[r].name for r, rid in enumerate(group) if rid is not None]
            if len(finders) < len(readings):
                found_by_some += 1
                result.agreed = False
                ids = ", ".join(f"{readings[r].name}'s {rid}" for r, rid in enumerate(group) if rid is not None)
                if len(finders) == 1:
                    why = FOUND_BY_ONE_READER
                else:
                    missed = [reading.name for reading in readings if reading.name not in finders]
                    why = f"lesion not found by {', '.join(missed)}"
                result.reasons.append(f"{name} of {parent_name} lesion {number} ({ids}): {why}")
                continue
            if all(answer is None for answer in answers):
                continue  # a matched lesion no reader described: nothing to compare
            compared += 1
            group_agreed = True
            for i, j in combinations(range(len(readings)), 2):
                ok, why = _values_agree(kind, answers[i], answers[j], thresholds)
                if not ok and not (answers[i] is None and answers[j] is None):
                    group_agreed = False
                    result.reasons.append(
                        f"{key} of {parent} lesion {number}: {readings[i].name} and {readings[j].name} {why}"
                    )
            result.agreed &= group_agreed
            if group_agreed:
                consensus.append({"label": key, "region": f"{parent}-{number}", "value": _majority(answers)})
    result.metrics["lesions_compared"] = compared
    result.metrics["lesions_found_by_some_readers"] = found_by_some
    if not compared and not found_by_some:
        return result.not_compared()  # no lesion, or none described: agreement on absence is the lesion label's
    return result
