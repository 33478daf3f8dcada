"""Reproducible synthetic chest CT studies with lesion ground truth.

``generate_ct_study(seed=...)`` builds a CT-like volume in Hounsfield units (air, an elliptical body with a
fat ring, two lungs tapering towards apex and base, a spine-like bone disk), places ellipsoidal "nodule"
lesions fully inside the lungs without touching each other, and adds gaussian noise to the image only.
The lesion label map (``mask``) and per-lesion ground truth (``lesions``) describe the lesions exactly.

``difficulty="hard"`` (issue 17) makes studies that tell segmentation engines apart: vessels branch through the
lungs at soft-tissue density, nodules touch a vessel (juxtavascular) or the chest wall (juxtapleural, cut by the
pleura), some are ground-glass (a few hundred HU above lung instead of a thousand), and the noise is spatially
correlated on a slightly blurred image, as a reconstruction kernel makes it. The default (``"standard"``) output
is unchanged, byte for byte.

Everything is derived from the seed: patient identity, dates and times from the seed alone; UIDs from the
seed and the generation parameters; anatomy, lesions and noise from independent streams of
``numpy.random.default_rng([seed, stream])``. The same call therefore always produces byte-identical
DICOM files (for a given pydicom version), and different seeds produce different UIDs and patient ids.

The module depends only on numpy and pydicom, so it can be used from tests and scripts without Django.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

__all__ = [
    "CT_IMAGE_STORAGE",
    "TISSUE_HU",
    "AnatomyModel",
    "SyntheticLesion",
    "SyntheticStudy",
    "Tissue",
    "generate_ct_study",
    "HARD_LESION_KINDS",
]

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["synthetic-ct-generator", "implementation", "1"])
IMPLEMENTATION_VERSION_NAME = "SYNTHCT_1"
GENERATOR_VERSION = "1"
LESION_LABEL = "nodule"


class Tissue:
    """Tissue classes of the anatomical label map (see ``SyntheticStudy.tissue_labels``)."""

    AIR = 0
    FAT = 1
    SOFT_TISSUE = 2
    LUNG = 3
    BONE = 4


# Nominal Hounsfield units per tissue class. Lungs additionally get a gentle anterior-posterior gradient
# (dependent lung is denser), LUNG_GRADIENT_HU around this value.
TISSUE_HU: dict[int, float] = {
    Tissue.AIR: -1000.0,
    Tissue.FAT: -100.0,
    Tissue.SOFT_TISSUE: 40.0,
    Tissue.LUNG: -850.0,
    Tissue.BONE: 700.0,
}
LUNG_GRADIENT_HU = 25.0
LESION_HU_RANGE = (20, 60)
_INT16_MIN = float(np.iinfo(np.int16).min)
_INT16_MAX = float(np.iinfo(np.int16).max)
# Voxels processed per slab when rendering the volume: bounds peak memory of the float temporaries.
_SLAB_VOXELS = 2_000_000
_MAX_PLACEMENT_ATTEMPTS = 2000

Float3 = tuple[float, float, float]
Slices3 = tuple[slice, slice, slice]


def _ds(value: float) -> str:
    """A Decimal String (at most 16 characters) for ``value``."""
    return format_number_as_ds(float(value))


@dataclass(frozen=True)
class SyntheticLesion:
    index: int  # 1-based segment number in the mask
    label: str  # "nodule"
    center_voxel: Float3  # (z, y, x) voxel coordinates
    radii_mm: Float3  # (z, y, x) semi-axes in millimetres
    center_mm: Float3  # patient coordinates (x, y, z) in mm (DICOM LPS)
    bbox_voxel: tuple[int, int, int, int, int, int]  # (z0, y0, x0, z1, y1, x1), tight, end-exclusive
    hu: float
    volume_mm3: float  # mask voxel count * voxel volume
    # "solid" (the standard studies), or in hard studies "juxtavascular", "juxtapleural", "ground_glass"
    kind: str = "solid"


@dataclass(frozen=True, eq=False)
class AnatomyModel:
    """The noise-free anatomy of a study, able to rebuild the tissue label map of any sub-volume.

    ``base_2d`` is the in-plane label map without lungs (constant along z); ``lung_r2_2d`` is, per pixel,
    the smallest normalised squared elliptical radius to a lung centre; ``lung_t`` is, per slice, the
    squared scale of the lung cross-section. A voxel is lung where ``lung_r2_2d < lung_t[z]`` and the base
    label is soft tissue.
    """

    base_2d: npt.NDArray[np.uint8]
    lung_r2_2d: npt.NDArray[np.float32]
    lung_t: npt.NDArray[np.float32]
    lung_hu_2d: npt.NDArray[np.float32]

    @property
    def shape(self) -> tuple[int, int, int]:
        rows, columns = self.base_2d.shape
        return (int(self.lung_t.shape[0]), int(rows), int(columns))

    def labels(
        self, zs: slice = slice(None), ys: slice = slice(None), xs: slice = slice(None)
    ) -> npt.NDArray[np.uint8]:
        """Tissue labels (``Tissue``) of the sub-volume ``[zs, ys, xs]``, shape (z, y, x)."""
        base = self.base_2d[ys, xs]
        lung = self.lung(zs, ys, xs)
        out = np.broadcast_to(base, lung.shape).copy()
        out[lung] = Tissue.LUNG
        return out

    def lung(self, zs: slice = slice(None), ys: slice = slice(None), xs: slice = slice(None)) -> npt.NDArray[np.bool_]:
        """Whether each voxel of the sub-volume ``[zs, ys, xs]`` is lung, shape (z, y, x)."""
        soft = self.base_2d[ys, xs] == Tissue.SOFT_TISSUE
        inside = self.lung_r2_2d[ys, xs][None, :, :] < self.lung_t[zs][:, None, None]
        inside &= soft[None]
        return inside


@dataclass(eq=False)
class SyntheticStudy:
    patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    accession_number: str
    study_date: str
    study_description: str
    series_description: str
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) mm
    slice_spacing: float  # mm between slices
    origin_mm: Float3  # ImagePositionPatient of slice 0
    hu: npt.NDArray[np.int16] = field(repr=False)  # (slices, rows, columns) Hounsfield units
    mask: npt.NDArray[np.uint8] = field(repr=False)  # (slices, rows, columns), 0 = background, k = lesion k
    lesions: list[SyntheticLesion]
    study_time: str = "120000"
    seed: int | None = None
    anatomy: AnatomyModel | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        slices, rows, columns = self.hu.shape
        return (int(slices), int(rows), int(columns))

    def tissue_labels(self) -> npt.NDArray[np.uint8]:
        """The noise-free tissue label map (values of ``Tissue``), shape (slices, rows, columns)."""
        if self.anatomy is None:
            raise ValueError("this study carries no anatomy model")
        return self.anatomy.labels()

    def sop_instance_uids(self) -> list[str]:
        key = self._uid_key()
        return [str(generate_uid(entropy_srcs=[*key, "sop", str(k)])) for k in range(self.shape[0])]

    def slice_positions(self) -> list[Float3]:
        """ImagePositionPatient (x, y, z) of every slice, in slice order."""
        x0, y0, z0 = self.origin_mm
        return [(x0, y0, z0 + k * self.slice_spacing) for k in range(self.shape[0])]

    def _uid_key(self) -> list[str]:
        # SOP Instance UIDs hang off the series UID, which already encodes seed and parameters.
        return ["synthetic-ct", GENERATOR_VERSION, self.series_uid]

    def datasets(self) -> Iterator[FileDataset]:
        """One CT Image Storage dataset per slice, in slice order, ready for ``pydicom.dcmwrite``."""
        _, rows, columns = self.shape
        if self.hu.dtype != np.int16:
            raise ValueError(f"hu must be int16, not {self.hu.dtype}")
        row_spacing, column_spacing = self.pixel_spacing
        sop_uids = self.sop_instance_uids()
        hu_le = self.hu.astype("<i2", copy=False)
        for k, (position, sop_uid) in enumerate(zip(self.slice_positions(), sop_uids, strict=True)):
            meta = FileMetaDataset()
            # Present so that even a plain ``dcmwrite`` (without enforce_file_format) writes the group
            # length; pydicom computes the value when writing.
            meta.FileMetaInformationGroupLength = 0
            meta.FileMetaInformationVersion = b"\x00\x01"
            meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = UID(sop_uid)
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
            meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME

            ds = FileDataset("", {}, file_meta=meta, preamble=b"\x00" * 128)
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SOPClassUID = CT_IMAGE_STORAGE
            ds.SOPInstanceUID = sop_uid
            ds.StudyDate = self.study_date
            ds.SeriesDate = self.study_date
            ds.AcquisitionDate = self.study_date
            ds.ContentDate = self.study_date
            ds.StudyTime = self.study_time
            ds.SeriesTime = self.study_time
            ds.AcquisitionTime = self.study_time
            ds.ContentTime = self.study_time
            ds.AccessionNumber = self.accession_number
            ds.Modality = "CT"
            ds.Manufacturer = "Synthetic"
            ds.ManufacturerModelName = "synthetic-ct"
            ds.ReferringPhysicianName = ""
            ds.StudyDescription = self.study_description
            ds.SeriesDescription = self.series_description
            ds.PatientName = self.patient_name
            ds.PatientID = self.patient_id
            ds.PatientBirthDate = self.patient_birth_date
            ds.PatientSex = self.patient_sex
            ds.BodyPartExamined = "CHEST"
            ds.SliceThickness = _ds(self.slice_spacing)
            ds.KVP = "120"
            ds.ConvolutionKernel = "STANDARD"
            ds.PatientPosition = "HFS"
            ds.StudyInstanceUID = self.study_uid
            ds.SeriesInstanceUID = self.series_uid
            ds.StudyID = "1"
            ds.SeriesNumber = 1
            ds.AcquisitionNumber = 1
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
            ds.FrameOfReferenceUID = self.frame_of_reference_uid
            ds.PositionReferenceIndicator = ""
            ds.SliceLocation = _ds(position[2])
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = rows
            ds.Columns = columns
            ds.PixelSpacing = [_ds(row_spacing), _ds(column_spacing)]
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1
            ds.WindowCenter = "-600"
            ds.WindowWidth = "1500"
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU"
            ds.WindowCenterWidthExplanation = "LUNG"
            ds.add_new(0x7FE00010, "OW", hu_le[k].tobytes())
            yield ds

    def write(self, directory: Path) -> list[Path]:
        """Write one Part 10 file per slice to ``directory/<series_uid>/<slice index:04d>.dcm``."""
        series_dir = Path(directory) / self.series_uid
        series_dir.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        for k, ds in enumerate(self.datasets()):
            path = series_dir / f"{k:04d}.dcm"
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            paths.append(path)
        return paths


def _ellipsoid(center: Float3, radii_vox: Float3) -> tuple[tuple[int, int, int], npt.NDArray[np.bool_]]:
    """Voxels whose centres lie inside an axis-aligned ellipsoid (all in voxel units).

    Returns the first voxel (z, y, x) of the ellipsoid's bounding box, unclipped (it may lie outside the
    volume), and the boolean mask of the ellipsoid's voxels within that box.
    """
    starts: list[int] = []
    grids: list[npt.NDArray[np.float64]] = []
    for c, r in zip(center, radii_vox, strict=True):
        lo, hi = math.ceil(c - r), math.floor(c + r) + 1
        starts.append(lo)
        grids.append(((np.arange(lo, max(hi, lo), dtype=np.float64) - c) / r) ** 2)
    gz, gy, gx = grids
    sel = (gz[:, None, None] + gy[None, :, None] + gx[None, None, :]) <= 1.0
    return (starts[0], starts[1], starts[2]), sel


def _dilate(sel: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Dilation by the full 3x3x3 cube (26-connectivity); the result is one voxel larger on every side."""
    out = np.pad(sel, 1)
    for axis in range(3):
        grown = out.copy()
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        grown[tuple(lo)] |= out[tuple(hi)]
        grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def _box(start: tuple[int, int, int], shape: tuple[int, ...]) -> Slices3:
    return (
        slice(start[0], start[0] + shape[0]),
        slice(start[1], start[1] + shape[1]),
        slice(start[2], start[2] + shape[2]),
    )


def _ellipse_r2(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], cx: float, cy: float, ax: float, ay: float
) -> npt.NDArray[np.float64]:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2


def _build_anatomy(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing: Float3
) -> tuple[AnatomyModel, list[tuple[float, float, float, float]]]:
    """The anatomy and the lungs' in-plane ellipses (cx, cy, ax, ay in mm, relative to the image centre)."""
    slices, rows, columns = shape
    _, sy, sx = spacing
    # In-plane physical coordinates (mm) relative to the image centre; y grows towards posterior.
    x = ((np.arange(columns, dtype=np.float64) - (columns - 1) / 2.0) * sx)[None, :]
    y = ((np.arange(rows, dtype=np.float64) - (rows - 1) / 2.0) * sy)[:, None]
    fov_x, fov_y = columns * sx, rows * sy

    body_ax = rng.uniform(0.41, 0.46) * fov_x
    body_ay = min(rng.uniform(0.31, 0.36) * fov_y, 0.9 * body_ax)
    body_cy = rng.uniform(-0.02, 0.02) * fov_y
    fat = rng.uniform(0.05, 0.08) * min(body_ax, body_ay)
    in_ax, in_ay = body_ax - fat, body_ay - fat

    base = np.full((rows, columns), Tissue.AIR, dtype=np.uint8)
    base[_ellipse_r2(x, y, 0.0, body_cy, body_ax, body_ay) <= 1.0] = Tissue.FAT
    base[_ellipse_r2(x, y, 0.0, body_cy, in_ax, in_ay) <= 1.0] = Tissue.SOFT_TISSUE

    spine_r = rng.uniform(0.08, 0.11) * min(in_ax, in_ay)
    spine_cy = body_cy + rng.uniform(0.74, 0.78) * in_ay
    base[_ellipse_r2(x, y, 0.0, spine_cy, spine_r, spine_r) <= 1.0] = Tissue.BONE

    lungs: list[tuple[float, float, float, float]] = []
    lung_r2 = np.full((rows, columns), np.inf, dtype=np.float64)
    for side in (-1.0, 1.0):
        cx = side * rng.uniform(0.48, 0.52) * in_ax
        cy = body_cy + rng.uniform(-0.04, 0.0) * in_ay
        ax = rng.uniform(0.30, 0.34) * in_ax
        ay = rng.uniform(0.64, 0.70) * in_ay
        lungs.append((cx, cy, ax, ay))
        np.minimum(lung_r2, _ellipse_r2(x, y, cx, cy, ax, ay), out=lung_r2)

    # Lung cross-section scale along z: widest a third of the way up, tapering to the bases below and
    # (more gently) to the apices above. Slice index grows towards the head (+z in LPS).
    f_widest = rng.uniform(0.3, 0.4)
    f_apex = rng.uniform(1.05, 1.2)
    f_base = rng.uniform(-0.25, -0.15)
    f = np.arange(slices, dtype=np.float64) / (slices - 1) if slices > 1 else np.full(1, 0.5)
    half = np.where(f >= f_widest, f_apex - f_widest, f_widest - f_base)
    lung_t = np.clip(1.0 - ((f - f_widest) / half) ** 2, 0.0, 1.0)

    # Dependent (posterior) lung is slightly denser.
    lung_hu = TISSUE_HU[Tissue.LUNG] + LUNG_GRADIENT_HU * np.clip((y - body_cy) / in_ay, -1.0, 1.0)
    lung_hu_2d = np.broadcast_to(lung_hu, (rows, columns))

    anatomy = AnatomyModel(
        base_2d=base,
        lung_r2_2d=lung_r2.astype(np.float32),
        lung_t=lung_t.astype(np.float32),
        lung_hu_2d=np.ascontiguousarray(lung_hu_2d, dtype=np.float32),
    )
    return anatomy, lungs


@dataclass(frozen=True, eq=False)
class _PlacedLesion:
    center: Float3  # voxel (z, y, x)
    radii_mm: Float3  # (z, y, x)
    hu: float
    start: tuple[int, int, int]  # first voxel of ``sel``'s box
    sel: npt.NDArray[np.bool_]
    kind: str = "solid"


def _place_lesions(
    rng: np.random.Generator,
    anatomy: AnatomyModel,
    lungs: list[tuple[float, float, float, float]],
    spacing: Float3,
    n_lesions: int,
    radius_range: tuple[float, float],
    mask: npt.NDArray[np.uint8],
) -> list[_PlacedLesion]:
    """Rejection-sample ellipsoids fully inside the lungs; fills ``mask`` in place.

    Every lesion voxel and its 26 neighbours must lie inside the volume and in lung, and be clear of the
    lesions placed before: lesions are never truncated, always wrapped in lung, and never touch.
    """
    shape = anatomy.shape
    slices, rows, columns = shape
    sz, sy, sx = spacing
    lo_r, hi_r = radius_range
    placed: list[_PlacedLesion] = []
    for index in range(1, n_lesions + 1):
        for _ in range(_MAX_PLACEMENT_ATTEMPTS):
            base_r = rng.uniform(lo_r, hi_r)
            rz, ry, rx = (float(v) for v in np.clip(base_r * rng.uniform(0.85, 1.15, size=3), lo_r, hi_r))
            cx_l, cy_l, ax_l, ay_l = lungs[int(rng.integers(len(lungs)))]
            cz = float(rng.uniform(0.0, slices - 1))
            # Propose a centre inside the lung's cross-section shrunk by the lesion; verified exactly below.
            scale = math.sqrt(float(anatomy.lung_t[round(cz)]))
            room_x, room_y = scale * ax_l - rx - sx, scale * ay_l - ry - sy
            if room_x <= 0 or room_y <= 0:
                continue
            angle, radius = rng.uniform(0.0, 2 * math.pi), math.sqrt(rng.uniform(0.0, 1.0))
            x_mm = cx_l + radius * math.cos(angle) * room_x
            y_mm = cy_l + radius * math.sin(angle) * room_y
            center = (cz, y_mm / sy + (rows - 1) / 2.0, x_mm / sx + (columns - 1) / 2.0)

            start, sel = _ellipsoid(center, (rz / sz, ry / sy, rx / sx))
            if not sel.any():
                continue
            if min(start) < 1 or any(a + n > m - 1 for a, n, m in zip(start, sel.shape, shape, strict=True)):
                continue
            grown = _dilate(sel)
            gbox = _box((start[0] - 1, start[1] - 1, start[2] - 1), grown.shape)
            if not np.all(anatomy.labels(*gbox)[grown] == Tissue.LUNG) or np.any(mask[gbox][grown]):
                continue
            mask[_box(start, sel.shape)][sel] = index
            hu = float(rng.integers(LESION_HU_RANGE[0], LESION_HU_RANGE[1] + 1))
            placed.append(_PlacedLesion(center=center, radii_mm=(rz, ry, rx), hu=hu, start=start, sel=sel))
            break
        else:
            raise ValueError(
                f"could not place lesion {index} of {n_lesions} with radii {radius_range} mm inside the "
                "lungs; use a larger volume, finer spacing, fewer or smaller lesions"
            )
    return placed


def _render_hu(
    anatomy: AnatomyModel,
    lesions: list[_PlacedLesion],
    noise_rng: np.random.Generator,
    noise_hu: float,
) -> npt.NDArray[np.int16]:
    slices, rows, columns = anatomy.shape
    lut = np.array([TISSUE_HU[t] for t in sorted(TISSUE_HU)], dtype=np.float32)
    base_hu = lut[anatomy.base_2d]  # the anatomy without lungs is constant along z
    out = np.empty((slices, rows, columns), dtype=np.int16)
    slab = max(1, _SLAB_VOXELS // (rows * columns))
    for z0 in range(0, slices, slab):
        z1 = min(z0 + slab, slices)
        values = np.empty((z1 - z0, rows, columns), dtype=np.float32)
        values[...] = base_hu
        lung = anatomy.lung(slice(z0, z1))
        np.copyto(values, np.broadcast_to(anatomy.lung_hu_2d, values.shape), where=lung)
        for lesion in lesions:
            l0 = lesion.start[0]
            a, b = max(z0, l0), min(z1, l0 + lesion.sel.shape[0])
            if a < b:
                box = _box((a - z0, lesion.start[1], lesion.start[2]), (b - a, *lesion.sel.shape[1:]))
                values[box][lesion.sel[a - l0 : b - l0]] = np.float32(lesion.hu)
        if noise_hu > 0:
            noise = noise_rng.standard_normal(values.shape, dtype=np.float32)
            noise *= np.float32(noise_hu)
            values += noise
        np.rint(values, out=values)
        np.clip(values, _INT16_MIN, _INT16_MAX, out=values)
        out[z0:z1] = values
    return out


# --- Hard studies (issue 17) ------------------------------------------------------------------------------
HARD_LESION_KINDS = ("juxtavascular", "juxtapleural", "ground_glass", "solid")
GROUND_GLASS_HU_RANGE = (-600, -450)
VESSEL_HU = 40.0
_VESSELS_PER_LUNG = 7
_HARD_NOISE_MIN_HU = 20.0


def _segment_distance(
    points: npt.NDArray[np.float64], a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Distance (mm) of every point (..., 3) to the segment a-b (all in mm)."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    return np.asarray(np.linalg.norm(points - (a + t[..., None] * ab), axis=-1))


def _grid_mm(shape: tuple[int, int, int], spacing: Float3) -> npt.NDArray[np.float64]:
    zz, yy, xx = np.meshgrid(
        *(np.arange(n, dtype=np.float64) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij"
    )
    return np.stack([zz, yy, xx], axis=-1)


def _build_vessels(
    rng: np.random.Generator,
    anatomy: AnatomyModel,
    lungs: list[tuple[float, float, float, float]],
    spacing: Float3,
) -> tuple[npt.NDArray[np.bool_], list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]]]:
    """Vessels: straight tubes (1 to 2.2 mm radius) from each lung's hilum towards its periphery, kept inside the
    lungs. Returns the vessel voxels and the segments (start mm, end mm, radius mm) in (z, y, x) millimetres."""
    slices, rows, columns = anatomy.shape
    sz, sy, sx = spacing
    grid = _grid_mm(anatomy.shape, spacing)
    lung = anatomy.lung()
    vessels = np.zeros(anatomy.shape, dtype=bool)
    segments = []
    for cx, cy, ax, ay in lungs:
        # The hilum: the lung's medial side, at mid-height; positions relative to voxel 0 in mm.
        hx = cx - np.sign(cx) * 0.55 * ax + (columns - 1) / 2.0 * sx
        hy = cy + (rows - 1) / 2.0 * sy
        hz = (slices - 1) / 2.0 * sz
        for _ in range(_VESSELS_PER_LUNG):
            angle = rng.uniform(0.0, 2 * math.pi)
            length = rng.uniform(0.6, 1.1) * max(ax, ay)
            dz = rng.uniform(-0.6, 0.6) * slices * sz
            start = np.array([hz, hy, hx])
            end = start + np.array([dz, length * math.sin(angle), length * math.cos(angle)])
            radius = float(rng.uniform(1.0, 2.2))
            segments.append((start, end, radius))
            vessels |= _segment_distance(grid, start, end) <= radius
    vessels &= lung
    return vessels, segments


def _place_hard_lesions(
    rng: np.random.Generator,
    anatomy: AnatomyModel,
    lungs: list[tuple[float, float, float, float]],
    spacing: Float3,
    n_lesions: int,
    radius_range: tuple[float, float],
    segments: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]],
    mask: npt.NDArray[np.uint8],
) -> list[_PlacedLesion]:
    """Lesions of the hard kinds, in turn: juxtavascular (the centre a radius from a vessel's axis, so the vessel
    runs into it), juxtapleural (centred just inside the lung's edge; the pleura cuts it), ground-glass and solid
    (inside the lung). The truth is the ellipsoid's voxels that are lung; lesions never touch each other."""
    shape = anatomy.shape
    slices, rows, columns = shape
    sz, sy, sx = spacing
    lo_r, hi_r = radius_range
    lung = anatomy.lung()
    placed: list[_PlacedLesion] = []
    for index in range(1, n_lesions + 1):
        kind = HARD_LESION_KINDS[(index - 1) % len(HARD_LESION_KINDS)]
        for _ in range(_MAX_PLACEMENT_ATTEMPTS):
            base_r = rng.uniform(lo_r, hi_r)
            rz, ry, rx = (float(v) for v in np.clip(base_r * rng.uniform(0.85, 1.15, size=3), lo_r, hi_r))
            if kind == "juxtavascular" and segments:
                a, b, vessel_r = segments[int(rng.integers(len(segments)))]
                point = a + rng.uniform(0.3, 0.9) * (b - a)
                offset = rng.standard_normal(3)
                offset -= (offset @ (b - a)) / max(float((b - a) @ (b - a)), 1e-9) * (b - a)
                offset /= max(float(np.linalg.norm(offset)), 1e-9)
                centre_mm = point + offset * (0.7 * base_r + 0.5 * vessel_r)
                center = (centre_mm[0] / sz, centre_mm[1] / sy, centre_mm[2] / sx)
            else:
                cx_l, cy_l, ax_l, ay_l = lungs[int(rng.integers(len(lungs)))]
                cz = float(rng.uniform(0.0, slices - 1))
                scale = math.sqrt(float(anatomy.lung_t[round(cz)]))
                angle = rng.uniform(0.0, 2 * math.pi)
                if kind == "juxtapleural":
                    # On the lung's outline, moved inwards by half a radius: the pleura cuts the nodule.
                    radius = max(0.0, 1.0 - 0.5 * base_r / max(min(scale * ax_l, scale * ay_l), 1e-9))
                    room_x, room_y = scale * ax_l, scale * ay_l
                else:
                    radius = math.sqrt(rng.uniform(0.0, 1.0))
                    room_x, room_y = scale * ax_l - rx - sx, scale * ay_l - ry - sy
                if room_x <= 0 or room_y <= 0:
                    continue
                x_mm = cx_l + radius * math.cos(angle) * room_x
                y_mm = cy_l + radius * math.sin(angle) * room_y
                center = (cz, y_mm / sy + (rows - 1) / 2.0, x_mm / sx + (columns - 1) / 2.0)
            start, sel = _ellipsoid(center, (rz / sz, ry / sy, rx / sx))
            if not sel.any():
                continue
            if min(start) < 1 or any(a0 + n > m - 1 for a0, n, m in zip(start, sel.shape, shape, strict=True)):
                continue
            box = _box(start, sel.shape)
            inside = sel & lung[box]
            # Most of a nodule is in lung (a juxtapleural one loses its outer part to the chest wall).
            if inside.sum() < (0.55 if kind == "juxtapleural" else 0.97) * sel.sum() or inside.sum() < 8:
                continue
            if kind == "juxtapleural" and inside.sum() > 0.9 * sel.sum():
                continue  # not touching the pleura after all
            grown = _dilate(inside)
            gbox = _box((start[0] - 1, start[1] - 1, start[2] - 1), grown.shape)
            if np.any(mask[gbox][grown]):
                continue
            mask[box][inside] = index
            if kind == "ground_glass":
                hu = float(rng.integers(GROUND_GLASS_HU_RANGE[0], GROUND_GLASS_HU_RANGE[1] + 1))
            else:
                hu = float(rng.integers(LESION_HU_RANGE[0], LESION_HU_RANGE[1] + 1))
            placed.append(
                _PlacedLesion(center=center, radii_mm=(rz, ry, rx), hu=hu, start=start, sel=inside, kind=kind)
            )
            break
        else:
            raise ValueError(
                f"could not place {kind} lesion {index} of {n_lesions} with radii {radius_range} mm; use a larger "
                "volume, finer spacing, fewer or smaller lesions"
            )
    return placed


def _smooth(values: npt.NDArray[np.float32], sigma_vox: Float3) -> npt.NDArray[np.float32]:
    """Separable gaussian smoothing (numpy only; edges repeat the border value)."""
    out = values
    for axis, sigma in enumerate(sigma_vox):
        if sigma <= 0:
            continue
        half = max(1, math.ceil(3 * sigma))
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2).astype(np.float32)
        kernel /= kernel.sum()
        pad = [(0, 0)] * out.ndim
        pad[axis] = (half, half)
        padded = np.pad(out, pad, mode="edge")
        acc = np.zeros_like(out)
        for k, w in enumerate(kernel):
            index = [slice(None)] * out.ndim
            index[axis] = slice(k, k + out.shape[axis])
            acc += w * padded[tuple(index)]
        out = acc
    return out


def _render_hard_hu(
    anatomy: AnatomyModel,
    lesions: list[_PlacedLesion],
    vessels: npt.NDArray[np.bool_],
    noise_rng: np.random.Generator,
    noise_hu: float,
    spacing: Float3,
) -> npt.NDArray[np.int16]:
    """The hard study's image: anatomy, vessels, lesions (ground-glass ones with a faint texture), a blur of about
    0.7 mm (partial volume at every edge) and correlated noise of standard deviation ``noise_hu``."""
    lut = np.array([TISSUE_HU[t] for t in sorted(TISSUE_HU)], dtype=np.float32)
    values = lut[anatomy.labels()].astype(np.float32)
    lung = anatomy.lung()
    np.copyto(values, np.broadcast_to(anatomy.lung_hu_2d, values.shape), where=lung)
    values[vessels] = np.float32(VESSEL_HU)
    for lesion in lesions:
        box = _box(lesion.start, lesion.sel.shape)
        region = values[box]
        if lesion.kind == "ground_glass":
            texture = noise_rng.normal(0.0, 40.0, size=lesion.sel.shape).astype(np.float32)
            region[lesion.sel] = np.float32(lesion.hu) + texture[lesion.sel]
        else:
            region[lesion.sel] = np.float32(lesion.hu)
    sigma = tuple(0.7 / s for s in spacing)
    values = _smooth(values, (sigma[0], sigma[1], sigma[2]))
    if noise_hu > 0:
        white = noise_rng.standard_normal(values.shape, dtype=np.float32)
        correlated = _smooth(white, (0.0, 0.9, 0.9))
        correlated *= np.float32(noise_hu / max(float(correlated.std()), 1e-6))
        values += correlated
    np.rint(values, out=values)
    np.clip(values, _INT16_MIN, _INT16_MAX, out=values)
    return values.astype(np.int16)


def _metadata_rng_values(seed: int) -> dict[str, str]:
    """Patient identity, dates and times: functions of the seed alone."""
    rng = np.random.default_rng([seed, 0])
    study_day = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3650)))
    seconds = int(rng.integers(7 * 3600, 19 * 3600))
    age = int(rng.integers(30, 86))
    birth_day = study_day - dt.timedelta(days=age * 365 + int(rng.integers(0, 365)))
    sex = "F" if rng.integers(0, 2) else "M"
    digest = hashlib.sha256(f"synthetic-ct:{seed}".encode()).hexdigest()
    return {
        "study_date": study_day.strftime("%Y%m%d"),
        "study_time": f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        "birth_date": birth_day.strftime("%Y%m%d"),
        "sex": sex,
        "accession": f"SYN{int(digest[:12], 16) % 10**12:012d}",
    }


def generate_ct_study(
    *,
    seed: int,
    rows: int = 128,
    columns: int = 128,
    slices: int = 32,
    pixel_spacing: tuple[float, float] = (0.8, 0.8),
    slice_spacing: float = 1.5,
    n_lesions: int = 2,
    lesion_radius_mm: tuple[float, float] = (4.0, 10.0),
    patient_id: str | None = None,
    noise_hu: float = 12.0,
    difficulty: str = "standard",
) -> SyntheticStudy:
    """Generate a synthetic chest CT study, fully determined by the arguments.

    ``difficulty="hard"`` adds vessels, juxtavascular, juxtapleural and ground-glass nodules and correlated noise
    (at least 20 HU); see the module's docstring.

    Raises ``ValueError`` for invalid arguments or when the lesions do not fit inside the lungs.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if rows < 16 or columns < 16 or slices < 1:
        raise ValueError("need at least 16 rows, 16 columns and 1 slice")
    if min(pixel_spacing) <= 0 or slice_spacing <= 0:
        raise ValueError("spacings must be positive")
    if not 0 <= n_lesions <= 255:
        raise ValueError("n_lesions must be between 0 and 255")
    if not 0 < lesion_radius_mm[0] <= lesion_radius_mm[1]:
        raise ValueError("lesion_radius_mm must be (min, max) with 0 < min <= max")
    if noise_hu < 0:
        raise ValueError("noise_hu must not be negative")
    if difficulty not in ("standard", "hard"):
        raise ValueError("difficulty must be 'standard' or 'hard'")

    shape = (slices, rows, columns)
    row_spacing, column_spacing = float(pixel_spacing[0]), float(pixel_spacing[1])
    spacing = (float(slice_spacing), row_spacing, column_spacing)

    anatomy, lungs = _build_anatomy(np.random.default_rng([seed, 1]), shape, spacing)
    mask = np.zeros(shape, dtype=np.uint8)
    radius_range = (float(lesion_radius_mm[0]), float(lesion_radius_mm[1]))
    if difficulty == "hard":
        vessels, segments = _build_vessels(np.random.default_rng([seed, 4]), anatomy, lungs, spacing)
        placed = _place_hard_lesions(
            np.random.default_rng([seed, 2]), anatomy, lungs, spacing, n_lesions, radius_range, segments, mask
        )
        hu = _render_hard_hu(
            anatomy,
            placed,
            vessels,
            np.random.default_rng([seed, 3]),
            max(float(noise_hu), _HARD_NOISE_MIN_HU),
            spacing,
        )
    else:
        placed = _place_lesions(
            np.random.default_rng([seed, 2]), anatomy, lungs, spacing, n_lesions, radius_range, mask
        )
        hu = _render_hu(anatomy, placed, np.random.default_rng([seed, 3]), float(noise_hu))

    meta = _metadata_rng_values(seed)
    pid = patient_id if patient_id is not None else f"SYN{seed:08d}"
    params = [
        "synthetic-ct",
        GENERATOR_VERSION,
        str(seed),
        pid,
        repr(shape),
        repr((row_spacing, column_spacing, float(slice_spacing))),
        repr((n_lesions, float(lesion_radius_mm[0]), float(lesion_radius_mm[1]), float(noise_hu))),
    ]
    if difficulty != "standard":
        params.append(f"difficulty={difficulty}")  # only then: the standard studies keep their UIDs
    study_uid = str(generate_uid(entropy_srcs=[*params, "study"]))
    series_uid = str(generate_uid(entropy_srcs=[*params, "series"]))
    frame_uid = str(generate_uid(entropy_srcs=[*params, "frame-of-reference"]))

    # Origin: the image centre on the z axis, the volume centred on z = 0; rounded so that the values
    # written as Decimal Strings are exact.
    origin = (
        round(-(columns - 1) / 2.0 * column_spacing, 4),
        round(-(rows - 1) / 2.0 * row_spacing, 4),
        round(-(slices - 1) / 2.0 * slice_spacing, 4),
    )

    voxel_volume = spacing[0] * spacing[1] * spacing[2]
    lesions: list[SyntheticLesion] = []
    for index, lesion in enumerate(placed, start=1):
        cz, cy, cx = lesion.center
        nz, ny, nx = np.nonzero(lesion.sel)
        z0, y0, x0 = lesion.start
        lesions.append(
            SyntheticLesion(
                index=index,
                label=LESION_LABEL,
                center_voxel=lesion.center,
                radii_mm=lesion.radii_mm,
                center_mm=(
                    origin[0] + cx * column_spacing,
                    origin[1] + cy * row_spacing,
                    origin[2] + cz * slice_spacing,
                ),
                bbox_voxel=(
                    z0 + int(nz.min()),
                    y0 + int(ny.min()),
                    x0 + int(nx.min()),
                    z0 + int(nz.max()) + 1,
                    y0 + int(ny.max()) + 1,
                    x0 + int(nx.max()) + 1,
                ),
                hu=lesion.hu,
                volume_mm3=int(nz.size) * voxel_volume,
                kind=lesion.kind,
            )
        )

    return SyntheticStudy(
        patient_id=pid,
        patient_name=f"SYNTHETIC^PATIENT {seed}",
        patient_birth_date=meta["birth_date"],
        patient_sex=meta["sex"],
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=frame_uid,
        accession_number=meta["accession"],
        study_date=meta["study_date"],
        study_description="Synthetic CT CHEST",
        series_description=f"Synthetic axial {_ds(slice_spacing)}mm" + (" hard" if difficulty == "hard" else ""),
        pixel_spacing=(row_spacing, column_spacing),
        slice_spacing=float(slice_spacing),
        origin_mm=origin,
        hu=hu,
        mask=mask,
        lesions=lesions,
        study_time=meta["study_time"],
        seed=seed,
        anatomy=anatomy,
    )
