"""Comparing the readings of one case label by label, deciding agreed or disputed, and building the
consensus label. Pure functions over validated items (annotation/labels.py) and decoded masks: the
services feed them from the database.

Readers are compared pairwise; a label agrees only when every pair agrees. Reasons are written for
people, naming labels, lesions and segments by the schema's display names ("Nodule segmentation, segment
Nodule: Dice 0.62 < 0.80 (annotator and reviewer)"), and stored as messages rendered in the viewer's language.

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
from django.utils.translation import gettext_noop as N_
from scipy.optimize import linear_sum_assignment

from config.messages import Message, english, message, names
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

# The reasons, for people: English templates (gettext msgids) stored with their parameters and rendered in the
# viewer's language when read (config.messages). Labels, lesions and segments are named by the schema's display
# names, lesions by an ordinal ("Nodule bounding box 2"); region ids and keys stay in the metrics.
R_ONE_ANSWER = N_("%(subject)s: answered by %(answered)s only, not by %(missing)s")
R_GRADES = N_("%(subject)s: %(a)s gave grade %(va)s, %(b)s grade %(vb)s (distance %(distance)s > %(limit)s)")
R_NUMBERS = N_("%(subject)s: %(a)s gave %(va)s, %(b)s %(vb)s (difference %(difference)s > %(limit)s)")
R_CHOICES = N_("%(subject)s: %(a)s chose %(va)s, %(b)s chose %(vb)s")
R_ON_IMAGE = N_("%(label)s on image %(sop)s")
R_ON_IMAGE_FRAME = N_("%(label)s on image %(sop)s, frame %(frame)s")
R_ON_SERIES = N_("%(label)s on series %(series)s")
R_LESION = N_("%(label)s %(number)s")
R_ATTRIBUTE_OF = N_("%(label)s of %(lesion)s")
R_LESION_COUNTS = N_("%(label)s: different numbers of lesions (%(a)s found %(na)s, %(b)s found %(nb)s)")
R_LESIONS_UNMATCHED = N_("%(label)s: %(n)s of %(total)s lesions do not match at %(threshold)s between %(a)s and %(b)s")
R_REGION_COUNTS = N_("%(label)s: different numbers of regions (%(a)s painted %(na)s, %(b)s painted %(nb)s)")
R_REGIONS_APART = N_("%(label)s: %(n)s of %(total)s regions do not overlap between %(a)s and %(b)s")
R_NO_MASK = N_("%(subject)s: no mask from %(missing)s")
R_DICE = N_("%(subject)s, segment %(segment)s: Dice %(dice)s < %(limit)s (%(a)s and %(b)s)")
R_FOUND_BY_ONE = N_("%(subject)s: lesion found by one reader only (%(finders)s)")
R_NOT_FOUND_BY = N_("%(subject)s: lesion not found by %(missed)s")
R_AI_THIRD_OPINION = N_("AI third opinion: %(reason)s")


@dataclass
class Reading:
    """One reader's submitted revision: its validated items and the decoded mask of each mask item."""

    name: str
    items: list[dict[str, Any]]
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # index in items -> array
    # How reasons name this reader, when not by ``name`` (a username): "the agreed readers", "the AI proposal".
    display: Message | None = None

    @property
    def said(self) -> Any:
        return self.display if self.display is not None else self.name


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
    reasons: list[str] = field(default_factory=list)  # in English, as stored before messages existed
    messages: list[Message] = field(default_factory=list)  # the same reasons, to render in the viewer's language
    compared: bool = True
    # Lesion labels: the matched pairs and the unmatched region ids per reader (see _matching).
    matching: dict[str, Any] | None = None

    def reason(self, msg: Message) -> None:
        self.messages.append(msg)
        self.reasons.append(english(msg))

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
            "messages": self.messages,
        }
        if self.matching is not None:
            entry["matching"] = self.matching
        return entry


NOTHING_COMPARED = N_("no label could be compared (nothing answered or found by both readers): agreement was not shown")


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

    @property
    def messages(self) -> list[Message]:
        messages = [msg for label in self.labels for msg in label.messages]
        if self.status == NOT_COMPARED:
            messages.append(message(NOTHING_COMPARED))
        return messages


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
    """The schema's display name of a label in English (reasons carry every language: ``label_names``)."""
    name = label.get("name")
    if isinstance(name, dict) and name:
        return str(name.get("en") or next(iter(name.values())))
    if isinstance(name, str) and name:
        return name
    return str(label["key"])


def label_names(label: dict[str, Any]) -> dict[str, Any]:
    """The label's display names, every language of the schema, as a message parameter."""
    return names(label.get("name"), str(label["key"]))


def _choice_names(label: dict[str, Any], value: Any) -> Any:
    """A choice key (or list of keys) as the choices' display names."""
    found: dict[str, Any] = {}

    def walk(choices: list[dict[str, Any]]) -> None:
        for choice in choices:
            found[choice["key"]] = names(choice.get("name"), choice["key"])
            walk(choice.get("children", []))

    walk(label.get("choices", []))
    if isinstance(value, list):
        return [found.get(entry, entry) for entry in value]
    return found.get(value, value)


def _segment_names(label: dict[str, Any], value: int) -> Any:
    for segment in label.get("segments", []):
        if segment["value"] == value:
            return names(segment.get("name"), segment["key"])
    return str(value)


@dataclass(frozen=True)
class SliceIndex:
    """Where each image sits in its series, to place 2D boxes in the volume."""

    z_of_sop: dict[str, int]
    spacing_of_series: dict[str, tuple[float, float, float]]  # (slice, row, column) mm


def _target(item: dict[str, Any]) -> tuple[Any, ...]:
    return (item.get("series_instance_uid"), item.get("sop_instance_uid"), item.get("frame"))


def _subject(label: dict[str, Any], target: tuple[Any, ...]) -> Any:
    """The label, and the image or series it was answered on."""
    series, sop, frame = target
    if sop:
        if frame and frame != 1:
            return message(R_ON_IMAGE_FRAME, label=label_names(label), sop=sop, frame=frame)
        return message(R_ON_IMAGE, label=label_names(label), sop=sop)
    if series:
        return message(R_ON_SERIES, label=label_names(label), series=series)
    return label_names(label)


def _values_agree(
    label: dict[str, Any], subject: Any, a: Any, b: Any, readers: tuple[Reading, Reading], thresholds: Thresholds
) -> tuple[bool, Message]:
    """Whether two answers agree, and the reason for people when they do not."""
    kind = label["kind"]
    first, second = readers
    pair = {"subject": subject, "a": first.said, "b": second.said}
    if a is None or b is None:
        answered, missing = (first, second) if b is None else (second, first)
        return False, message(R_ONE_ANSWER, subject=subject, answered=answered.said, missing=missing.said)
    if kind == "ordinal":
        distance = abs(int(a) - int(b))
        why = message(R_GRADES, **pair, va=a, vb=b, distance=distance, limit=thresholds.ordinal_distance)
        return distance <= thresholds.ordinal_distance, why
    if kind == "number":
        difference = abs(float(a) - float(b))
        unit = f" {label['unit']}" if label.get("unit") else ""
        why = message(
            R_NUMBERS,
            **pair,
            va=f"{a:g}{unit}",
            vb=f"{b:g}{unit}",
            difference=f"{difference:g}",
            limit=f"{thresholds.number_tolerance:g}",
        )
        return difference <= thresholds.number_tolerance, why
    if kind == "multiple_choice":
        why = message(R_CHOICES, **pair, va=_choice_names(label, sorted(a)), vb=_choice_names(label, sorted(b)))
        return set(a) == set(b), why
    return a == b, message(R_CHOICES, **pair, va=_choice_names(label, a), vb=_choice_names(label, b))


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
            ok, why = _values_agree(
                label, _subject(label, target), answers[i], answers[j], (readings[i], readings[j]), thresholds
            )
            agreeing += ok
            if not ok:
                target_agreed = False
                result.reason(why)
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
            result.reason(
                message(
                    R_LESION_COUNTS,
                    label=label_names(label),
                    a=readings[0].said,
                    na=counts[0],
                    b=readings[other].said,
                    nb=counts[other],
                )
            )
        elif match.n_matched < counts[0]:
            result.agreed = False
            what = f"IoU {thresholds.box_iou:g}" if kind != "point" else f"{thresholds.point_distance:g} px"
            result.reason(
                message(
                    R_LESIONS_UNMATCHED,
                    label=label_names(label),
                    n=counts[0] - match.n_matched,
                    total=counts[0],
                    threshold=what,
                    a=readings[0].said,
                    b=readings[other].said,
                )
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
    return result, _numbered(result.matching, readings, _with_unmatched(groups, unmatched, len(readings)))


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


def _numbered(
    matching: dict[str, Any], readings: list[Reading], groups: list[list[str | None]]
) -> list[list[str | None]]:
    """Record in the matching the number the reasons give each lesion ("Nodule bounding box 2"), per reader and
    region id, so that the browser names a lesion as the reasons do; returns the groups."""
    matching["numbers"] = {
        reading.name: {rid: number for number, group in enumerate(groups, start=1) if (rid := group[r]) is not None}
        for r, reading in enumerate(readings)
    }
    return groups


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
    label: dict[str, Any],
    subject: Any,
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
                result.reason(
                    message(
                        R_DICE,
                        subject=subject,
                        segment=_segment_names(label, value),
                        dice=f"{score:.2f}",
                        limit=f"{thresholds.mask_dice:.2f}",
                        a=readings[i].said,
                        b=readings[j].said,
                    )
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
            missing = [readings[r].said for r in range(len(readings)) if r not in per_reader]
            result.agreed = False
            subject = message(R_ON_SERIES, label=label_names(label), series=series_uid)
            result.reason(message(R_NO_MASK, subject=subject, missing=missing))
            continue
        spacing = index.spacing_of_series.get(series_uid, (1.0, 1.0, 1.0))
        arrays = [per_reader[r][1] for r in range(len(readings))]
        series_agreed, metrics = _compare_segments(
            label, label_names(label), arrays, readings, segments, thresholds, spacing, result
        )
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
            result.reason(
                message(
                    R_REGION_COUNTS,
                    label=label_names(label),
                    a=readings[0].said,
                    na=counts[0],
                    b=readings[other].said,
                    nb=counts[other],
                )
            )
        elif len(pairs) < counts[0]:
            result.agreed = False
            result.reason(
                message(
                    R_REGIONS_APART,
                    label=label_names(label),
                    n=counts[0] - len(pairs),
                    total=counts[0],
                    a=readings[0].said,
                    b=readings[other].said,
                )
            )
    matched_groups: list[tuple[int, list[tuple[dict[str, Any], np.ndarray]]]] = []
    for number, group in enumerate(groups, start=1):
        if any(rid is None for rid in group):
            continue  # unmatched: already a disagreement above
        members = [next(m for m in regions[r] if m[0]["id"] == rid) for r, rid in enumerate(group)]
        series_uid = members[0][0]["series_instance_uid"]
        spacing = index.spacing_of_series.get(series_uid, (1.0, 1.0, 1.0))
        arrays = [array for _, array in members]
        subject = message(R_LESION, label=label_names(label), number=number)
        group_agreed, metrics = _compare_segments(
            label, subject, arrays, readings, segments, thresholds, spacing, result
        )
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
    return result, _numbered(result.matching, readings, _with_unmatched(groups, unmatched, len(readings)))


def evaluate(schema: dict[str, Any], readings: list[Reading], thresholds: Thresholds, index: SliceIndex) -> Evaluation:
    """Compare every label of the schema across the readings; build the consensus items if all agree."""
    if len(readings) < 2:
        raise ValueError("Agreement needs at least two readings")
    labels: list[LabelResult] = []
    consensus: list[dict[str, Any]] = []
    consensus_masks: dict[int, np.ndarray] = {}
    region_groups: dict[str, list[list[str | None]]] = {}
    names_of_labels = {label["key"]: label_names(label) for label in schema["labels"]}
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
    names_of_labels: dict[str, Any],
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
    name = names_of_labels.get(key, names(key))
    compared = found_by_some = 0
    for parent in label.get("applies_to", []):
        parent_name = names_of_labels.get(parent, names(parent))
        for number, group in enumerate(region_groups.get(parent, []), start=1):
            answers = [values[r].get(rid) if rid is not None else None for r, rid in enumerate(group)]
            finders = [readings[r] for r, rid in enumerate(group) if rid is not None]
            # "Nodule type of Nodule bounding box 2": the lesion by its ordinal, never by its generated region id.
            subject = message(R_ATTRIBUTE_OF, label=name, lesion=message(R_LESION, label=parent_name, number=number))
            if len(finders) < len(readings):
                found_by_some += 1
                result.agreed = False
                if len(finders) == 1:
                    result.reason(message(R_FOUND_BY_ONE, subject=subject, finders=[r.said for r in finders]))
                else:
                    missed = [reading.said for reading in readings if reading not in finders]
                    result.reason(message(R_NOT_FOUND_BY, subject=subject, missed=missed))
                continue
            if all(answer is None for answer in answers):
                continue  # a matched lesion no reader described: nothing to compare
            compared += 1
            group_agreed = True
            for i, j in combinations(range(len(readings)), 2):
                if answers[i] is None and answers[j] is None:
                    continue
                ok, why = _values_agree(label, subject, answers[i], answers[j], (readings[i], readings[j]), thresholds)
                if not ok:
                    group_agreed = False
                    result.reason(why)
            result.agreed &= group_agreed
            if group_agreed:
                consensus.append({"label": key, "region": f"{parent}-{number}", "value": _majority(answers)})
    result.metrics["lesions_compared"] = compared
    result.metrics["lesions_found_by_some_readers"] = found_by_some
    if not compared and not found_by_some:
        return result.not_compared()  # no lesion, or none described: agreement on absence is the lesion label's
    return result
