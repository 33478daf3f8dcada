"""A case's series as one 3D volume in modality units (Hounsfield units for CT), with its geometry.

The model's preprocessing handles axial, single-frame, single-sample series on a regular slice grid;
anything else is refused here with a reason a person can act on (the job then fails with it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotation.models import Case
from config.errors import ApplicationError
from imaging.geometry import order_slices
from imaging.models import Instance, Series
from imaging.pixels import decoded_frame


class GeometryError(ApplicationError):
    code = "unsupported_geometry"


@dataclass
class Volume:
    series_instance_uid: str
    array: np.ndarray  # (slices, rows, columns) float32, modality units
    spacing: tuple[float, float, float]  # (slice, row, column) mm
    sop_instance_uids: list[str]  # in slice order (index z of ``array``)


def case_series(case: Case) -> Series:
    """The series a case is read on: its own, else its study's first image series."""
    if case.series_id is not None:
        return Series.objects.get(pk=case.series_id)
    series = (
        Series.objects.filter(study_id=case.study_id, instances__has_pixel_data=True)
        .distinct()
        .order_by("series_number", "series_instance_uid")
        .first()
    )
    if series is None:
        raise GeometryError(f"Case {case.pk} has no series with pixel data")
    return series


def _meta(instance: Instance, tag: str, default: float) -> float:
    try:
        return float(instance.metadata[tag]["Value"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return default


def check_geometry(series: Series, instances: list[Instance], *, min_slices: int = 1) -> list[tuple[float, Instance]]:
    """Instances sorted along the slice normal, or GeometryError naming what the model cannot handle."""
    uid = series.series_instance_uid
    if not instances:
        raise GeometryError(f"Series {uid} has no images")
    if any(i.number_of_frames != 1 for i in instances):
        raise GeometryError(f"Series {uid} is multi-frame; the model's preprocessing reads one slice per instance")
    if any((i.samples_per_pixel or 1) != 1 for i in instances):
        raise GeometryError(f"Series {uid} is colour (samples per pixel > 1); the model expects greyscale")
    if len({(i.rows, i.columns) for i in instances}) != 1:
        raise GeometryError(f"Series {uid} mixes image sizes; the model needs one rows x columns grid")
    if any(not i.is_decodable for i in instances):
        raise GeometryError(f"Series {uid} has pixel data no installed codec can decode")
    orientation = instances[0].image_orientation or series.image_orientation
    if not orientation or any(i.image_position is None for i in instances):
        raise GeometryError(f"Series {uid} lacks ImageOrientationPatient/ImagePositionPatient; cannot build a volume")
    row, column = np.asarray(orientation[:3], dtype=float), np.asarray(orientation[3:], dtype=float)
    normal = np.cross(row, column)
    # Axial only: the model was trained on axial slices; a sagittal or oblique series would need a
    # resampling to the training orientation that the saved preprocessing does not describe.
    if abs(abs(normal[2]) - 1.0) > 1e-3:
        raise GeometryError(
            f"Series {uid} is not axial (slice normal {np.round(normal, 3).tolist()}); "
            "the model's preprocessing handles axial series only"
        )
    # The one slice order of imaging.geometry (the viewer's and the masks'): along the normal, ties by number.
    slices = order_slices(instances, series_orientation=series.image_orientation)
    if slices.positions is None:
        raise GeometryError(f"Series {uid} lacks ImageOrientationPatient/ImagePositionPatient; cannot build a volume")
    ordered = list(zip(slices.positions, slices.slices, strict=True))
    if len(ordered) < min_slices:
        raise GeometryError(f"Series {uid} has {len(ordered)} slice(s); the model needs at least {min_slices}")
    if len(ordered) > 2:
        gaps = np.diff([z for z, _ in ordered])
        if np.any(gaps <= 0):
            raise GeometryError(f"Series {uid} has two slices at the same position")
        if float(gaps.max() - gaps.min()) > 0.1 * float(np.median(gaps)) + 1e-3:
            raise GeometryError(
                f"Series {uid} has irregular slice spacing ({gaps.min():.2f} to {gaps.max():.2f} mm); "
                "a slice may be missing"
            )
    return ordered


def load_volume(case: Case, *, min_slices: int = 1) -> Volume:
    series = case_series(case)
    instances = list(Instance.objects.filter(series=series, has_pixel_data=True))
    ordered = check_geometry(series, instances, min_slices=min_slices)
    first = ordered[0][1]
    slices = []
    for _, instance in ordered:
        frame = decoded_frame(instance, 1).astype(np.float32)
        slope, intercept = _meta(instance, "00281053", 1.0), _meta(instance, "00281052", 0.0)
        slices.append(frame * slope + intercept)
    row_spacing, column_spacing = [float(v) for v in (first.pixel_spacing or series.pixel_spacing or [1.0, 1.0])[:2]]
    if len(ordered) > 1:
        slice_spacing = float(np.median(np.diff([z for z, _ in ordered])))
    else:
        slice_spacing = float(series.slice_spacing or series.slice_thickness or 1.0)
    return Volume(
        series_instance_uid=series.series_instance_uid,
        array=np.stack(slices),
        spacing=(slice_spacing, row_spacing, column_spacing),
        sop_instance_uids=[i.sop_instance_uid for _, i in ordered],
    )
