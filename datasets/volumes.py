"""A series as a volume: its slices in order along the normal, its voxel-to-patient affine, its pixels.

Slice order is imaging.geometry's, the one the viewer, the review workflow and inference use: by position
along the normal of the image planes (then InstanceNumber, then UID), so a label mask's first axis lines up.
DICOM patient coordinates are LPS; NIfTI's are RAS, so the affine is flipped on its first two axes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
from django.core.files.storage import default_storage
from django.utils.translation import gettext_noop as N_
from zlib_ng import gzip_ng

from config.messages import Message, message
from imaging.geometry import order_slices
from imaging.models import Instance, Series
from imaging.pixels import decoded_frame
from imaging.services.framecache import is_local_file

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class GeometryMissing(Exception):
    """The series lacks what it takes to place a label in patient space; the message says what (in English as
    the exception's text, and as ``message``, a gettext template with its parameters, for the reader's language)."""

    def __init__(self, msgid: str, **params: Any) -> None:
        self.message: Message = message(msgid, **params)
        super().__init__(msgid % params if params else msgid)


@dataclass
class SeriesLayout:
    series: Series
    instances: list[Instance]  # in slice order
    affine_lps: np.ndarray  # 4x4, voxel (column i, row j, slice k) -> LPS millimetres

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns), the axis order of label masks."""
        return (len(self.instances), int(self.series.rows or 0), int(self.series.columns or 0))

    @property
    def affine_ras(self) -> np.ndarray:
        return LPS_TO_RAS @ self.affine_lps

    def z_of_sop(self) -> dict[str, int]:
        return {instance.sop_instance_uid: z for z, instance in enumerate(self.instances)}

    def has_local_files(self) -> bool:
        return all(is_local_file(instance.file) for instance in self.instances)


def series_layout(series: Series) -> SeriesLayout:
    """The series' slices in order and its affine, or GeometryMissing naming what is absent."""
    instances = list(Instance.objects.filter(series=series, has_pixel_data=True))
    if not instances:
        raise GeometryMissing(N_("series %(series)s has no images"), series=series.series_instance_uid)
    if any(instance.number_of_frames > 1 for instance in instances):
        raise GeometryMissing(
            N_("series %(series)s is multi-frame; per-frame geometry is not exported yet"),
            series=series.series_instance_uid,
        )
    if not series.rows or not series.columns:
        raise GeometryMissing(N_("series %(series)s has no rows/columns"), series=series.series_instance_uid)
    ordered = order_slices(instances, series_orientation=series.image_orientation)
    missing = [
        i.sop_instance_uid
        for i in instances
        if not i.image_position
        or not (i.image_orientation or series.image_orientation)
        or not i.pixel_spacing
        or not ordered.by_position  # an orientation that is no plane
    ]
    if missing or ordered.normal is None:
        raise GeometryMissing(
            N_(
                "series %(series)s: %(n)s image(s) lack position, orientation or pixel spacing, "
                "so a label cannot be placed in patient space"
            ),
            series=series.series_instance_uid,
            n=len(missing),
        )
    instances = ordered.slices
    orientation = np.asarray(instances[0].image_orientation or series.image_orientation, dtype=np.float64)
    row_cosine, column_cosine = orientation[:3], orientation[3:]
    normal = np.asarray(ordered.normal, dtype=np.float64)
    first = np.asarray(instances[0].image_position, dtype=np.float64)
    if len(instances) > 1:
        last = np.asarray(instances[-1].image_position, dtype=np.float64)
        step = (last - first) / (len(instances) - 1)
    else:
        step = normal * float(series.slice_thickness or series.slice_spacing or 1.0)
    row_spacing, column_spacing = (float(v) for v in instances[0].pixel_spacing[:2])  # type: ignore[index]
    affine = np.eye(4)
    # Column index i moves along the row cosine by the column spacing; row index j along the column cosine.
    affine[:3, 0] = row_cosine * column_spacing
    affine[:3, 1] = column_cosine * row_spacing
    affine[:3, 2] = step
    affine[:3, 3] = first
    return SeriesLayout(series=series, instances=instances, affine_lps=affine)


def _meta_number(instance: Instance, tag: str, default: float) -> float:
    try:
        return float(instance.metadata[tag]["Value"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return default


def load_volume(layout: SeriesLayout) -> np.ndarray:
    """Pixels in modality units (rescale applied), shape (slices, rows, columns); int16 when exact."""
    slopes = [_meta_number(i, "00281053", 1.0) for i in layout.instances]
    intercepts = [_meta_number(i, "00281052", 0.0) for i in layout.instances]
    exact = all(s == 1.0 for s in slopes) and all(float(b).is_integer() for b in intercepts)
    volume = np.empty(layout.shape, dtype=np.int32 if exact else np.float32)
    for z, instance in enumerate(layout.instances):
        frame = decoded_frame(instance, 1)
        volume[z] = frame * slopes[z] + intercepts[z] if not exact else frame.astype(np.int32) + int(intercepts[z])
    if exact and volume.size and volume.min() >= -32768 and volume.max() <= 32767:
        return volume.astype(np.int16)
    return volume.astype(np.float32)


def nifti_bytes(array: np.ndarray, affine_ras: np.ndarray) -> bytes:
    """A gzipped NIfTI-1 of a (slices, rows, columns) array: same bytes for the same input (no timestamps)."""
    # NIfTI axes: i (column), j (row), k (slice). The transposed view of a C-ordered array is Fortran-ordered,
    # the order NIfTI stores voxels in, so nibabel copies it out slice by slice as it is; made C-contiguous
    # first, it was transposed twice (once here, once back by nibabel).
    data = np.transpose(array, (2, 1, 0))
    image = nib.Nifti1Image(data, affine_ras)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine_ras, code=1)
    image.set_sform(affine_ras, code=1)
    # zlib-ng at level 2: files of the size nibabel's own .nii.gz (standard zlib, level 1) has, in its time or
    # less; level 6 took 62 % of a MONAI export for 0-2 % smaller files (issue 19).
    return gzip_ng.compress(image.to_bytes(), compresslevel=2, mtime=0)


def read_dataset(instance: Instance) -> pydicom.Dataset:
    with default_storage.open(instance.file, "rb") as handle:
        return pydicom.dcmread(io.BytesIO(handle.read()))
