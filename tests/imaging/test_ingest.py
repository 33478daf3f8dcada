"""The ingest service and the upload API: idempotence, conflicts, per-file reports, what lands on disk."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotation.models import Project, Role
from imaging.models import ImageStore, Instance, Series, Study
from imaging.services.ingest import DUPLICATE, REJECTED, STORED, IncomingFile, ingest_files
from imaging.synthetic import SyntheticStudy, generate_ct_study
from tests.conftest import dataset_bytes, stored_files
from tests.conftest import testdata_bytes as read_testdata  # aliased: pytest would collect test*

UPLOAD_URL = "/api/v1/imaging/uploads/"


@pytest.fixture(scope="module")
def small_study() -> SyntheticStudy:
    return generate_ct_study(seed=11, rows=64, columns=64, slices=8, n_lesions=1)


def series_files(study: SyntheticStudy) -> list[tuple[str, bytes]]:
    return [(f"slice{k:02d}.dcm", dataset_bytes(ds)) for k, ds in enumerate(study.datasets())]


def zip_bytes(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(client: Client, files: list[tuple[str, bytes]], project: str | None = "chest") -> Any:
    data: dict[str, object] = {"files": [SimpleUploadedFile(name, content) for name, content in files]}
    if project is not None:
        data["project"] = project
    return client.post(UPLOAD_URL, data)


def modified_ct_small() -> bytes:
    """CT_small.dcm with the same UIDs but a different patient name: a different file, same SOP Instance UID."""
    ds = pydicom.dcmread(io.BytesIO(read_testdata("CT_small.dcm")))
    ds.PatientName = "Someone^Else"
    return dataset_bytes(ds)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- Service level -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_same_file_twice_is_one_instance(isolated_storage: Path) -> None:
    data = read_testdata("CT_small.dcm")
    first = ingest_files([IncomingFile("a.dcm", data)])
    second = ingest_files([IncomingFile("again.dcm", data)])

    assert [f.status for f in first.files] == [STORED]
    assert [f.status for f in second.files] == [DUPLICATE]
    assert second.files[0].sop_instance_uid == first.files[0].sop_instance_uid
    assert second.http_status() == 200
    assert Instance.objects.count() == 1
    assert len(stored_files(isolated_storage)) == 1


@pytest.mark.django_db
def test_same_file_twice_in_one_batch_is_stored_then_duplicate(isolated_storage: Path) -> None:
    data = read_testdata("MR_small.dcm")
    report = ingest_files([IncomingFile("a.dcm", data), IncomingFile("b.dcm", data)])

    assert [f.status for f in report.files] == [STORED, DUPLICATE]
    assert Instance.objects.count() == 1
    assert len(stored_files(isolated_storage)) == 1


@pytest.mark.django_db
def test_different_file_with_same_sop_uid_is_rejected_as_conflict(isolated_storage: Path) -> None:
    original = read_testdata("CT_small.dcm")
    ingest_files([IncomingFile("original.dcm", original)])
    changed = modified_ct_small()
    assert changed != original

    report = ingest_files([IncomingFile("changed.dcm", changed)])

    outcome = report.files[0]
    assert outcome.status == REJECTED
    assert outcome.code == "conflict"
    assert outcome.http_status == 409
    assert "Conflict" in outcome.reason
    assert report.http_status() == 409
    instance = Instance.objects.get()
    assert instance.sha256 == sha256(original)
    assert (isolated_storage / instance.file).read_bytes() == original
    assert len(stored_files(isolated_storage)) == 1


@pytest.mark.django_db
def test_mixed_batch_reports_each_file_in_order(isolated_storage: Path) -> None:
    ct = read_testdata("CT_small.dcm")
    ds = pydicom.dcmread(io.BytesIO(ct))
    del ds.PixelData
    no_pixels = dataset_bytes(ds)

    report = ingest_files(
        [
            IncomingFile("ct.dcm", ct),
            IncomingFile("mr.dcm", read_testdata("MR_small.dcm")),
            IncomingFile("ct-again.dcm", ct),
            IncomingFile("hello.txt", b"hello"),
            IncomingFile("no-pixels.dcm", no_pixels),
        ]
    )

    assert [(f.name, f.status) for f in report.files] == [
        ("ct.dcm", STORED),
        ("mr.dcm", STORED),
        ("ct-again.dcm", DUPLICATE),
        ("hello.txt", REJECTED),
        ("no-pixels.dcm", REJECTED),
    ]
    assert "Not a DICOM Part 10 file" in report.files[3].reason
    assert report.files[4].code == "no_pixel_data"
    assert "No Pixel Data" in report.files[4].reason
    assert report.counts() == {STORED: 2, DUPLICATE: 1, REJECTED: 2}
    assert report.http_status() == 201
    assert Instance.objects.count() == 2
    assert len(stored_files(isolated_storage)) == 2


@pytest.mark.django_db
def test_stored_file_bytes_are_identical_to_input_with_correct_sha256(
    isolated_storage: Path, small_study: SyntheticStudy
) -> None:
    files = series_files(small_study)
    ingest_files([IncomingFile(name, data) for name, data in files])

    by_uid = {pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID: data for _, data in files}
    instances = list(Instance.objects.all())
    assert len(instances) == len(files)
    for instance in instances:
        original = by_uid[instance.sop_instance_uid]
        stored = (isolated_storage / instance.file).read_bytes()
        assert stored == original
        assert instance.sha256 == sha256(original)
        assert instance.file_size == len(original)
        # Under the store's folder: the same UIDs in another project's store are another file.
        assert instance.file == (
            f"dicom/{instance.store_id}/{small_study.study_uid}/{small_study.series_uid}/"
            f"{instance.sop_instance_uid}.dcm"
        )


@pytest.mark.django_db
def test_pixel_data_offset_points_at_the_pixel_data(isolated_storage: Path) -> None:
    data = read_testdata("CT_small.dcm")
    ingest_files([IncomingFile("ct.dcm", data)])
    instance = Instance.objects.get()
    pixel_data = pydicom.dcmread(io.BytesIO(data)).PixelData

    assert instance.is_encapsulated is False
    assert instance.pixel_data_offset is not None
    assert instance.pixel_data_length == len(pixel_data)
    with (isolated_storage / instance.file).open("rb") as handle:
        handle.seek(instance.pixel_data_offset)
        assert handle.read(instance.pixel_data_length) == pixel_data
    assert instance.frame_length == len(pixel_data)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["JPEG2000.dcm", "MR_small_RLE.dcm"])
def test_compressed_instance_is_stored_encapsulated_and_decodable(isolated_storage: Path, name: str) -> None:
    data = read_testdata(name)
    report = ingest_files([IncomingFile(name, data)])
    assert [f.status for f in report.files] == [STORED]
    assert report.files[0].warnings == []
    instance = Instance.objects.get()

    assert instance.is_encapsulated is True
    assert instance.is_decodable is True
    assert instance.has_pixel_data is True
    assert instance.pixel_data_length is None
    stored = pydicom.dcmread(isolated_storage / instance.file)
    assert str(stored.file_meta.TransferSyntaxUID) == instance.transfer_syntax_uid
    assert stored.file_meta.TransferSyntaxUID.is_compressed
    pixels = stored.pixel_array
    assert pixels.shape[:2] == (instance.rows, instance.columns)
    assert np.array_equal(pixels, pydicom.dcmread(io.BytesIO(data)).pixel_array)
    # The offset points at the first item of the encapsulated pixel data (Basic Offset Table).
    with (isolated_storage / instance.file).open("rb") as handle:
        assert instance.pixel_data_offset is not None
        handle.seek(instance.pixel_data_offset)
        assert handle.read(4) == b"\xfe\xff\x00\xe0"


@pytest.mark.django_db
def test_series_uid_already_in_another_study_is_a_conflict(isolated_storage: Path) -> None:
    data = read_testdata("CT_small.dcm")
    ingest_files([IncomingFile("ct.dcm", data)])
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID

    report = ingest_files([IncomingFile("moved.dcm", dataset_bytes(ds))])

    assert report.files[0].status == REJECTED
    assert report.files[0].code == "conflict"
    assert "already belongs to study" in report.files[0].reason
    assert Study.objects.count() == 1
    assert Instance.objects.count() == 1
    assert len(stored_files(isolated_storage)) == 1


# --- Upload API ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_upload_conflict_is_409_and_keeps_the_original(manager_client: Client, isolated_storage: Path) -> None:
    original = read_testdata("CT_small.dcm")
    assert upload(manager_client, [("ct.dcm", original)]).status_code == 201

    response = upload(manager_client, [("ct-changed.dcm", modified_ct_small())])

    assert response.status_code == 409
    body = response.json()
    assert body["files"][0]["status"] == "rejected"
    assert body["files"][0]["code"] == "conflict"
    assert "different file with SOP Instance UID" in body["detail"]
    instance = Instance.objects.get()
    assert instance.sha256 == sha256(original)
    assert (isolated_storage / instance.file).read_bytes() == original
    assert len(stored_files(isolated_storage)) == 1


@pytest.mark.django_db
def test_upload_same_file_twice_is_200_duplicate(manager_client: Client) -> None:
    data = read_testdata("MR_small.dcm")
    assert upload(manager_client, [("mr.dcm", data)]).status_code == 201

    response = upload(manager_client, [("mr.dcm", data)])

    assert response.status_code == 200
    assert response.json()["files"][0]["status"] == "duplicate"
    assert response.json()["counts"] == {"stored": 0, "duplicate": 1, "rejected": 0}
    assert Instance.objects.count() == 1


@pytest.mark.django_db
def test_upload_mixed_batch_reports_each_file(manager_client: Client, isolated_storage: Path) -> None:
    ct = read_testdata("CT_small.dcm")
    response = upload(manager_client, [("ct.dcm", ct), ("ct2.dcm", ct), ("junk.bin", b"hello")])

    assert response.status_code == 201
    body = response.json()
    assert body["counts"] == {"stored": 1, "duplicate": 1, "rejected": 1}
    assert [(f["file"], f["status"]) for f in body["files"]] == [
        ("ct.dcm", "stored"),
        ("ct2.dcm", "duplicate"),
        ("junk.bin", "rejected"),
    ]
    assert "Not a DICOM Part 10 file" in body["files"][2]["reason"]
    assert body["files"][0]["sop_instance_uid"] == pydicom.dcmread(io.BytesIO(ct)).SOPInstanceUID
    assert len(stored_files(isolated_storage)) == 1


@pytest.mark.django_db
def test_zip_upload_of_synthetic_series_ingests_all_slices(
    manager_client: Client, isolated_storage: Path, small_study: SyntheticStudy, project: Project
) -> None:
    files = series_files(small_study)
    response = upload(manager_client, [("series.zip", zip_bytes(files))])

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["counts"] == {"stored": 8, "duplicate": 0, "rejected": 0}
    assert body["studies"] == [small_study.study_uid]
    series = Series.objects.get(series_instance_uid=small_study.series_uid)
    assert series.number_of_instances == 8
    assert (series.rows, series.columns) == (64, 64)
    assert series.number_of_slices == 8
    assert series.pixel_spacing == pytest.approx(list(small_study.pixel_spacing))
    assert series.slice_spacing == pytest.approx(small_study.slice_spacing)
    expected_positions = [position[2] for position in small_study.slice_positions()]
    assert series.slice_positions == sorted(series.slice_positions)
    assert series.slice_positions == pytest.approx(expected_positions)
    assert series.image_orientation == pytest.approx([1, 0, 0, 0, 1, 0])
    assert series.slice_thickness == pytest.approx(small_study.slice_spacing)
    assert series.is_multiframe is False
    assert series.quality == Series.Quality.OK
    study = Study.objects.get(study_instance_uid=small_study.study_uid)
    assert study.number_of_instances == 8
    assert study.modalities_in_study == "CT"
    assert study.patient_id == small_study.patient_id
    assert len(stored_files(isolated_storage)) == 8
    assert study.store_id == project.image_store_id


@pytest.mark.django_db
def test_upload_with_project_stores_into_the_projects_store(manager_client: Client, project: Project) -> None:
    response = upload(manager_client, [("mr.dcm", read_testdata("MR_small.dcm"))], project=project.slug)

    assert response.status_code == 201
    study_uid = response.json()["studies"][0]
    assert Study.objects.filter(store=project.image_store, study_instance_uid=study_uid).count() == 1
    listed = manager_client.get("/api/v1/imaging/studies/", {"project": project.slug}).json()
    assert [s["study_instance_uid"] for s in listed["results"]] == [study_uid]


@pytest.mark.django_db
def test_upload_into_upstream_less_project_stores_files_in_storage_dir(
    manager_client: Client, project: Project, isolated_storage: Path
) -> None:
    assert project.dicom_source is None
    data = read_testdata("CT_small.dcm")
    response = upload(manager_client, [("ct.dcm", data)])

    assert response.status_code == 201
    instance = Instance.objects.select_related("series__study").get()
    assert instance.series.study.source is None
    assert stored_files(isolated_storage) == [isolated_storage / instance.file]
    assert (isolated_storage / instance.file).read_bytes() == data


@pytest.mark.django_db
def test_annotator_upload_is_403_and_stores_nothing(
    project: Project, make_member: Callable[..., User], isolated_storage: Path
) -> None:
    client = Client()
    client.force_login(make_member(project, Role.ANNOTATOR))

    response = upload(client, [("ct.dcm", read_testdata("CT_small.dcm"))])

    assert response.status_code == 403
    assert "manager" in response.json()["detail"]
    assert Instance.objects.count() == 0
    assert Study.objects.count() == 0
    assert stored_files(isolated_storage) == []


@pytest.mark.django_db
def test_unauthenticated_upload_is_refused(project: Project, isolated_storage: Path) -> None:
    response = upload(Client(), [("ct.dcm", read_testdata("CT_small.dcm"))])

    assert response.status_code in (401, 403)
    assert Instance.objects.count() == 0
    assert stored_files(isolated_storage) == []


@pytest.mark.django_db
def test_manager_upload_without_project_is_403(manager_client: Client, isolated_storage: Path) -> None:
    response = upload(manager_client, [("ct.dcm", read_testdata("CT_small.dcm"))], project=None)

    assert response.status_code == 403
    assert "project" in response.json()["detail"]
    assert Instance.objects.count() == 0
    assert stored_files(isolated_storage) == []


@pytest.mark.django_db
def test_upload_to_a_project_the_user_is_not_in_is_404(manager_client: Client, isolated_storage: Path) -> None:
    response = upload(manager_client, [("ct.dcm", read_testdata("CT_small.dcm"))], project="someone-elses")

    assert response.status_code == 404
    assert Instance.objects.count() == 0
    assert stored_files(isolated_storage) == []


@pytest.mark.django_db
def test_superuser_upload_without_project_stores_into_the_platform_store(isolated_storage: Path) -> None:
    admin = User.objects.create_superuser("root", password="x-password-123")
    client = Client()
    client.force_login(admin)

    response = upload(client, [("ct.dcm", read_testdata("CT_small.dcm"))], project=None)

    assert response.status_code == 201
    assert Instance.objects.count() == 1
    assert Study.objects.get().store.kind == ImageStore.Kind.PLATFORM
    assert len(stored_files(isolated_storage)) == 1


@pytest.mark.django_db
def test_upload_without_files_is_400(manager_client: Client) -> None:
    response = manager_client.post(UPLOAD_URL, {"project": "chest"})

    assert response.status_code == 400
    assert "No files" in response.json()["detail"]
