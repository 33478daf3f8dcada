"""The exports screen in Chromium against a live server and a real Celery worker (issue 16, item 8): a manager
creates an export (MONAI and CSV, adjudicated cases only, a 1/3 split, de-identified), follows its progress until
it is ready, reads its provenance and de-identification report, downloads the zip and opens it; every step is
checked against the database (the Export row, its job, its manifest and checksum)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from annotation.models import AnnotationRevision, Case
from datasets.models import Export
from imaging.synthetic import SyntheticStudy
from jobs.models import Job, JobStatus
from tests.browser import panel_helpers
from tests.datasets import conftest as dataset_fixtures
from tests.datasets.test_worker import start_worker

pytestmark = pytest.mark.django_db(transaction=True)

browsers = panel_helpers.browsers
adjudicated_cases = dataset_fixtures.adjudicated_cases
bare_project = dataset_fixtures.bare_project
ingested_studies = dataset_fixtures.ingested_studies
reading_cases = dataset_fixtures.reading_cases
reading_project = dataset_fixtures.reading_project
users = dataset_fixtures.users


def test_manager_creates_follows_and_downloads_an_export(
    browsers: panel_helpers.Browsers,
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    ingested_studies: list[SyntheticStudy],
    users: dict[str, User],
    isolated_storage: Path,
    tmp_path: Path,
) -> None:
    slug = adjudicated_cases[0][0].project.slug
    log = tmp_path / "worker.log"
    user_page = browsers.page_for(users["manager"])
    user_page.page.set_default_navigation_timeout(60_000)  # 2 shared cores: the 4 MB bundle can be slow
    page = user_page.goto("/")
    # Started once the page is up (its start-up takes the CPU for a while); the queue keeps the job until then.
    worker = start_worker(isolated_storage, log)
    try:
        page.get_by_test_id(f"project-{slug}").get_by_role("link", name="Exports").click()
        expect(page.get_by_role("heading", name=f"Exports: {slug}")).to_be_visible()
        expect(page.get_by_text("No export yet.")).to_be_visible()

        page.get_by_label("CSV (study, series and image labels)").check()
        page.get_by_label("Lowest QA level").select_option("adjudicated")
        for name, value in (("Training", "0.34"), ("Validation", "0.33"), ("Test", "0.33")):
            page.get_by_label(name, exact=True).fill(value)
        page.get_by_label("Seed").fill("7")
        expect(page.get_by_label("De-identify", exact=False)).to_be_checked()
        page.get_by_role("button", name="Create export").click()

        row = page.get_by_test_id("export-1")
        expect(row).to_be_visible(timeout=60_000)  # the request competes with the worker starting up
        export = Export.objects.get(project__slug=slug, version=1)
        assert export.formats == ["csv", "monai"] and export.deidentify
        assert export.filters["min_qa_level"] == "adjudicated"
        assert export.split["train"] == pytest.approx(0.34) and export.split["seed"] == 7
        assert len(export.selection) == 3
        # The worker builds it while the screen polls; it ends ready, with the link.
        expect(row).to_have_attribute("data-status", "succeeded", timeout=150_000)
        assert export.job_id is not None
        job = Job.objects.get(pk=export.job_id)
        assert job.status == JobStatus.SUCCEEDED, (job.error, log.read_text()[-3000:])
        assert job.worker.endswith(f":{worker.pid}")
        export.refresh_from_db()
        expect(row).to_contain_text("Ready")

        details = page.get_by_test_id("export-details")
        expect(details).to_be_visible()  # the new export's details open by themselves
        expect(details.get_by_test_id("export-sha256")).to_have_text(export.sha256)
        report = details.get_by_test_id("deid-report")
        expect(report).to_contain_text(f"{export.deid_report['datasets']} DICOM files de-identified")
        expect(report).to_contain_text(str(export.deid_report["profile"]))
        counts = export.split_counts
        expect(details.get_by_test_id("split-counts")).to_contain_text(
            f"Training {counts['train']}, Validation {counts['validation']}, Test {counts['test']}"
        )
        panel_helpers.save_screenshot(page.screenshot(full_page=True), "exports-ready")

        with page.expect_download() as info:
            page.get_by_test_id("download-1").click()
        download = info.value
        assert download.suggested_filename == f"{slug}-v1.zip"
        path = download.path()
        assert path is not None
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == export.sha256
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            assert names - {"manifest.json"} == set(export.manifest)
            snapshot = json.loads(archive.read("snapshot.json"))
            dataset = json.loads(archive.read("dataset.json"))
            table = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode("utf-8"))))
            images = [name for name in names if name.endswith(".nii.gz")]
            text = b"".join(archive.read(name) for name in names if not name.endswith(".gz"))
        assert len(snapshot["cases"]) == 3
        assert sum(len(dataset.get(split, [])) for split in ("training", "validation", "test")) == 3
        assert {row["qa_level"] for row in table} == {"adjudicated"}
        assert len(images) >= 6  # an image and a label volume per case
        for study in ingested_studies:  # de-identified: no patient id or name of the source files
            assert study.patient_id.encode() not in text and study.patient_name.encode() not in text
        user_page.assert_no_console_errors()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
