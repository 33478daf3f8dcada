"""Comparing the readings of one case label by label, deciding agreed or disputed, and building the
consensus label. Pure functions over validated items (annotation/labels.py) and decoded masks: the
services feed them from the database.

Readers are compared pairwise, every pair of them (with three readers: 1~2, 1~3 and 2~3): lesions are matched
for each pair (Hungarian), and a label agrees only when every pair compared agrees; each label's entry says
how each pair of readers came out ("reader_pairs"). Reasons are written for people, naming labels, lesions and
segments by the schema's display names ("Nodule segmentation, segment Nodule: Dice 0.62 < 0.80 (annotator and
reviewer)"), and stored as messages rendered in the viewer's language.

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
    consensus_mean,
    dice,
    hausdorff95_and_assd,
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
    # How each pair of readers came out on this label ("a~b": agreed or disagreed; see pair()).
    reader_pairs: dict[str, str] = field(default_factory=dict)

    def pair(self, first: str, second: str, status: str) -> None:
        """Record how one pair of readers came out on this label (reader_pairs["a~b"]): a pair that disagreed
        anywhere on the label disagreed; one that agreed somewhere and nowhere disagreed agreed. A pair not
        recorded had nothing to compare."""
        pairs = self.reader_pairs
        name = f"{first}~{second}"
        if pairs.get(name) == DISAGREED or (pairs.get(name) == AGREED and status == NOT_COMPARED):
            return
        pairs[name] = status

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
        if self.reader_pairs:
            entry["reader_pairs"] = self.reader_pairs
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
            if answers[i] is None and answers[j] is None:
                continue  # a third reader answered what neither of these two did: nothing between them
            pairs += 1
            ok, why = _values_agree(
                label, _subject(label, target), answers[i], answers[j], (readings[i], readings[j]), thresholds
            )
            agreeing += ok
            result.pair(readings[i].name, readings[j].name, AGREED if ok else DISAGREED)
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
    """Match the regions of every pair of readers; returns the groups of matched region ids (_group_regions)."""
    key, kind = label["key"], label["kind"]
    regions = [[item for item in r.items if item["label"] == key] for r in readings]
    result = LabelResult(key=key, kind=kind, agreed=True)
    counts = [len(r) for r in regions]
    result.metrics["lesions_per_reader"] = dict(zip((r.name for r in readings), counts, strict=True))

    def located(reader: int) -> np.ndarray:
        if kind == "point":
            points = [
                [g["geometry"]["x"], g["geometry"]["y"], index.z_of_sop.get(g["sop_instance_uid"], 0)]
                for g in regions[reader]
            ]
            return np.array(points, dtype=float).reshape(-1, 3)
        return np.array([_box_of(g, index) for g in regions[reader]], dtype=float).reshape(-1, 6)

    places = [located(r) for r in range(len(readings))]
    matches: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
    pairs: list[dict[str, Any]] = []
    for first, other in combinations(range(len(readings)), 2):
        if kind == "point":
            match = match_points(places[first], places[other], thresholds.point_distance)
        else:
            match = match_lesions(places[first], places[other], thresholds.box_iou)
        result.metrics[f"{readings[first].name}~{readings[other].name}"] = {
            "matched": match.n_matched,
            "precision": round(match.precision, 6),
            "recall": round(match.recall, 6),
            "f1": round(match.f1, 6),
            "scores": [round(p[2], 6) for p in match.pairs],
        }
        matches[(first, other)] = list(match.pairs)
        for a, b, score in match.pairs:
            pairs.append(_pair(readings, first, other, regions[first][a]["id"], regions[other][b]["id"], score))
        pair_agreed = True
        if counts[first] != counts[other]:
            pair_agreed = False
            result.reason(
                message(
                    R_LESION_COUNTS,
                    label=label_names(label),
                    a=readings[first].said,
                    na=counts[first],
                    b=readings[other].said,
                    nb=counts[other],
                )
            )
        elif match.n_matched < counts[first]:
            pair_agreed = False
            what = f"IoU {thresholds.box_iou:g}" if kind != "point" else f"{thresholds.point_distance:g} px"
            result.reason(
                message(
                    R_LESIONS_UNMATCHED,
                    label=label_names(label),
                    n=counts[first] - match.n_matched,
                    total=counts[first],
                    threshold=what,
                    a=readings[first].said,
                    b=readings[other].said,
                )
            )
        result.agreed &= pair_agreed
        result.pair(readings[first].name, readings[other].name, AGREED if pair_agreed else DISAGREED)
    ids = [[item["id"] for item in reader_regions] for reader_regions in regions]
    groups = _group_regions(ids, matches)
    if result.agreed:  # every pair matched every lesion: each group holds one lesion of every reader
        for number, group in enumerate(groups, start=1):
            members = [next(i for i in regions[r] if i["id"] == rid) for r, rid in enumerate(group) if rid is not None]
            item = dict(members[0])
            item["id"] = f"{key}-{number}"
            if kind == "box" and "x" in item["geometry"]:
                item["geometry"] = _mean_geometry([m["geometry"] for m in members])
            consensus.append(item)
    result.matching = _matching(readings, ids, pairs, matches, "distance_px" if kind == "point" else "iou")
    return result, _numbered(result.matching, readings, groups)


def _pair(readings: list[Reading], first: int, other: int, id_a: str, id_b: str, score: float) -> dict[str, Any]:
    return {"readers": [readings[first].name, readings[other].name], "ids": [id_a, id_b], "score": round(score, 6)}


def _group_regions(
    ids: list[list[str]], matches: dict[tuple[int, int], list[tuple[int, int, float]]]
) -> list[list[str | None]]:
    """The lesions found, as groups of region ids (one slot per reader, None where that reader has none).

    Built from the pairwise matches in reader order: a region joins the group of the first earlier reader's
    region it was matched with, when that group has no region of its reader yet; otherwise it starts a group.
    So a lesion the first reader missed but two others found is one lesion found by two readers, not two
    lesions found by one each. The groups of the first reader's regions come first, in their order."""
    n_readers = len(ids)
    group_of: list[dict[int, int]] = [{} for _ in range(n_readers)]
    groups: list[list[str | None]] = []
    for reader in range(n_readers):
        for b, rid in enumerate(ids[reader]):
            target = None
            for earlier in range(reader):
                partner = next((a for a, bb, _ in matches.get((earlier, reader), []) if bb == b), None)
                group = group_of[earlier].get(partner) if partner is not None else None
                if group is not None and groups[group][reader] is None:
                    target = group
                    break
            if target is None:
                groups.append([None] * n_readers)
                target = len(groups) - 1
            groups[target][reader] = rid
            group_of[reader][b] = target
    return groups


def _matching(
    readings: list[Reading],
    ids: list[list[str]],
    pairs: list[dict[str, Any]],
    matches: dict[tuple[int, int], list[tuple[int, int, float]]],
    score: str,
) -> dict[str, Any]:
    """What the browser draws: the pairs matched (Hungarian, for every pair of readers) and, per reader, the ids
    of the regions that no other reader's region matched."""
    paired: list[set[int]] = [set() for _ in readings]
    for (first, other), found in matches.items():
        for a, b, _ in found:
            paired[first].add(a)
            paired[other].add(b)
    return {
        "method": "hungarian",
        "reference": readings[0].name,  # the first reader; the pairs cover every pair of readers
        "score": score,
        "pairs": pairs,
        "unmatched": {
            reading.name: [rid for k, rid in enumerate(ids[r]) if k not in paired[r]]
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
                hd95, mean_distance = hausdorff95_and_assd(masks[i], masks[j], spacing)
                entry["hd95_mm"], entry["assd_mm"] = round(hd95, 4), round(mean_distance, 4)
            except UndefinedMetricError:
                entry["hd95_mm"] = entry["assd_mm"] = None  # one reader painted nothing of this segment
            metrics[f"segment {value}: {readings[i].name}~{readings[j].name}"] = entry
            result.pair(readings[i].name, readings[j].name, AGREED if score >= thresholds.mask_dice else DISAGREED)
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
            for i, j in combinations(range(len(readings)), 2):
                if (i in per_reader) != (j in per_reader):
                    result.pair(readings[i].name, readings[j].name, DISAGREED)
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
    """Region masks (one mask per lesion, with an id): a reader may paint several per series. The regions of
    every pair of readers are matched by overlap (Dice of the painted voxels, one to one), the counts must be
    equal, and regions every reader matched are compared segment by segment like series masks. Returns the
    groups of matched region ids, for the region attributes."""
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
    matches: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
    matched_pairs: list[dict[str, Any]] = []
    for first, other in combinations(range(len(readings)), 2):
        overlap = np.zeros((counts[first], counts[other]))
        for a, (item_a, mask_a) in enumerate(regions[first]):
            for b, (item_b, mask_b) in enumerate(regions[other]):
                if item_a["series_instance_uid"] == item_b["series_instance_uid"] and mask_a.shape == mask_b.shape:
                    overlap[a, b] = dice(mask_a != 0, mask_b != 0)
        rows, columns = linear_sum_assignment(overlap, maximize=True) if overlap.size else ([], [])
        pairs = [(int(a), int(b)) for a, b in zip(rows, columns, strict=True) if overlap[a, b] > 0]
        matches[(first, other)] = [(a, b, float(overlap[a, b])) for a, b in pairs]
        for a, b in pairs:
            matched_pairs.append(
                _pair(readings, first, other, regions[first][a][0]["id"], regions[other][b][0]["id"], overlap[a, b])
            )
        result.metrics[f"{readings[first].name}~{readings[other].name}"] = {
            "matched": len(pairs),
            "dice": [round(float(overlap[a, b]), 6) for a, b in sorted(pairs)],
        }
        pair_agreed = True
        if counts[first] != counts[other]:
            pair_agreed = False
            result.reason(
                message(
                    R_REGION_COUNTS,
                    label=label_names(label),
                    a=readings[first].said,
                    na=counts[first],
                    b=readings[other].said,
                    nb=counts[other],
                )
            )
        elif len(pairs) < counts[first]:
            pair_agreed = False
            result.reason(
                message(
                    R_REGIONS_APART,
                    label=label_names(label),
                    n=counts[first] - len(pairs),
                    total=counts[first],
                    a=readings[first].said,
                    b=readings[other].said,
                )
            )
        result.agreed &= pair_agreed
        result.pair(readings[first].name, readings[other].name, AGREED if pair_agreed else DISAGREED)
    ids = [[item["id"] for item, _ in reader_regions] for reader_regions in regions]
    groups = _group_regions(ids, matches)
    matched_groups: list[tuple[int, list[tuple[dict[str, Any], np.ndarray]]]] = []
    for number, group in enumerate(groups, start=1):
        if any(rid is None for rid in group):
            continue  # not found by every reader: already a disagreement above
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
    result.matching = _matching(readings, ids, matched_pairs, matches, "dice")
    return result, _numbered(result.matching, readings, groups)


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
            partial = len(finders) < len(readings)
            if partial:
                found_by_some += 1
                result.agreed = False
                if len(finders) == 1:
                    result.reason(message(R_FOUND_BY_ONE, subject=subject, finders=[r.said for r in finders]))
                else:
                    missed = [readings[r].said for r, rid in enumerate(group) if rid is None]
                    result.reason(message(R_NOT_FOUND_BY, subject=subject, missed=missed))
            elif all(answer is None for answer in answers):
                continue  # a matched lesion no reader described: nothing to compare
            else:
                compared += 1
            group_agreed = not partial
            for i, j in combinations(range(len(readings)), 2):
                if group[i] is None and group[j] is None:
                    continue  # neither of the two found it: nothing between them
                if (group[i] is None) != (group[j] is None):
                    result.pair(readings[i].name, readings[j].name, DISAGREED)  # one of the two never described it
                    continue
                if answers[i] is None and answers[j] is None:
                    continue
                ok, why = _values_agree(label, subject, answers[i], answers[j], (readings[i], readings[j]), thresholds)
                result.pair(readings[i].name, readings[j].name, AGREED if ok else DISAGREED)
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
