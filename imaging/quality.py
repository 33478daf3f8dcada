"""Data-quality checks run on every series after ingest. A failed check flags the series; it is not used
for reading or export until someone resolves it, because a volume with a missing or duplicated slice
gives wrong masks and wrong distances in millimetres."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from statistics import median
from typing import Any

import numpy as np

POSITION_TOLERANCE_MM = 1e-3
COSINE_TOLERANCE = 1e-3
SPACING_TOLERANCE = 1e-3
# A gap this many times the median spacing means slices are missing.
GAP_FACTOR = 1.5
# Spacing that varies by more than this share of the median is inconsistent.
SPACING_VARIATION = 0.1

OK, WARNING, FAILED = "ok", "warning", "failed"


@dataclass(frozen=True)
class SliceInfo:
    sop_instance_uid: str
    rows: int | None
    columns: int | None
    number_of_frames: int
    image_position: list[float] | None
    image_orientation: list[float] | None
    pixel_spacing: list[float] | None
    has_pixel_data: bool
    is_decodable: bool
    transfer_syntax_uid: str
    slice_thickness: float | None = None
    frame_of_reference_uid: str = ""


@dataclass
class SeriesQuality:
    quality: str
    checks: list[dict[str, str]]
    geometry: dict[str, Any]


def _check(name: str, status: str, message: str) -> dict[str, str]:
    return {"check": name, "status": status, "message": message}


def _close(a: list[float], b: list[float], tol: float) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# What the checks read of a slice besides its position: slices alike in all of these form one group, so that a
# 500-slice CT is one group of 500 and the series' summary (below) stays small however many slices it has.
_SIGNATURE = (
    "rows",
    "columns",
    "number_of_frames",
    "pixel_spacing",
    "image_orientation",
    "has_pixel_data",
    "is_decodable",
    "transfer_syntax_uid",
    "slice_thickness",
    "frame_of_reference_uid",
)
SUMMARY_VERSION = 1


def empty_summary() -> dict[str, Any]:
    """The summary of a series without instances (see ``summary_add``)."""
    return {
        "version": SUMMARY_VERSION,
        "instances": 0,
        "groups": [],
        "positions": [],
        "missing_positions": 0,
        "unprojected": 0,
        "normal_from": None,
    }


def _missing_position(position: list[float] | None) -> bool:
    return not position or len(position) != 3


def _reference_orientation(groups: list[dict[str, Any]]) -> list[float] | None:
    for group in groups:
        orientation = group["slice"]["image_orientation"]
        if group["slice"]["has_pixel_data"] and orientation and len(orientation) == 6:
            return [float(v) for v in orientation]
    return None


def summary_add(summary: dict[str, Any], slices: list[tuple[Any, SliceInfo]]) -> dict[str, Any] | None:
    """The summary of a series after adding ``slices`` (each with its order key: the order in which a full
    check reads the instances, whose first values are the series' references), without reading the slices
    already counted; None when that cannot be done exactly (a new first slice changes the orientation the
    positions were measured along), and the series must be summarised again from all its instances.

    The summary holds, per group of alike slices, the count and the key of its first slice, plus the sorted
    positions of the single-frame images along the slice normal: what ``check_summary`` needs to give the
    same answer as ``check_series`` on every slice (issue 19: one more uploaded file no longer re-reads the
    whole series)."""
    if summary.get("version") != SUMMARY_VERSION:
        return None
    result = {**summary, "groups": [dict(g) for g in summary["groups"]], "positions": list(summary["positions"])}
    index = {json_key(g["slice"]): g for g in result["groups"]}
    new_positions: list[list[float]] = []
    for key, info in slices:
        signature = {name: getattr(info, name) for name in _SIGNATURE}
        group = index.get(json_key(signature))
        if group is None:
            group = {"slice": signature, "count": 0, "key": key}
            index[json_key(signature)] = group
            result["groups"].append(group)
        group["count"] += 1
        if _order(key) < _order(group["key"]):
            group["key"] = key
        result["instances"] += 1
        if info.has_pixel_data and info.number_of_frames == 1:
            if _missing_position(info.image_position):
                result["missing_positions"] += 1
            else:
                new_positions.append([float(v) for v in info.image_position or []])
    result["groups"].sort(key=lambda g: _order(g["key"]))
    orientation = _reference_orientation(result["groups"])
    if orientation != result["normal_from"]:
        if result["positions"] or result["unprojected"]:
            return None  # the positions counted so far were measured along another normal (or none)
        result["normal_from"] = orientation
    if orientation is None:
        result["unprojected"] += len(new_positions)
    else:
        normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))
        result["positions"].extend(float(np.dot(normal, np.asarray(p))) for p in new_positions)
        result["positions"].sort()
    return result


def json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _order(key: Any) -> Any:
    # JSON turns tuples into lists; compare them alike.
    return tuple(_order(k) for k in key) if isinstance(key, list | tuple) else key


def check_series(slices: list[SliceInfo]) -> SeriesQuality:
    """The checks on every slice of a series, in the order given (its first values are the references)."""
    summary = summary_add(empty_summary(), [(index, info) for index, info in enumerate(slices)])
    assert summary is not None  # adding to an empty summary never needs the earlier slices
    return check_summary(summary)


def check_summary(summary: dict[str, Any]) -> SeriesQuality:
    checks: list[dict[str, str]] = []
    images = [g for g in summary["groups"] if g["slice"]["has_pixel_data"]]

    def count(groups: list[dict[str, Any]]) -> int:
        return sum(g["count"] for g in groups)

    geometry: dict[str, Any] = {
        "rows": None,
        "columns": None,
        "number_of_slices": sum(g["count"] * g["slice"]["number_of_frames"] for g in images),
        "pixel_spacing": None,
        "slice_thickness": None,
        "slice_spacing": None,
        "image_orientation": None,
        "slice_positions": [],
        "is_multiframe": any(g["slice"]["number_of_frames"] > 1 for g in images),
    }
    if not images:
        checks.append(_check("pixel_data", OK, "No image objects in this series (non-image objects only)"))
        return SeriesQuality(OK, checks, geometry)

    dims: Counter[tuple[int | None, int | None]] = Counter()
    for group in images:
        dims[(group["slice"]["rows"], group["slice"]["columns"])] += group["count"]
    (rows, columns), _ = dims.most_common(1)[0]
    geometry["rows"], geometry["columns"] = rows, columns
    if len(dims) > 1:
        described = ", ".join(f"{r}x{c} ({n})" for (r, c), n in dims.most_common())
        checks.append(_check("dimensions", FAILED, f"Mixed image dimensions in one series: {described}"))
    else:
        checks.append(_check("dimensions", OK, f"All images {rows}x{columns}"))

    undecodable = [g for g in images if not g["slice"]["is_decodable"]]
    if undecodable:
        syntaxes = ", ".join(sorted({g["slice"]["transfer_syntax_uid"] for g in undecodable}))
        checks.append(
            _check(
                "pixel_data",
                FAILED,
                f"{count(undecodable)} image(s) have pixel data that cannot be decoded ({syntaxes})",
            )
        )
    else:
        checks.append(_check("pixel_data", OK, "Pixel data decodable"))

    multi = count([g for g in images if g["slice"]["number_of_frames"] > 1])
    if multi and multi != count(images):
        checks.append(
            _check("frames", FAILED, f"Mixes {multi} multi-frame and {count(images) - multi} single-frame images")
        )
    else:
        kind = "multi-frame" if multi else "single-frame"
        checks.append(_check("frames", OK, f"All images {kind}"))

    spacings = [g["slice"]["pixel_spacing"] for g in images if g["slice"]["pixel_spacing"]]
    if spacings:
        geometry["pixel_spacing"] = spacings[0]
        if any(not _close(sp, spacings[0], SPACING_TOLERANCE) for sp in spacings):
            checks.append(_check("pixel_spacing", FAILED, "Pixel spacing differs between images of the series"))
        else:
            checks.append(_check("pixel_spacing", OK, f"Pixel spacing {spacings[0][0]:g} x {spacings[0][1]:g} mm"))
    else:
        checks.append(_check("pixel_spacing", WARNING, "No pixel spacing: distances in mm cannot be computed"))
    thicknesses = [g["slice"]["slice_thickness"] for g in images if g["slice"]["slice_thickness"]]
    geometry["slice_thickness"] = thicknesses[0] if thicknesses else None

    orientations = [
        g["slice"]["image_orientation"]
        for g in images
        if g["slice"]["image_orientation"] and len(g["slice"]["image_orientation"]) == 6
    ]
    if orientations:
        geometry["image_orientation"] = orientations[0]
        if any(not _close(o, orientations[0], COSINE_TOLERANCE) for o in orientations):
            checks.append(_check("orientation", FAILED, "Image orientation differs between images of the series"))
        else:
            checks.append(_check("orientation", OK, "One image orientation"))

    uids = {g["slice"]["frame_of_reference_uid"] for g in images}
    missing = count([g for g in images if not g["slice"]["frame_of_reference_uid"]])
    checks.append(_check_frame_of_reference(uids, missing, count(images)))

    if count([g for g in images if g["slice"]["number_of_frames"] == 1]) > 1:
        checks.extend(_check_positions(summary, orientations[0] if orientations else None, geometry))
    worst = (
        FAILED
        if any(c["status"] == FAILED for c in checks)
        else WARNING
        if any(c["status"] == WARNING for c in checks)
        else OK
    )
    return SeriesQuality(worst, checks, geometry)


def _check_frame_of_reference(uids: set[str], missing: int, images: int) -> dict[str, str]:
    """A warning, not a failure: the images can be read and labelled, but labels written as DICOM (SEG,
    RTSTRUCT) must name the coordinate system they are drawn in, so the export derives one for the series
    (and records it) when the images carry none."""
    if missing:
        return _check(
            "frame_of_reference",
            WARNING,
            f"No Frame of Reference UID on {missing} of {images} image(s): DICOM SEG and RTSTRUCT exports "
            "derive one for this series and record it in the snapshot",
        )
    if len(uids) > 1:
        return _check(
            "frame_of_reference",
            WARNING,
            f"{len(uids)} different Frame of Reference UIDs in one series: labels on it cannot be exported as "
            "DICOM SEG or RTSTRUCT",
        )
    return _check("frame_of_reference", OK, "One Frame of Reference UID")


def _check_positions(
    summary: dict[str, Any], orientation: list[float] | None, geometry: dict[str, Any]
) -> list[dict[str, str]]:
    missing = summary["missing_positions"]
    if missing:
        return [_check("slice_positions", FAILED, f"{missing} image(s) have no Image Position (Patient)")]
    if orientation is None:
        return [_check("slice_positions", FAILED, "No Image Orientation (Patient): slices cannot be ordered")]
    positions: list[float] = summary["positions"]  # sorted, along the normal of this orientation
    geometry["slice_positions"] = [round(p, 4) for p in positions]
    results: list[dict[str, str]] = []
    diffs = [b - a for a, b in zip(positions, positions[1:], strict=False)]
    duplicates = [positions[i] for i, d in enumerate(diffs) if d <= POSITION_TOLERANCE_MM]
    if duplicates:
        shown = ", ".join(f"{p:.2f}" for p in duplicates[:5])
        results.append(
            _check("slice_positions", FAILED, f"{len(duplicates)} duplicated slice position(s) at {shown} mm")
        )
        distinct = [d for d in diffs if d > POSITION_TOLERANCE_MM]
    else:
        results.append(_check("slice_positions", OK, f"{len(positions)} distinct slice positions"))
        distinct = diffs
    if not distinct:
        return results
    step = median(distinct)
    geometry["slice_spacing"] = round(step, 6)
    gaps = [(positions[i], positions[i + 1]) for i, d in enumerate(diffs) if d > GAP_FACTOR * step]
    if gaps:
        shown = ", ".join(f"{a:.2f}..{b:.2f}" for a, b in gaps[:5])
        results.append(_check("slice_spacing", FAILED, f"Missing slices: {len(gaps)} gap(s) between {shown} mm"))
    elif (max(distinct) - min(distinct)) > SPACING_VARIATION * step:
        results.append(
            _check(
                "slice_spacing",
                FAILED,
                f"Inconsistent slice spacing: {min(distinct):.3f} to {max(distinct):.3f} mm (median {step:.3f})",
            )
        )
    else:
        results.append(_check("slice_spacing", OK, f"Regular slice spacing {step:.3f} mm"))
    return results
