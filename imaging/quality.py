"""Data-quality checks run on every series after ingest. A failed check flags the series; it is not used
for reading or export until someone resolves it, because a volume with a missing or duplicated slice
gives wrong masks and wrong distances in millimetres."""

from __future__ import annotations

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


def check_series(slices: list[SliceInfo]) -> SeriesQuality:
    checks: list[dict[str, str]] = []
    images = [s for s in slices if s.has_pixel_data]
    geometry: dict[str, Any] = {
        "rows": None,
        "columns": None,
        "number_of_slices": sum(s.number_of_frames for s in images),
        "pixel_spacing": None,
        "slice_thickness": None,
        "slice_spacing": None,
        "image_orientation": None,
        "slice_positions": [],
        "is_multiframe": any(s.number_of_frames > 1 for s in images),
    }
    if not images:
        checks.append(_check("pixel_data", OK, "No image objects in this series (non-image objects only)"))
        return SeriesQuality(OK, checks, geometry)

    dims = Counter((s.rows, s.columns) for s in images)
    (rows, columns), _ = dims.most_common(1)[0]
    geometry["rows"], geometry["columns"] = rows, columns
    if len(dims) > 1:
        described = ", ".join(f"{r}x{c} ({n})" for (r, c), n in dims.most_common())
        checks.append(_check("dimensions", FAILED, f"Mixed image dimensions in one series: {described}"))
    else:
        checks.append(_check("dimensions", OK, f"All images {rows}x{columns}"))

    undecodable = [s for s in images if not s.is_decodable]
    if undecodable:
        syntaxes = ", ".join(sorted({s.transfer_syntax_uid for s in undecodable}))
        checks.append(
            _check(
                "pixel_data", FAILED, f"{len(undecodable)} image(s) have pixel data that cannot be decoded ({syntaxes})"
            )
        )
    else:
        checks.append(_check("pixel_data", OK, "Pixel data decodable"))

    multi = [s for s in images if s.number_of_frames > 1]
    if multi and len(multi) != len(images):
        checks.append(
            _check(
                "frames", FAILED, f"Mixes {len(multi)} multi-frame and {len(images) - len(multi)} single-frame images"
            )
        )
    else:
        kind = "multi-frame" if multi else "single-frame"
        checks.append(_check("frames", OK, f"All images {kind}"))

    spacings = [s.pixel_spacing for s in images if s.pixel_spacing]
    if spacings:
        geometry["pixel_spacing"] = spacings[0]
        if any(not _close(sp, spacings[0], SPACING_TOLERANCE) for sp in spacings):
            checks.append(_check("pixel_spacing", FAILED, "Pixel spacing differs between images of the series"))
        else:
            checks.append(_check("pixel_spacing", OK, f"Pixel spacing {spacings[0][0]:g} x {spacings[0][1]:g} mm"))
    else:
        checks.append(_check("pixel_spacing", WARNING, "No pixel spacing: distances in mm cannot be computed"))
    thicknesses = [s.slice_thickness for s in images if s.slice_thickness]
    geometry["slice_thickness"] = thicknesses[0] if thicknesses else None

    orientations = [s.image_orientation for s in images if s.image_orientation and len(s.image_orientation) == 6]
    if orientations:
        geometry["image_orientation"] = orientations[0]
        if any(not _close(o, orientations[0], COSINE_TOLERANCE) for o in orientations):
            checks.append(_check("orientation", FAILED, "Image orientation differs between images of the series"))
        else:
            checks.append(_check("orientation", OK, "One image orientation"))

    checks.append(_check_frame_of_reference(images))

    single_frames = [s for s in images if s.number_of_frames == 1]
    if len(single_frames) > 1:
        checks.extend(_check_positions(single_frames, orientations[0] if orientations else None, geometry))
    worst = (
        FAILED
        if any(c["status"] == FAILED for c in checks)
        else WARNING
        if any(c["status"] == WARNING for c in checks)
        else OK
    )
    return SeriesQuality(worst, checks, geometry)


def _check_frame_of_reference(images: list[SliceInfo]) -> dict[str, str]:
    """A warning, not a failure: the images can be read and labelled, but labels written as DICOM (SEG,
    RTSTRUCT) must name the coordinate system they are drawn in, so the export derives one for the series
    (and records it) when the images carry none."""
    uids = {s.frame_of_reference_uid for s in images}
    missing = sum(1 for s in images if not s.frame_of_reference_uid)
    if missing:
        return _check(
            "frame_of_reference",
            WARNING,
            f"No Frame of Reference UID on {missing} of {len(images)} image(s): DICOM SEG and RTSTRUCT exports "
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
    slices: list[SliceInfo], orientation: list[float] | None, geometry: dict[str, Any]
) -> list[dict[str, str]]:
    missing = [s for s in slices if not s.image_position or len(s.image_position) != 3]
    if missing:
        return [_check("slice_positions", FAILED, f"{len(missing)} image(s) have no Image Position (Patient)")]
    if orientation is None:
        return [_check("slice_positions", FAILED, "No Image Orientation (Patient): slices cannot be ordered")]
    normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))
    positions = sorted(float(np.dot(normal, np.asarray(s.image_position))) for s in slices)
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
