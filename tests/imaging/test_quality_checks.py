"""Data-quality checks: broken synthetic series are flagged after ingest, clean ones pass; check_series on
hand-made slice lists; the series API shows the result."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, JPEG2000MCLossless, generate_uid

from annotation.models import Project, Role
from imaging import dicom
from imaging.models import Instance, Series
from imaging.quality import FAILED, OK, WARNING, SliceInfo, check_series
from imaging.services.ingest import STORED, IncomingFile, IngestReport, ingest_files
from imaging.synthetic import SyntheticStudy, generate_ct_study
from tests.conftest import dataset_bytes

UPLOAD_URL = "/api/v1/imaging/uploads/"
# JPEG 2000 Part 2 multi-component: a real image compression for which no pixel data decoder is installed.
UNDECODABLE_SYNTAX = JPEG2000MCLossless


@pytest.fixture(scope="module")
def study() -> SyntheticStudy:
    return generate_ct_study(seed=21, rows=32, columns=32, slices=8, n_lesions=0)


def slices_of(study: SyntheticStudy) -> list[Dataset]:
    return list(study.datasets())


def as_new_instance(ds: Dataset) -> Dataset:
    """A copy of a slice with its own SOP Instance UID."""
    clone = copy.deepcopy(ds)
    clone.SOPInstanceUID = generate_uid()
    clone.file_meta.MediaStorageSOPInstanceUID = clone.SOPInstanceUID
    return clone


def make_undecodable(ds: Dataset) -> Dataset:
    """Encapsulate the slice's pixels under a transfer syntax that no installed plugin decodes."""
    assert not dicom._decoder_available(UID(UNDECODABLE_SYNTAX)), "a decoder appeared: pick another syntax"
    ds = copy.deepcopy(ds)
    ds.file_meta.TransferSyntaxUID = UNDECODABLE_SYNTAX
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def ingest(datasets: list[Dataset]) -> IngestReport:
    report = ingest_files([IncomingFile(f"{k:02d}.dcm", dataset_bytes(ds)) for k, ds in enumerate(datasets)])
    assert [f.status for f in report.files] == [STORED] * len(datasets), [f.reason for f in report.files]
    return report


def checks_named(series: Series, name: str) -> list[dict[str, str]]:
    return [c for c in series.quality_checks if c["check"] == name]


def the_series(study: SyntheticStudy) -> Series:
    return Series.objects.get(series_instance_uid=study.series_uid)


# --- Broken synthetic series, through the ingest service ---------------------------------------------------


@pytest.mark.django_db
def test_clean_synthetic_series_is_ok(study: SyntheticStudy) -> None:
    ingest(slices_of(study))
    series = the_series(study)

    assert series.quality == Series.Quality.OK
    assert series.is_flagged is False
    assert {c["status"] for c in series.quality_checks} == {OK}
    assert {c["check"] for c in series.quality_checks} >= {
        "dimensions",
        "pixel_data",
        "frames",
        "pixel_spacing",
        "orientation",
        "slice_positions",
        "slice_spacing",
    }
    assert series.quality_checked_at is not None
    assert series.slice_spacing == pytest.approx(study.slice_spacing)


@pytest.mark.django_db
def test_missing_middle_slice_fails_slice_spacing(study: SyntheticStudy) -> None:
    datasets = slices_of(study)
    del datasets[4]
    ingest(datasets)
    series = the_series(study)

    assert series.quality == Series.Quality.FAILED
    assert series.is_flagged is True
    [spacing] = checks_named(series, "slice_spacing")
    assert spacing["status"] == FAILED
    assert "Missing slices" in spacing["message"]
    assert series.number_of_slices == 7
    # The median spacing is still the true one.
    assert series.slice_spacing == pytest.approx(study.slice_spacing)


@pytest.mark.django_db
def test_duplicated_slice_position_fails(study: SyntheticStudy) -> None:
    datasets = slices_of(study)
    datasets.append(as_new_instance(datasets[3]))
    ingest(datasets)
    series = the_series(study)

    assert series.quality == Series.Quality.FAILED
    [positions] = checks_named(series, "slice_positions")
    assert positions["status"] == FAILED
    assert "duplicated slice position" in positions["message"]
    assert Instance.objects.filter(series=series).count() == 9


@pytest.mark.django_db
def test_inconsistent_slice_spacing_fails(study: SyntheticStudy) -> None:
    datasets = slices_of(study)
    # Irregular steps (1.5, 1.7, 1.3, 1.6, 1.4, 1.3, 1.7 mm): no gap big enough to be a missing slice.
    offsets = [0.0, 1.5, 3.2, 4.5, 6.1, 7.5, 8.8, 10.5]
    x, y, z0 = study.origin_mm
    for ds, offset in zip(datasets, offsets, strict=True):
        ds.ImagePositionPatient = [x, y, z0 + offset]
    ingest(datasets)
    series = the_series(study)

    assert series.quality == Series.Quality.FAILED
    [spacing] = checks_named(series, "slice_spacing")
    assert spacing["status"] == FAILED
    assert "Inconsistent slice spacing" in spacing["message"]
    assert "Missing slices" not in spacing["message"]


@pytest.mark.django_db
def test_inconsistent_orientation_fails(study: SyntheticStudy) -> None:
    datasets = slices_of(study)
    datasets[5].ImageOrientationPatient = [1, 0, 0, 0, 0.980067, 0.198669]  # tilted by ~11 degrees
    ingest(datasets)
    series = the_series(study)

    assert series.quality == Series.Quality.FAILED
    [orientation] = checks_named(series, "orientation")
    assert orientation["status"] == FAILED
    assert "orientation differs" in orientation["message"]


@pytest.mark.django_db
def test_mixed_dimensions_fail(study: SyntheticStudy) -> None:
    datasets = slices_of(study)
    odd = datasets[2]
    odd.Rows, odd.Columns = 16, 24
    odd.PixelData = study.hu[2][:16, :24].astype("<i2").tobytes()
    ingest(datasets)
    series = the_series(study)

    assert series.quality == Series.Quality.FAILED
    [dimensions] = checks_named(series, "dimensions")
    assert dimensions["status"] == FAILED
    assert "Mixed image dimensions" in dimensions["message"]
    assert "16x24 (1)" in dimensions["message"]
    assert (series.rows, series.columns) == (32, 32)  # the majority


@pytest.mark.django_db
def test_mixed_multiframe_and_single_frame_fail(study: SyntheticStudy) -> None:
    datasets = slices_of(study)
    multi = as_new_instance(datasets[0])
    multi.NumberOfFrames = 2
    multi.PixelData = study.hu[:2].astype("<i2").tobytes()
    datasets.append(multi)
    ingest(datasets)
    series = the_series(study)

    assert series.quality == Series.Quality.FAILED
    [frames] = checks_named(series, "frames")
    assert frames["status"] == FAILED
    assert "1 multi-frame and 8 single-frame" in frames["message"]
    assert series.is_multiframe is True
    assert series.number_of_slices == 10


@pytest.mark.django_db
def test_undecodable_pixel_data_is_stored_flagged_and_fails_pixel_data(
    study: SyntheticStudy, isolated_storage: Path
) -> None:
    datasets = slices_of(study)
    datasets[6] = make_undecodable(datasets[6])
    report = ingest(datasets)

    assert len(report.files[6].warnings) == 1
    assert "cannot be decoded" in report.files[6].warnings[0]
    assert all(not f.warnings for i, f in enumerate(report.files) if i != 6)
    instance = Instance.objects.get(sop_instance_uid=datasets[6].SOPInstanceUID)
    assert instance.is_decodable is False
    assert instance.is_encapsulated is True
    assert instance.transfer_syntax_uid == UNDECODABLE_SYNTAX
    assert (isolated_storage / instance.file).is_file()
    series = the_series(study)
    assert series.quality == Series.Quality.FAILED
    [pixel_data] = checks_named(series, "pixel_data")
    assert pixel_data["status"] == FAILED
    assert UNDECODABLE_SYNTAX in pixel_data["message"]
    assert "1 image(s)" in pixel_data["message"]


# --- Through the upload API and the series API -------------------------------------------------------


def upload(client: Client, datasets: list[Dataset]) -> Any:
    files = [SimpleUploadedFile(f"{k:02d}.dcm", dataset_bytes(ds)) for k, ds in enumerate(datasets)]
    return client.post(UPLOAD_URL, {"project": "chest", "files": files})


@pytest.mark.django_db
def test_upload_report_warns_about_undecodable_instance(manager_client: Client, study: SyntheticStudy) -> None:
    datasets = slices_of(study)
    datasets[0] = make_undecodable(datasets[0])

    response = upload(manager_client, datasets)

    assert response.status_code == 201
    files = response.json()["files"]
    assert [f["status"] for f in files] == ["stored"] * 8
    assert "cannot be decoded" in files[0]["warnings"][0]
    assert "warnings" not in files[1]
    assert the_series(study).quality == Series.Quality.FAILED


@pytest.mark.django_db
def test_series_api_shows_quality_and_checks(manager_client: Client, study: SyntheticStudy) -> None:
    datasets = slices_of(study)
    del datasets[3]
    assert upload(manager_client, datasets).status_code == 201

    response = manager_client.get(f"/api/v1/imaging/series/{study.series_uid}/")

    assert response.status_code == 200
    body = response.json()
    assert body["quality"] == "failed"
    assert body["is_flagged"] is True
    failed = [c for c in body["quality_checks"] if c["status"] == "failed"]
    assert [c["check"] for c in failed] == ["slice_spacing"]
    assert "Missing slices" in failed[0]["message"]
    assert body["number_of_instances"] == 7
    assert body["slice_spacing"] == pytest.approx(study.slice_spacing)
    assert body["quality_checked_at"]


@pytest.mark.django_db
def test_series_api_for_clean_series_is_ok(manager_client: Client, study: SyntheticStudy) -> None:
    assert upload(manager_client, slices_of(study)).status_code == 201

    body = manager_client.get(f"/api/v1/imaging/series/{study.series_uid}/").json()

    assert body["quality"] == "ok"
    assert body["is_flagged"] is False
    assert (body["rows"], body["columns"], body["number_of_slices"]) == (32, 32, 8)


@pytest.mark.django_db
def test_series_api_hides_series_from_non_members(
    manager_client: Client, study: SyntheticStudy, make_member: Callable[..., User]
) -> None:
    assert upload(manager_client, slices_of(study)).status_code == 201
    other_project = Project.objects.create(slug="other", name="Other")
    outsider = Client()
    outsider.force_login(make_member(other_project, Role.MANAGER))

    assert outsider.get(f"/api/v1/imaging/series/{study.series_uid}/").status_code == 404


# --- check_series on hand-made slice lists ------------------------------------------------------------------

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def slice_info(index: int, z: float | None = None, **overrides: Any) -> SliceInfo:
    fields: dict[str, Any] = {
        "sop_instance_uid": f"1.2.3.{index}",
        "rows": 64,
        "columns": 64,
        "number_of_frames": 1,
        "image_position": [-10.0, -20.0, 2.0 * index if z is None else z],
        "image_orientation": AXIAL,
        "pixel_spacing": [0.7, 0.7],
        "has_pixel_data": True,
        "is_decodable": True,
        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
        "slice_thickness": 2.0,
        "frame_of_reference_uid": "1.2.3.99",
    }
    fields.update(overrides)
    return SliceInfo(**fields)


def status_of(checks: list[dict[str, str]], name: str) -> list[str]:
    return [c["status"] for c in checks if c["check"] == name]


def test_check_series_without_frame_of_reference_is_a_warning_not_a_failure() -> None:
    missing = check_series([slice_info(i, frame_of_reference_uid="") for i in range(3)])
    assert missing.quality == WARNING
    assert status_of(missing.checks, "frame_of_reference") == [WARNING]
    assert "No Frame of Reference UID on 3 of 3" in next(
        c["message"] for c in missing.checks if c["check"] == "frame_of_reference"
    )
    mixed = check_series([slice_info(0), slice_info(1, frame_of_reference_uid="1.2.3.98")])
    assert status_of(mixed.checks, "frame_of_reference") == [WARNING]
    assert status_of(check_series([slice_info(0), slice_info(1)]).checks, "frame_of_reference") == [OK]


def test_check_series_regular_volume_is_ok_with_geometry() -> None:
    # Given out of order: positions are sorted along the slice normal.
    result = check_series([slice_info(i) for i in (3, 0, 4, 1, 2)])

    assert result.quality == OK
    assert result.geometry["slice_positions"] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert result.geometry["slice_spacing"] == pytest.approx(2.0)
    assert result.geometry["number_of_slices"] == 5
    assert (result.geometry["rows"], result.geometry["columns"]) == (64, 64)
    assert result.geometry["pixel_spacing"] == [0.7, 0.7]
    assert result.geometry["slice_thickness"] == 2.0
    assert result.geometry["is_multiframe"] is False


def test_check_series_gap_is_missing_slices() -> None:
    result = check_series([slice_info(i) for i in (0, 1, 2, 4, 5)])

    assert result.quality == FAILED
    [check] = [c for c in result.checks if c["check"] == "slice_spacing"]
    assert check["status"] == FAILED
    assert "Missing slices: 1 gap(s) between 4.00..8.00 mm" in check["message"]


def test_check_series_duplicate_positions() -> None:
    slices = [slice_info(i) for i in range(4)] + [slice_info(9, z=4.0)]
    result = check_series(slices)

    assert result.quality == FAILED
    assert status_of(result.checks, "slice_positions") == [FAILED]
    assert status_of(result.checks, "slice_spacing") == [OK]
    assert result.geometry["slice_spacing"] == pytest.approx(2.0)


def test_check_series_irregular_spacing() -> None:
    slices = [slice_info(i, z=z) for i, z in enumerate([0.0, 2.0, 3.6, 6.0, 8.0])]
    result = check_series(slices)

    assert result.quality == FAILED
    [check] = [c for c in result.checks if c["check"] == "slice_spacing"]
    assert check["status"] == FAILED
    assert check["message"].startswith("Inconsistent slice spacing")


def test_check_series_small_jitter_is_tolerated() -> None:
    slices = [slice_info(i, z=z) for i, z in enumerate([0.0, 2.01, 3.99, 6.0, 8.02])]

    assert check_series(slices).quality == OK


def test_check_series_orientation_mismatch() -> None:
    slices = [slice_info(i) for i in range(3)] + [slice_info(3, image_orientation=[1, 0, 0, 0, 0, -1])]
    result = check_series(slices)

    assert status_of(result.checks, "orientation") == [FAILED]
    assert result.quality == FAILED


def test_check_series_positions_follow_the_slice_normal_for_sagittal_slices() -> None:
    sagittal = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # normal: row x column cosines = (-1, 0, 0)
    slices = [slice_info(i, image_orientation=sagittal, image_position=[3.0 * i, 5.0, 7.0]) for i in range(4)]
    result = check_series(slices)

    assert result.quality == OK
    assert result.geometry["slice_spacing"] == pytest.approx(3.0)
    assert result.geometry["slice_positions"] == [-9.0, -6.0, -3.0, 0.0]


def test_check_series_mixed_dimensions() -> None:
    slices = [slice_info(i) for i in range(3)] + [slice_info(3, rows=32)]
    result = check_series(slices)

    assert status_of(result.checks, "dimensions") == [FAILED]
    assert (result.geometry["rows"], result.geometry["columns"]) == (64, 64)


def test_check_series_mixed_pixel_spacing() -> None:
    slices = [slice_info(i) for i in range(3)] + [slice_info(3, pixel_spacing=[0.5, 0.5])]

    assert status_of(check_series(slices).checks, "pixel_spacing") == [FAILED]


def test_check_series_without_pixel_spacing_is_a_warning() -> None:
    result = check_series([slice_info(i, pixel_spacing=None) for i in range(3)])

    assert result.quality == WARNING
    assert status_of(result.checks, "pixel_spacing") == [WARNING]


def test_check_series_undecodable_image() -> None:
    slices = [slice_info(i) for i in range(3)] + [
        slice_info(3, is_decodable=False, transfer_syntax_uid=str(UNDECODABLE_SYNTAX))
    ]
    result = check_series(slices)

    assert result.quality == FAILED
    [check] = [c for c in result.checks if c["check"] == "pixel_data"]
    assert check["status"] == FAILED
    assert str(UNDECODABLE_SYNTAX) in check["message"]


def test_check_series_missing_image_position() -> None:
    slices = [slice_info(i) for i in range(3)] + [slice_info(3, image_position=None)]
    result = check_series(slices)

    assert result.quality == FAILED
    [check] = [c for c in result.checks if c["check"] == "slice_positions"]
    assert "no Image Position" in check["message"]


def test_check_series_without_orientation_cannot_order_slices() -> None:
    result = check_series([slice_info(i, image_orientation=None) for i in range(3)])

    assert result.quality == FAILED
    [check] = [c for c in result.checks if c["check"] == "slice_positions"]
    assert "cannot be ordered" in check["message"]


def test_check_series_mixed_frames() -> None:
    slices = [slice_info(0), slice_info(1), slice_info(2, number_of_frames=5)]
    result = check_series(slices)

    assert status_of(result.checks, "frames") == [FAILED]
    assert result.geometry["number_of_slices"] == 7
    assert result.geometry["is_multiframe"] is True


def test_check_series_single_multiframe_instance_is_ok() -> None:
    result = check_series([slice_info(0, number_of_frames=40)])

    assert result.quality == OK
    assert status_of(result.checks, "frames") == [OK]
    assert result.geometry["number_of_slices"] == 40
    assert result.geometry["is_multiframe"] is True


def test_check_series_of_non_image_objects_is_ok() -> None:
    result = check_series([slice_info(0, has_pixel_data=False, rows=None, columns=None)])

    assert result.quality == OK
    assert result.geometry["number_of_slices"] == 0
    assert "non-image" in result.checks[0]["message"]


@pytest.mark.parametrize("count", [1, 2])
def test_check_series_of_one_or_two_slices_is_ok(count: int) -> None:
    result = check_series([slice_info(i) for i in range(count)])

    assert result.quality == OK
    assert len(result.geometry["slice_positions"]) == (count if count > 1 else 0)
