"""A refused or failed upload leaves nothing staged and nothing half-stored, through both upload doors: the
per-file door (POST /api/v1/imaging/uploads/, stored in the request) and the project's upload job (POST
/api/v1/projects/<slug>/uploads/: staged under uploads/ in the storage, then ingested by a job).

"Half-stored" is what the index and the disk must never disagree on: a file on disk that no instance names, an
instance whose file is gone, a series or study without instances, or counts that are not the instances'."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotation.models import Project
from imaging.models import Instance, Series, Study
from imaging.synthetic import generate_ct_study
from jobs.models import Job, JobStatus
from tests.annotation.test_imports import eager_celery
from tests.conftest import dataset_bytes, stored_files
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

UPLOAD_URL = "/api/v1/imaging/uploads/"


def series(slices: int, seed: int) -> list[tuple[str, bytes]]:
    study = generate_ct_study(seed=seed, rows=16, columns=16, slices=slices, n_lesions=0)
    return [(f"s/{k:03d}.dcm", dataset_bytes(ds)) for k, ds in enumerate(study.datasets())]


def zipped(files: list[tuple[str, bytes]], corrupt: str = "") -> bytes:
    """A zip of ``files``; the member named ``corrupt`` has its stored bytes changed after its CRC was written
    (a damaged download): the archive opens, that member fails its CRC check when read."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    raw = bytearray(buffer.getvalue())
    if corrupt:
        with zipfile.ZipFile(io.BytesIO(bytes(raw))) as archive:
            info = archive.getinfo(corrupt)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        raw[start + 200 : start + 210] = b"\xff" * 10
    return bytes(raw)


def assert_index_matches_disk(root: Path) -> None:
    """Every DICOM file on disk is an instance's, every instance's file is there, no series or study is empty,
    and the counts are the instances'."""
    on_disk = {str(p.relative_to(root)) for p in stored_files(root) if p.relative_to(root).parts[0] == "dicom"}
    named = set(Instance.objects.exclude(file="").values_list("file", flat=True))
    assert on_disk == named, on_disk ^ named
    for one in Series.objects.all():
        count = Instance.objects.filter(series=one).count()
        assert count and one.number_of_instances == count == len(one.slice_positions), one
    for study in Study.objects.all():
        assert study.number_of_instances == Instance.objects.filter(series__study=study).count(), study


@pytest.fixture
def uploader(db: None) -> tuple[Project, Client]:
    project = cast(Project, ProjectFactory(slug="failures"))
    user = cast(User, UserFactory(username="failures-manager"))
    MembershipFactory(project=project, user=user, role="manager")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return project, client


def post(client: Client, *files: tuple[str, bytes], project: str = "failures") -> Any:
    return client.post(UPLOAD_URL, {"project": project, "files": [SimpleUploadedFile(n, d) for n, d in files]})


@pytest.mark.django_db
def test_refused_files_and_archives_store_nothing(uploader: tuple[Project, Client], isolated_storage: Path) -> None:
    _project, client = uploader
    good = series(3, 61)
    bad_zip = post(client, ("broken.zip", b"PK\x03\x04 no zip at all"))
    assert bad_zip.status_code == 400 and "zip" in bad_zip.json()["detail"].lower()
    not_dicom = post(client, ("notes.txt", b"just some notes"))
    assert not_dicom.status_code == 400 and "DICOM" in not_dicom.json()["detail"]
    assert post(client, *good[:2]).status_code == 201
    before = stored_files(isolated_storage)
    other_patient = list(generate_ct_study(seed=61, rows=16, columns=16, slices=3, n_lesions=0).datasets())[2]
    other_patient.PatientID = "SOMEONE-ELSE"  # the third slice of the same study, of another patient
    refused = post(client, ("intruder.dcm", dataset_bytes(other_patient)))
    assert refused.status_code == 409 and "SOMEONE-ELSE" in refused.json()["detail"]
    assert stored_files(isolated_storage) == before
    assert_index_matches_disk(isolated_storage)


@pytest.mark.django_db
def test_a_corrupt_member_of_a_zip_is_refused_by_name_and_the_rest_stored_whole(
    uploader: tuple[Project, Client], isolated_storage: Path
) -> None:
    """A member that fails its CRC (after the first batch of 64 was stored) is one refused file with its reason,
    not a server error that leaves the upload half done."""
    _project, client = uploader
    files = series(70, 62)
    response = post(client, ("series.zip", zipped(files, corrupt="s/066.dcm")))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["counts"] == {"stored": 69, "duplicate": 0, "rejected": 1}
    refused = [f for f in body["files"] if f["status"] == "rejected"]
    assert refused[0]["file"] == "s/066.dcm" and "Damaged" in refused[0]["reason"], refused
    assert_index_matches_disk(isolated_storage)


@pytest.mark.django_db
def test_a_failure_mid_ingest_leaves_no_file_without_its_row(
    uploader: tuple[Project, Client], isolated_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up at the 70th file (the first batch of 64 is committed): the request fails, every
    file written for the failed batch is removed, and what was committed is whole."""
    _project, client = uploader
    real_save = FileSystemStorage.save
    calls = {"n": 0}

    def save(self: FileSystemStorage, name: str, content: Any, **kwargs: Any) -> str:
        if name.startswith("dicom/"):
            calls["n"] += 1
            if calls["n"] == 70:
                raise OSError(28, "No space left on device")
        return real_save(self, name, content, **kwargs)

    monkeypatch.setattr(FileSystemStorage, "save", save)
    response = post(client, *series(80, 63))
    assert response.status_code == 500
    assert Instance.objects.count() == 64
    assert_index_matches_disk(isolated_storage)


# --- The project's upload job: staged copies -----------------------------------------------------------------


def job_upload(client: Client, *files: tuple[str, bytes]) -> Any:
    return client.post("/api/v1/projects/failures/uploads/", {"files": [SimpleUploadedFile(n, d) for n, d in files]})


def staged(root: Path) -> list[Path]:
    return [p for p in stored_files(root) if p.relative_to(root).parts[0] == "uploads"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_upload_job_leaves_no_staged_copy(
    uploader: tuple[Project, Client], isolated_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager_celery(monkeypatch)
    _project, client = uploader
    real_save = FileSystemStorage.save

    def save(self: FileSystemStorage, name: str, content: Any, **kwargs: Any) -> str:
        if name.startswith("dicom/"):
            raise OSError(28, "No space left on device")
        return real_save(self, name, content, **kwargs)

    monkeypatch.setattr(FileSystemStorage, "save", save)
    response = job_upload(client, ("series.zip", zipped(series(3, 64))), ("one.dcm", series(1, 65)[0][1]))
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.FAILED and "No space left" in job.error, (job.status, job.error)
    assert staged(isolated_storage) == []
    assert_index_matches_disk(isolated_storage)


@pytest.mark.django_db(transaction=True)
def test_an_upload_that_fails_while_staging_leaves_no_staged_copy(
    uploader: tuple[Project, Client], isolated_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager_celery(monkeypatch)
    _project, client = uploader
    real_save = FileSystemStorage.save
    calls = {"n": 0}

    def save(self: FileSystemStorage, name: str, content: Any, **kwargs: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_save(self, name, content, **kwargs)

    monkeypatch.setattr(FileSystemStorage, "save", save)
    response = job_upload(client, ("a.dcm", series(1, 66)[0][1]), ("b.dcm", series(1, 67)[0][1]))
    assert response.status_code == 500
    assert Job.objects.count() == 0
    assert staged(isolated_storage) == []


@pytest.mark.django_db(transaction=True)
def test_an_upload_job_whose_every_file_is_refused_leaves_no_staged_copy(
    uploader: tuple[Project, Client], isolated_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager_celery(monkeypatch)
    _project, client = uploader
    response = job_upload(client, ("notes.txt", b"not dicom"), ("series.zip", zipped([("x.txt", b"nor this")])))
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED and job.result["counts"]["rejected"] == 2, job.result
    assert staged(isolated_storage) == [] and stored_files(isolated_storage) == []
