"""Tests of the synthetic CT study generator (pure numpy/pydicom; no database, no Django)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.pixels.processing import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian

from imaging.synthetic import (
    CT_IMAGE_STORAGE,
    TISSUE_HU,
    SyntheticStudy,
    Tissue,
    generate_ct_study,
)
from tests.dciodvfy import assert_valid_dicom

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

# Default geometry, and an anisotropic, non-square one with coarser slices.
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "anisotropic": {
        "rows": 112,
        "columns": 144,
        "slices": 24,
        "pixel_spacing": (0.9, 0.7),
        "slice_spacing": 2.5,
        "n_lesions": 3,
        "lesion_radius_mm": (3.0, 7.0),
    },
}


@pytest.fixture(scope="module")
def study() -> SyntheticStudy:
    return generate_ct_study(seed=42)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def any_study(request: pytest.FixtureRequest) -> tuple[str, SyntheticStudy]:
    return request.param, generate_ct_study(seed=7, **CONFIGS[request.param])


def _dilate(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """3x3x3 dilation, written independently of the module's own."""
    out = mask.copy()
    padded = np.pad(mask, 1)
    nz, ny, nx = mask.shape
    for dz in range(3):
        for dy in range(3):
            for dx in range(3):
                out |= padded[dz : dz + nz, dy : dy + ny, dx : dx + nx]
    return out


def _ellipsoid_mask(study: SyntheticStudy, index: int) -> npt.NDArray[np.bool_]:
    lesion = study.lesions[index - 1]
    spacing = (study.slice_spacing, *study.pixel_spacing)
    terms = [
        ((np.arange(n, dtype=np.float64) - c) / (r / s)) ** 2
        for n, c, r, s in zip(study.hu.shape, lesion.center_voxel, lesion.radii_mm, spacing, strict=True)
    ]
    gz, gy, gx = terms
    return (gz[:, None, None] + gy[None, :, None] + gx[None, None, :]) <= 1.0


# --- reproducibility -------------------------------------------------------------------------------------


def test_same_seed_gives_identical_arrays_and_bytes(tmp_path: Path) -> None:
    a = generate_ct_study(seed=5, slices=12, n_lesions=1, lesion_radius_mm=(3.0, 5.0))
    b = generate_ct_study(seed=5, slices=12, n_lesions=1, lesion_radius_mm=(3.0, 5.0))
    assert np.array_equal(a.hu, b.hu)
    assert np.array_equal(a.mask, b.mask)
    assert a.lesions == b.lesions
    assert (a.study_uid, a.series_uid, a.frame_of_reference_uid) == (
        b.study_uid,
        b.series_uid,
        b.frame_of_reference_uid,
    )
    assert a.sop_instance_uids() == b.sop_instance_uids()
    paths_a = a.write(tmp_path / "a")
    paths_b = b.write(tmp_path / "b")
    assert len(paths_a) == len(paths_b) == 12
    for pa, pb in zip(paths_a, paths_b, strict=True):
        assert pa.relative_to(tmp_path / "a") == pb.relative_to(tmp_path / "b")
        assert pa.read_bytes() == pb.read_bytes()


def test_different_seeds_give_different_studies(study: SyntheticStudy) -> None:
    other = generate_ct_study(seed=43)
    assert other.patient_id != study.patient_id
    assert other.patient_name != study.patient_name
    assert other.accession_number != study.accession_number
    for attr in ("study_uid", "series_uid", "frame_of_reference_uid"):
        assert getattr(other, attr) != getattr(study, attr)
    assert not set(other.sop_instance_uids()) & set(study.sop_instance_uids())
    assert not np.array_equal(other.hu, study.hu)


def test_parameters_change_uids_but_not_patient() -> None:
    a = generate_ct_study(seed=9, slices=16, n_lesions=1)
    b = generate_ct_study(seed=9, slices=20, n_lesions=1)
    assert a.patient_id == b.patient_id
    assert a.patient_birth_date == b.patient_birth_date
    assert a.study_uid != b.study_uid
    assert a.series_uid != b.series_uid


def test_explicit_patient_id() -> None:
    s = generate_ct_study(seed=3, slices=12, n_lesions=0, patient_id="PAT-001")
    assert s.patient_id == "PAT-001"
    assert next(s.datasets()).PatientID == "PAT-001"


def test_uids_and_identity_are_well_formed(study: SyntheticStudy) -> None:
    sop_uids = study.sop_instance_uids()
    uids = [study.study_uid, study.series_uid, study.frame_of_reference_uid, *sop_uids]
    for uid in uids:
        assert len(uid) <= 64 and UID_RE.match(uid), uid
    assert len(set(uids)) == len(uids)
    assert len(sop_uids) == study.hu.shape[0]
    assert re.fullmatch(r"\d{8}", study.study_date)
    assert re.fullmatch(r"\d{8}", study.patient_birth_date)
    assert study.patient_birth_date < study.study_date
    assert re.fullmatch(r"\d{6}", study.study_time)
    assert study.patient_sex in {"M", "F"}
    assert 0 < len(study.accession_number) <= 16


# --- DICOM header and geometry ---------------------------------------------------------------------------


def test_dataset_tags(study: SyntheticStudy) -> None:
    datasets = list(study.datasets())
    slices, rows, columns = study.hu.shape
    assert len(datasets) == slices
    sop_uids = study.sop_instance_uids()
    for k, ds in enumerate(datasets):
        meta = ds.file_meta
        assert meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == sop_uids[k]
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.ImplementationClassUID
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert ds.Modality == "CT"
        assert ds.StudyInstanceUID == study.study_uid
        assert ds.SeriesInstanceUID == study.series_uid
        assert ds.FrameOfReferenceUID == study.frame_of_reference_uid
        assert str(ds.PatientName) == study.patient_name
        assert ds.PatientID == study.patient_id
        assert ds.PatientBirthDate == study.patient_birth_date
        assert ds.PatientSex == study.patient_sex
        assert ds.StudyDate == ds.SeriesDate == study.study_date
        assert ds.StudyTime == study.study_time
        assert ds.AccessionNumber == study.accession_number
        assert ds.StudyID
        assert ds.StudyDescription == study.study_description
        assert ds.SeriesDescription == study.series_description
        assert ds.SeriesNumber == 1
        assert ds.InstanceNumber == k + 1
        assert (ds.Rows, ds.Columns) == (rows, columns)
        assert ds.SamplesPerPixel == 1
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 1)
        assert (float(ds.RescaleIntercept), float(ds.RescaleSlope), ds.RescaleType) == (0.0, 1.0, "HU")
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (-600.0, 1500.0)
        assert ds.BodyPartExamined == "CHEST"
        assert ds.Manufacturer == "Synthetic"
        assert float(ds.KVP) > 0
        assert len(ds.PixelData) == rows * columns * 2


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_geometry_tags(config: str) -> None:
    s = generate_ct_study(seed=21, **CONFIGS[config])
    slices, rows, columns = s.hu.shape
    datasets = list(s.datasets())
    orientation = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    assert orientation.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    assert positions[0] == pytest.approx(s.origin_mm)
    distances = (positions - positions[0]) @ normal
    assert distances == pytest.approx(np.arange(slices) * s.slice_spacing, abs=1e-6)
    assert np.allclose(positions[:, :2], positions[0, :2])
    # The origin centres the image on the z axis.
    row_spacing, column_spacing = s.pixel_spacing
    assert positions[0, 0] + (columns - 1) / 2 * column_spacing == pytest.approx(0.0, abs=1e-6)
    assert positions[0, 1] + (rows - 1) / 2 * row_spacing == pytest.approx(0.0, abs=1e-6)
    for ds, position in zip(datasets, positions, strict=True):
        assert [float(v) for v in ds.ImageOrientationPatient] == orientation.tolist()
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx(list(s.pixel_spacing))
        assert float(ds.SliceThickness) == pytest.approx(s.slice_spacing)
        assert float(ds.SliceLocation) == pytest.approx(position[2])
    assert np.allclose(np.array(s.slice_positions()), positions)


def test_written_files_round_trip_pixels(tmp_path: Path) -> None:
    s = generate_ct_study(seed=8, **CONFIGS["anisotropic"])
    paths = s.write(tmp_path)
    assert [p.name for p in paths] == [f"{k:04d}.dcm" for k in range(s.hu.shape[0])]
    assert all(p.parent == tmp_path / s.series_uid for p in paths)
    for k, path in enumerate(paths):
        raw = path.read_bytes()
        assert raw[:128] == b"\x00" * 128 and raw[128:132] == b"DICM"
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        pixels = ds.pixel_array
        assert pixels.dtype == np.int16
        assert np.array_equal(pixels, s.hu[k])
        assert np.array_equal(apply_modality_lut(pixels, ds), s.hu[k])
        assert ds.InstanceNumber == k + 1


def test_datasets_are_ready_for_plain_dcmwrite(tmp_path: Path) -> None:
    s = generate_ct_study(seed=6, slices=8, n_lesions=1, lesion_radius_mm=(2.0, 3.0))
    written = s.write(tmp_path / "written")
    for k, ds in enumerate(s.datasets()):
        path = tmp_path / f"plain{k}.dcm"
        pydicom.dcmwrite(path, ds)
        assert path.read_bytes() == written[k].read_bytes()
        meta = pydicom.dcmread(path).file_meta
        assert meta.FileMetaInformationGroupLength > 0


def test_synthetic_ct_images_pass_the_standards_checker(tmp_path: Path) -> None:
    """The demo's and the tests' CT images are written by the platform: dciodvfy finds no error in them."""
    s = generate_ct_study(seed=7, slices=4, n_lesions=1, lesion_radius_mm=(2.0, 3.0))
    for path in s.write(tmp_path)[:2]:
        assert_valid_dicom(path.read_bytes(), path.name)


# --- ground truth ----------------------------------------------------------------------------------------


def test_lesion_ground_truth_matches_mask(any_study: tuple[str, SyntheticStudy]) -> None:
    config, s = any_study
    n = len(s.lesions)
    assert n > 0
    assert s.mask.dtype == np.uint8 and s.mask.shape == s.hu.shape and s.hu.dtype == np.int16
    assert set(np.unique(s.mask).tolist()) == set(range(n + 1))
    voxel_volume = s.slice_spacing * s.pixel_spacing[0] * s.pixel_spacing[1]
    assert n == CONFIGS[config].get("n_lesions", 2)
    lo_r, hi_r = CONFIGS[config].get("lesion_radius_mm", (4.0, 10.0))
    for k, lesion in enumerate(s.lesions, start=1):
        assert lesion.index == k and lesion.label == "nodule"
        sel = s.mask == k
        zz, yy, xx = np.nonzero(sel)
        assert lesion.bbox_voxel == (
            zz.min(),
            yy.min(),
            xx.min(),
            zz.max() + 1,
            yy.max() + 1,
            xx.max() + 1,
        )
        assert lesion.volume_mm3 == pytest.approx(sel.sum() * voxel_volume)
        # The mask of each lesion is exactly its ellipsoid: nothing truncated or overwritten.
        assert np.array_equal(sel, _ellipsoid_mask(s, k))
        assert all(lo_r <= r <= hi_r for r in lesion.radii_mm)
        z0, y0, x0, z1, y1, x1 = lesion.bbox_voxel
        cz, cy, cx = lesion.center_voxel
        assert z0 <= cz < z1 and y0 <= cy < y1 and x0 <= cx < x1
        expected_mm = (
            s.origin_mm[0] + cx * s.pixel_spacing[1],
            s.origin_mm[1] + cy * s.pixel_spacing[0],
            s.origin_mm[2] + cz * s.slice_spacing,
        )
        assert lesion.center_mm == pytest.approx(expected_mm)
        assert 20 <= lesion.hu <= 60
        # The volume is close to the analytic ellipsoid volume.
        analytic = 4 / 3 * np.pi * np.prod(lesion.radii_mm)
        assert lesion.volume_mm3 == pytest.approx(analytic, rel=0.35)


def test_lesions_inside_lungs_and_not_touching(any_study: tuple[str, SyntheticStudy]) -> None:
    _, s = any_study
    labels = s.tissue_labels()
    assert labels.shape == s.hu.shape
    for lesion in s.lesions:
        grown = _dilate(s.mask == lesion.index)
        # The lesion and a one-voxel shell around it are lung (lesion voxels carry the lung label too).
        assert np.all(labels[grown] == Tissue.LUNG)
        others = s.mask[grown]
        assert set(np.unique(others).tolist()) <= {0, lesion.index}
        z0, _, _, z1, _, _ = lesion.bbox_voxel
        assert 0 < z0 and z1 < s.hu.shape[0]


def test_anatomy_layout(study: SyntheticStudy) -> None:
    labels = study.tissue_labels()
    slices, rows, columns = labels.shape
    for k in range(slices):
        present = set(np.unique(labels[k]).tolist())
        assert {Tissue.AIR, Tissue.FAT, Tissue.SOFT_TISSUE, Tissue.BONE} <= present
    # Corners are air; two lungs, one on each side of the midline; the spine is posterior (larger row).
    assert np.all(labels[:, 0, 0] == Tissue.AIR) and np.all(labels[:, -1, -1] == Tissue.AIR)
    mid = slices // 2
    lung_cols = np.nonzero((labels[mid] == Tissue.LUNG).any(axis=0))[0]
    assert lung_cols.min() < columns / 2 < lung_cols.max()
    assert not (labels[mid][:, columns // 2] == Tissue.LUNG).any()
    bone_rows, bone_cols = np.nonzero(labels[mid] == Tissue.BONE)
    lung_rows, _ = np.nonzero(labels[mid] == Tissue.LUNG)
    assert bone_rows.mean() > lung_rows.mean() + 0.1 * rows
    left_lung_edge = lung_cols[lung_cols < columns / 2].max()
    right_lung_edge = lung_cols[lung_cols > columns / 2].min()
    assert left_lung_edge < bone_cols.min() and bone_cols.max() < right_lung_edge
    # Lungs taper: the middle of the stack has more lung than its ends.
    lung_area = (labels == Tissue.LUNG).sum(axis=(1, 2))
    assert lung_area.max() > lung_area[0] and lung_area.max() > lung_area[-1]


def test_hu_ranges(any_study: tuple[str, SyntheticStudy]) -> None:
    _, s = any_study
    labels = s.tissue_labels()
    background = s.mask == 0
    hu = s.hu.astype(np.float64)
    for tissue, nominal in TISSUE_HU.items():
        sel = (labels == tissue) & background
        assert sel.any(), tissue
        tol = 30.0 if tissue == Tissue.LUNG else 3.0
        assert hu[sel].mean() == pytest.approx(nominal, abs=tol), tissue
    air = hu[(labels == Tissue.AIR) & background]
    assert air.std() == pytest.approx(12.0, rel=0.05)
    lung = hu[(labels == Tissue.LUNG) & background]
    assert -950 < np.percentile(lung, 1) and np.percentile(lung, 99) < -750
    for lesion in s.lesions:
        values = hu[s.mask == lesion.index]
        assert values.mean() == pytest.approx(lesion.hu, abs=4 * 12.0 / np.sqrt(values.size) + 0.5)
        assert -40 < np.percentile(values, 1) and np.percentile(values, 99) < 120


def test_noise_free_image_is_piecewise_constant() -> None:
    s = generate_ct_study(seed=4, noise_hu=0.0)
    labels = s.tissue_labels()
    background = s.mask == 0
    for tissue in (Tissue.AIR, Tissue.FAT, Tissue.SOFT_TISSUE, Tissue.BONE):
        assert np.all(s.hu[(labels == tissue) & background] == TISSUE_HU[tissue])
    lung = s.hu[(labels == Tissue.LUNG) & background]
    assert lung.min() >= -880 and lung.max() <= -820
    for lesion in s.lesions:
        assert np.all(s.hu[s.mask == lesion.index] == lesion.hu)


def test_lesion_count_options() -> None:
    none = generate_ct_study(seed=10, slices=16, n_lesions=0)
    assert none.lesions == [] and not none.mask.any()
    many = generate_ct_study(seed=10, n_lesions=6, lesion_radius_mm=(2.0, 4.0))
    assert [lesion.index for lesion in many.lesions] == list(range(1, 7))
    assert int(many.mask.max()) == 6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": -1},
        {"seed": 1, "rows": 8},
        {"seed": 1, "slices": 0},
        {"seed": 1, "pixel_spacing": (0.0, 0.8)},
        {"seed": 1, "slice_spacing": -1.0},
        {"seed": 1, "n_lesions": 256},
        {"seed": 1, "lesion_radius_mm": (5.0, 4.0)},
        {"seed": 1, "noise_hu": -1.0},
        {"seed": 1, "lesion_radius_mm": (40.0, 50.0)},  # cannot fit in the lungs
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate_ct_study(**kwargs)
