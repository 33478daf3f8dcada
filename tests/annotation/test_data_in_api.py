"""Data in (issue 16, item 5) through the API: an upload of files and zips becomes an ingest job that stores into
THIS project's image store and reports each file; the project's PACS is searched with QIDO-RS (the real Orthanc
of the test run) and the studies picked are imported. Refusals store nothing and queue nothing."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotation.models import Case, Project
from imaging.models import DicomSource, Instance, Study
from jobs.models import Job, JobStatus
from tests.annotation.conftest import _study_files, synthetic_study
from tests.annotation.test_imports import eager_celery
from tests.conftest import require_env, stored_files
from tests.factories import DicomSourceFactory, ProjectFactory
from tests.imaging.test_dicomweb_proxy import fresh_series

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1"
SEED = 211


def series_zip(seed: int = SEED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k, data in enumerate(_study_files(seed)):
            archive.writestr(f"series/{k:03d}.dcm", data)
    return buffer.getvalue()


def upload(client: Client, slug: str, *files: tuple[str, bytes]) -> Any:
    parts = [SimpleUploadedFile(name, data) for name, data in files]
    return client.post(f"{API}/projects/{slug}/uploads/", {"files": parts})


def test_an_uploaded_zip_is_ingested_by_a_job_into_this_project_s_store_only(
    monkeypatch: pytest.MonkeyPatch,
    reading_project: Project,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
) -> None:
    eager_celery(monkeypatch)
    other = cast(Project, ProjectFactory(slug="other"))
    manager = client_for(users["manager"])
    files = _study_files(SEED)
    response = upload(manager, reading_project.slug, ("series.zip", series_zip()), ("notes.txt", b"not dicom"))
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.kind, job.project, job.status) == ("ingest", reading_project, JobStatus.SUCCEEDED), job.error
    assert job.result["counts"] == {"stored": len(files), "duplicate": 0, "rejected": 1}
    study_uid = synthetic_study(SEED).study_uid
    assert job.result["studies"] == [study_uid]
    rejected = [f for f in job.result["files"] if f["status"] == "rejected"]
    assert [f["file"] for f in rejected] == ["notes.txt"] and rejected[0]["reason"]
    assert job.progress["done"] == job.progress["total"] == len(files) + 1
    # In the project's store, and in no other.
    assert Study.objects.filter(study_instance_uid=study_uid).values_list("store_id", flat=True).get() == (
        reading_project.image_store_id
    )
    assert Instance.objects.filter(series__study__store=reading_project.image_store).count() >= len(files)
    assert not Study.objects.filter(store=other.image_store).exists()
    # The staged copies are gone once stored; only the DICOM files remain.
    assert not [p for p in stored_files(isolated_storage) if "uploads" in p.parts]

    # The same zip again: every file a duplicate, nothing stored twice.
    again = Job.objects.get(pk=upload(manager, reading_project.slug, ("series.zip", series_zip())).json()["id"])
    assert again.result["counts"] == {"stored": 0, "duplicate": len(files), "rejected": 0}
    # Cases from the result.
    made = manager.post(
        f"{API}/projects/{reading_project.slug}/cases/",
        {"study_instance_uids": job.result["studies"]},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    assert Case.objects.filter(project=reading_project, study__study_instance_uid=study_uid).count() == 1


def test_refused_uploads_store_and_queue_nothing(
    monkeypatch: pytest.MonkeyPatch,
    reading_project: Project,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
) -> None:
    eager_celery(monkeypatch)
    slug = reading_project.slug
    before = stored_files(isolated_storage)
    readers = client_for(users["annotator"])
    refused = upload(readers, slug, ("series.zip", series_zip()))
    assert refused.status_code == 403 and "manager" in refused.json()["detail"]
    outsider = upload(client_for(users["outsider"]), slug, ("series.zip", series_zip()))
    assert outsider.status_code == 404
    manager = client_for(users["manager"])
    bad_zip = upload(manager, slug, ("broken.zip", b"PK\x03\x04 this is no zip"))
    assert bad_zip.status_code == 400 and "zip" in bad_zip.json()["detail"]
    nothing = manager.post(f"{API}/projects/{slug}/uploads/", {})
    assert nothing.status_code == 400 and "No files" in nothing.json()["detail"]
    reading_project.archived_at = reading_project.created_at
    reading_project.save(update_fields=["archived_at"])
    archived = upload(manager, slug, ("series.zip", series_zip()))
    assert archived.status_code == 400 and "archived" in archived.json()["detail"]
    assert Job.objects.count() == 0
    assert stored_files(isolated_storage) == before


@pytest.mark.services
def test_the_project_s_pacs_is_searched_and_the_picked_study_imported(
    monkeypatch: pytest.MonkeyPatch,
    reading_project: Project,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    eager_celery(monkeypatch)
    series = fresh_series()
    # Orthanc keeps what earlier runs stored: a patient and accession of this run only.
    patient, accession = f"P-{uuid.uuid4().hex[:12]}", f"A{uuid.uuid4().hex[:12]}"
    for ds in series:
        ds.PatientID, ds.AccessionNumber, ds.StudyDate = patient, accession, "20240314"
    DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL")).store_instances(series)
    uid = str(series[0].StudyInstanceUID)
    source = cast(DicomSource, DicomSourceFactory())
    manager = client_for(users["manager"])
    slug = reading_project.slug
    search = f"{API}/projects/{slug}/pacs/studies/"

    none = manager.get(search, {"patient": patient})
    assert none.status_code == 400 and "no PACS" in none.json()["detail"]
    not_opened = manager.get(search, {"source": source.name, "patient": patient})
    assert not_opened.status_code == 403
    reading_project.import_sources.add(source)  # an administrator opens the PACS to the project
    assert manager.get(f"{API}/projects/{slug}/pacs/").json() == {"sources": [source.name]}

    found = manager.get(search, {"patient": patient, "modality": "CT", "date_from": "20240301"})
    assert found.status_code == 200, found.content
    assert found.json()["source"] == source.name
    [study] = found.json()["studies"]
    assert (study["study_instance_uid"], study["accession_number"], study["study_date"]) == (uid, accession, "20240314")
    assert study["in_project"] is False and study["instance_count"] == len(series)
    assert manager.get(search, {"accession": accession}).json()["studies"][0]["study_instance_uid"] == uid
    assert manager.get(search, {"patient": patient, "date_to": "20240101"}).json()["studies"] == []
    bad = manager.get(search, {"date_from": "2024-03-01"})
    assert bad.status_code == 400 and "YYYYMMDD" in bad.json()["detail"]
    assert client_for(users["annotator"]).get(search, {"patient": "x"}).status_code == 403

    imported = manager.post(
        f"{API}/projects/{slug}/imports/", {"source": source.name, "study_uids": [uid]}, content_type="application/json"
    )
    assert imported.status_code == 202, imported.content
    job = Job.objects.get(pk=imported.json()["id"])
    assert job.status == JobStatus.SUCCEEDED and job.result["imported"] == 1, job.error
    assert Study.objects.filter(store=reading_project.image_store, study_instance_uid=uid).exists()
    again = manager.get(search, {"patient": patient}).json()["studies"]
    assert [s["in_project"] for s in again] == [True]
