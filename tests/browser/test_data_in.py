"""The data-in screen in Chromium against a live server, a real Celery worker and the test run's Orthanc (issue
16, item 5), checked against the database: a zip of a synthetic series (and a file that is not DICOM) is
dropped, uploaded with the progress bar reaching 100 %, ingested by the job into THIS project's image store and
reported file by file; cases are created from the result; the project's PACS is searched by patient and the
study picked is imported (with its case)."""

from __future__ import annotations

import os
import signal
import uuid
import zipfile
from pathlib import Path
from typing import cast

import pytest
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from playwright.sync_api import expect

from annotation.models import Case, Project
from imaging.models import DicomSource, Instance, Study
from jobs.models import Job, JobStatus
from tests.annotation.conftest import _study_files, synthetic_study
from tests.browser import manager_flow, panel_helpers
from tests.conftest import require_env
from tests.datasets.test_worker import start_worker
from tests.factories import DicomSourceFactory, ProjectFactory
from tests.imaging.test_dicomweb_proxy import fresh_series

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

SEED = 233


def write_series_zip(path: Path, seed: int = SEED) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for k, data in enumerate(_study_files(seed)):
            archive.writestr(f"CT/{k:03d}.dcm", data)
    return path


def test_a_manager_uploads_a_zip_creates_cases_and_imports_from_the_pacs(
    browsers: panel_helpers.Browsers,
    reading_project: Project,
    users: dict[str, User],
    isolated_storage: Path,
    tmp_path: Path,
) -> None:
    slug = reading_project.slug
    other = cast(Project, ProjectFactory(slug="elsewhere"))
    series_zip = write_series_zip(tmp_path / "series.zip")
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"not a DICOM file")
    files = _study_files(SEED)
    study_uid = synthetic_study(SEED).study_uid
    log = tmp_path / "worker.log"
    user_page = browsers.page_for(users["manager"])
    user_page.page.set_default_navigation_timeout(60_000)
    page = user_page.goto("/")
    worker = start_worker(isolated_storage, log)
    try:
        page.get_by_test_id(f"project-{slug}").get_by_role("link", name="Data in").click()
        report = manager_flow.upload_zip(page, slug, series_zip, junk, drop=True)
        job = Job.objects.get(project=reading_project, kind="ingest")  # one job for the whole drop
        assert job.status == JobStatus.SUCCEEDED, (job.error, log.read_text()[-3000:])
        assert job.worker.endswith(f":{worker.pid}")  # the real worker ran it
        assert job.result["counts"] == {"stored": len(files), "duplicate": 0, "rejected": 1}
        assert job.progress["done"] == job.progress["total"] == len(files) + 1
        expect(report.get_by_role("status").first).to_contain_text(
            f"Finished: {len(files)} stored, 0 duplicate, 1 rejected."
        )
        rejected = report.locator("tr[data-status=rejected]")
        expect(rejected).to_have_count(1)
        expect(rejected).to_contain_text("notes.txt")
        reason = next(f["reason"] for f in job.result["files"] if f["status"] == "rejected")
        expect(rejected).to_contain_text(reason)
        expect(report.locator("tr[data-status=stored]")).to_have_count(len(files))
        # Stored in this project's store, and nowhere else.
        study = Study.objects.get(study_instance_uid=study_uid)
        assert study.store_id == reading_project.image_store_id
        assert Instance.objects.filter(series__study=study).count() == len(files)
        assert not Study.objects.filter(store=other.image_store).exists()
        assert not [p for p in isolated_storage.rglob("*") if p.is_file() and "uploads" in p.parts]
        panel_helpers.save_screenshot(page.screenshot(full_page=True), "data-in-upload")

        history = manager_flow.progress_history(page)
        # The bytes' progress (XMLHttpRequest upload events) reached 100 %, then the job's did.
        assert "uploading:100" in history and history[-1] == "done:100", history
        assert history.index("uploading:100") < history.index("done:100")

        assert manager_flow.create_cases(page) == 1
        assert Case.objects.filter(project=reading_project, study=study).count() == 1

        # The same zip again, chosen rather than dropped: every file a duplicate, nothing stored twice.
        again = manager_flow.upload_zip(page, slug, series_zip)
        expect(again.get_by_role("status").first).to_contain_text(f"Finished: 0 stored, {len(files)} duplicate")
        assert Instance.objects.filter(series__study=study).count() == len(files)
        assert Job.objects.filter(project=reading_project, kind="ingest", status=JobStatus.SUCCEEDED).count() == 2

        # The PACS: a study of a patient of this run only (Orthanc keeps earlier runs' studies).
        series = fresh_series()
        patient = f"P-{uuid.uuid4().hex[:10]}"
        for ds in series:
            ds.PatientID = patient
        DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL")).store_instances(series)
        pacs_uid = str(series[0].StudyInstanceUID)
        source = cast(DicomSource, DicomSourceFactory())
        reading_project.import_sources.add(source)
        results = manager_flow.search_pacs(page, slug, patient=patient)
        row = results.get_by_test_id(f"pacs-{pacs_uid}")
        expect(row).to_contain_text(patient)
        expect(row).to_contain_text(str(len(series)))
        panel_helpers.save_screenshot(page.screenshot(full_page=True), "data-in-pacs")
        imported = manager_flow.import_studies(page, [pacs_uid])
        expect(imported.locator("li[data-status=imported]")).to_contain_text(pacs_uid)
        expect(imported.get_by_role("status").first).to_contain_text("Imported 1, failed 0; cases created: 1.")
        pacs_study = Study.objects.get(study_instance_uid=pacs_uid)
        assert pacs_study.store_id == reading_project.image_store_id
        assert Case.objects.filter(project=reading_project, study=pacs_study).count() == 1
        # "Create cases" again is idempotent: the case is there once.
        assert manager_flow.create_cases(page, imported) == 1
        assert Case.objects.filter(project=reading_project, study=pacs_study).count() == 1
        user_page.assert_no_console_errors()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
