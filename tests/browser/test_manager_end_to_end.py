"""Issue 16's first acceptance item, in Chromium against a live server and a real Celery worker: a manager goes from
an empty project to a downloaded dataset through the app's screens, and every step is checked in the database.

The manager (a staff user: only administrators create projects, and the creator becomes the project's manager)
creates the project, defines a schema with a box, a mask and an ordinal grade, adds an annotator, a reviewer and
two experts, uploads a zip of two synthetic CT series (the progress bar reaching 100 %), creates the cases and
distributes them in the case browser. The readings are made through the API as the readers (one case agreed, one
disputed and decided by the two experts' panel); the manager exports the snapshot in MONAI and DICOM SEG formats,
downloads the zip and opens it (NIfTI image and label volumes, a DICOM SEG that dciodvfy passes and highdicom reads
with the schema's segment); then signs out and a non-staff reader signs in on the app's own sign-in page and lands
in the app, never on an admin page."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import zipfile
from pathlib import Path
from typing import Any, cast

import highdicom
import nibabel as nib
import numpy as np
import pydicom
import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Locator, Page, expect

from annotation.labels import encode_mask
from annotation.models import Assignment, Case, CaseStatus, LabelSchema, Membership, Project, Role
from datasets.models import Export
from imaging.models import Instance, Study
from imaging.synthetic import SyntheticStudy
from jobs.models import Job, JobStatus
from review.models import PanelVote
from tests.annotation.conftest import _study_files, case_series, case_sops, synthetic_study
from tests.browser import manager_flow, panel_helpers, schema_flow
from tests.datasets.test_worker import start_worker
from tests.dciodvfy import assert_valid_dicom
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

browsers = panel_helpers.browsers

SLUG = "e2e-lung"
PASSWORD = "test-password-123"  # tests.factories.UserFactory's
SEEDS = (411, 412)
API = "/api/v1"
JSON = "application/json"

LABELS: list[dict[str, Any]] = [
    {"key": "lesion", "kind": "box", "name": "Lesion", "name_zh": "病灶", "instructions": "One box per lesion"},
    {
        "key": "lesion_mask",
        "kind": "mask",
        "level": "series",
        "name": "Lesion mask",
        "name_zh": "病灶掩膜",
        "segments": [(1, "lesion", "Lesion")],
    },
    {
        "key": "grade",
        "kind": "ordinal",
        "level": "study",
        "name": "Suspicion grade",
        "name_zh": "可疑程度",
        "required": True,
        "scale": [(1, "Benign"), (2, "Indeterminate"), (3, "Suspicious")],
    },
]
MEMBERS = (
    ("annotator", Role.ANNOTATOR),
    ("reviewer", Role.REVIEWER),
    ("expert1", Role.EXPERT),
    ("expert2", Role.EXPERT),
)


def shot(page: Page, step: str) -> None:
    panel_helpers.save_screenshot(page.screenshot(full_page=True), f"e2e-{step}", min_std=2.0)


def assert_links_fit(card: Locator) -> None:
    """Every link of a project card lies inside the card, each on one line (a manager's card has eight or more)."""
    outer = card.bounding_box()
    assert outer is not None
    boxes = [link.bounding_box() for link in card.get_by_role("link").all()]
    assert len(boxes) >= 7 and all(box is not None for box in boxes), boxes
    for box in boxes:
        assert box is not None
        assert outer["x"] <= box["x"] and box["x"] + box["width"] <= outer["x"] + outer["width"], (box, outer)
    assert max(b["height"] for b in boxes if b) < 1.5 * min(b["height"] for b in boxes if b), boxes


def write_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for seed in SEEDS:
            for k, data in enumerate(_study_files(seed)):
                archive.writestr(f"study-{seed}/CT/{k:03d}.dcm", data)
    return path


def reading(case: Case, study: SyntheticStudy, *, grade: int, truth: bool = True) -> dict[str, Any]:
    """A complete reading of the e2e schema: the grade, a box and the mask (the study's true lesion, or a small
    block far from it)."""
    series = case_series(case)
    if truth:
        z0, y0, x0, z1, y1, x1 = study.lesions[0].bbox_voxel
        mask = (study.mask > 0).astype(np.uint8)
        geometry = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}
        slice_index = (z0 + z1) // 2
    else:
        mask = np.zeros((series.number_of_slices, series.rows or 0, series.columns or 0), dtype=np.uint8)
        mask[0:2, 2:6, 2:6] = 1
        geometry = {"x": 2, "y": 2, "width": 4, "height": 4}
        slice_index = 0
    return {
        "items": [
            {"label": "grade", "value": grade},
            {"label": "lesion", "id": "l1", "sop_instance_uid": case_sops(case)[slice_index], "geometry": geometry},
            {"label": "lesion_mask", "series_instance_uid": series.series_instance_uid, "mask": encode_mask(mask)},
        ]
    }


def api_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.content[:2000])
    return response.json() if response.content else None


def submit(user: User, case: Case, role: str, values: dict[str, Any]) -> dict[str, Any]:
    body = {"role": role, "base_revision": 0, "values": values, "submit": True}
    return cast(
        dict[str, Any],
        ok(api_client(user).post(f"{API}/cases/{case.pk}/revisions/", data=body, content_type=JSON), 201),
    )


def distribute_through_the_case_browser(page: Page, project: Project) -> None:
    """From the project card to the case browser; select both cases and distribute first, then second readings.
    Each time the rows must show the new reader before the next step (the status text is the same both times)."""
    manager_flow.open_screen(page, "/")
    page.get_by_test_id(f"project-{project.slug}").get_by_role("link", name="Cases", exact=True).click()
    expect(page.get_by_role("heading", name=f"Cases: {project.slug}")).to_be_visible()
    expect(page.get_by_test_id("case-count")).to_have_text("Cases: 2")
    rows = page.get_by_test_id("case-row")
    for role, reader, role_name in (
        ("first_reader", "annotator", "First reader"),
        ("second_reader", "reviewer", "Second reader"),
    ):
        for case in Case.objects.filter(project=project):
            page.get_by_label(f"Select case {case.pk}").check()
        expect(page.get_by_test_id("selected-count")).to_contain_text("2")
        page.get_by_label("Reading role to fill").select_option(role)
        page.get_by_role("button", name="Distribute").click()
        expect(rows.filter(has_text=f"{reader} ({role_name}, reading)")).to_have_count(2)
        expect(page.get_by_role("status")).to_have_text("2 assignment(s) made.")
        assert Assignment.objects.filter(case__project=project, role=role, user__username=reader).count() == 2
        shot(page, f"distribute-{role}")


def test_a_manager_goes_from_an_empty_project_to_a_downloaded_export(
    browsers: panel_helpers.Browsers, isolated_storage: Path, tmp_path: Path
) -> None:
    lead = cast(User, UserFactory(username="lead"))
    lead.is_staff = True  # an administrator, not a superuser: creates the project and becomes its manager
    lead.save(update_fields=["is_staff"])
    people = {name: cast(User, UserFactory(username=name)) for name, _role in MEMBERS}
    series_zip = write_zip(tmp_path / "series.zip")
    studies = [synthetic_study(seed) for seed in SEEDS]
    files_per_study = [len(_study_files(seed)) for seed in SEEDS]
    log = tmp_path / "worker.log"

    user_page = browsers.page_for(lead)
    user_page.page.set_default_navigation_timeout(60_000)  # 2 shared cores: the bundle can be slow
    page = user_page.goto("/")
    worker = start_worker(isolated_storage, log)
    try:
        # 1. The project: its row, its own image store, the creator its only member (its manager).
        card = manager_flow.create_project(
            page, slug=SLUG, name="Lung CT end to end", modality="CT", readers_per_case=2
        )
        assert_links_fit(card)
        project = Project.objects.get(slug=SLUG)
        assert (project.name, project.modality, project.readers_per_case) == ("Lung CT end to end", "CT", 2)
        assert project.created_by == lead and project.image_store_id is not None
        assert list(Membership.objects.filter(project=project).values_list("user__username", "role")) == [
            ("lead", Role.MANAGER)
        ]
        shot(page, "project")

        # 2. The schema: one version holding exactly the box, the mask and the ordinal grade.
        version = schema_flow.define_schema(page, SLUG, labels=LABELS)
        schema = LabelSchema.objects.get(project=project)
        assert schema.version == version == 1 and schema.created_by == lead
        labels = {label["key"]: label for label in schema.definition["labels"]}
        assert [(lb["key"], lb["kind"], lb["level"]) for lb in schema.definition["labels"]] == [
            ("lesion", "box", "region"),
            ("lesion_mask", "mask", "series"),
            ("grade", "ordinal", "study"),
        ]
        assert labels["lesion_mask"]["segments"] == [{"value": 1, "key": "lesion", "name": {"en": "Lesion"}}]
        assert [step["value"] for step in labels["grade"]["scale"]] == [1, 2, 3] and labels["grade"]["required"]
        assert labels["lesion"]["name"] == {"en": "Lesion", "zh-hans": "病灶"}
        shot(page, "schema")

        # 3. The members: one row per role, the manager still there.
        for name, role in MEMBERS:
            manager_flow.add_member(page, SLUG, name, role)
        assert set(Membership.objects.filter(project=project).values_list("user__username", "role")) == {
            ("lead", Role.MANAGER),
            *((name, str(role)) for name, role in MEMBERS),
        }
        shot(page, "members")

        # 4. The zip, uploaded with the progress bar reaching 100 %, ingested into this project's store only.
        report = manager_flow.upload_zip(page, SLUG, series_zip)
        job = Job.objects.get(project=project, kind="ingest")
        assert job.status == JobStatus.SUCCEEDED, (job.error, log.read_text()[-3000:])
        assert job.worker.endswith(f":{worker.pid}")
        assert job.result["counts"] == {"stored": sum(files_per_study), "duplicate": 0, "rejected": 0}
        history = manager_flow.progress_history(page)
        assert "uploading:100" in history and history[-1] == "done:100", history
        expect(report.locator("tr[data-status=stored]")).to_have_count(sum(files_per_study))
        stored = Study.objects.filter(store=project.image_store)
        assert set(stored.values_list("study_instance_uid", flat=True)) == {s.study_uid for s in studies}
        assert not Study.objects.exclude(store=project.image_store).exists()
        for study, count in zip(studies, files_per_study, strict=True):
            assert Instance.objects.filter(series__study__study_instance_uid=study.study_uid).count() == count
        shot(page, "upload")

        # 5. The cases: one per study, none assigned yet.
        assert manager_flow.create_cases(page) == 2
        cases = {
            study.study_uid: Case.objects.get(project=project, study__study_instance_uid=study.study_uid)
            for study in studies
        }
        assert Case.objects.filter(project=project).count() == 2
        assert {c.status for c in cases.values()} == {CaseStatus.AWAITING_FIRST_READ}
        assert not Assignment.objects.filter(case__project=project).exists()
        shot(page, "cases")

        # 6. Distribution: every case gets the annotator as first and the reviewer as second reader.
        distribute_through_the_case_browser(page, project)
        made = set(Assignment.objects.filter(case__project=project).values_list("case_id", "user__username", "role"))
        assert made == {
            (case.pk, reader, role)
            for case in cases.values()
            for reader, role in (("annotator", "first_reader"), ("reviewer", "second_reader"))
        }
        assert set(Assignment.objects.filter(case__project=project).values_list("how", "assigned_by__username")) == {
            ("automatic", "lead")
        }

        # 7. The readings, through the API as the readers: the first case agreed; on the second the reviewer
        # disagrees, so the two experts' panel decides (for the first reading).
        agreed_case, disputed_case = (cases[s.study_uid] for s in studies)
        submit(people["annotator"], agreed_case, "first_reader", reading(agreed_case, studies[0], grade=2))
        submit(people["reviewer"], agreed_case, "second_reader", reading(agreed_case, studies[0], grade=2))
        first = submit(people["annotator"], disputed_case, "first_reader", reading(disputed_case, studies[1], grade=3))
        submit(
            people["reviewer"],
            disputed_case,
            "second_reader",
            reading(disputed_case, studies[1], grade=1, truth=False),
        )
        agreed_case.refresh_from_db()
        disputed_case.refresh_from_db()
        assert agreed_case.status == CaseStatus.AGREED
        assert disputed_case.status == CaseStatus.IN_PANEL
        seated = set(
            Assignment.objects.filter(case=disputed_case, role="panel_member").values_list("user__username", flat=True)
        )
        assert seated == {"expert1", "expert2"}
        for expert in ("expert1", "expert2"):
            vote = {"voted_for_annotation": first["annotation"], "rationale": "the box and mask on the lesion"}
            ok(api_client(people[expert]).post(f"{API}/cases/{disputed_case.pk}/votes/", vote, JSON), 201)
        disputed_case.refresh_from_db()
        assert disputed_case.status == CaseStatus.ADJUDICATED
        assert PanelVote.objects.filter(case=disputed_case).count() == 2
        assert set(Assignment.objects.filter(case__project=project).values_list("status", flat=True)) == {
            Assignment.Status.SUBMITTED
        }

        # The members screen counts each reader's work as the Assignment rows do: everything assigned is done.
        manager_flow.open_members(page, SLUG)
        for name, role in MEMBERS:
            held = Assignment.objects.filter(case__project=project, user=people[name])
            expected = 2 if role in (Role.ANNOTATOR, Role.REVIEWER) else 1
            assert held.count() == held.filter(status=Assignment.Status.SUBMITTED).count() == expected
            row = page.get_by_test_id(f"member-{name}-{role}")
            expect(row.get_by_test_id("assigned")).to_have_text(str(expected))
            expect(row.get_by_test_id("done")).to_have_text(str(expected))
            expect(row.get_by_test_id("in-progress")).to_have_text("0")
        shot(page, "workload")

        # 8. The export, in MONAI and DICOM SEG, followed until ready; the Export row says what it holds.
        manager_flow.open_screen(page, f"/projects/{SLUG}/exports")
        expect(page.get_by_role("heading", name=f"Exports: {SLUG}")).to_be_visible()
        expect(page.get_by_label("MONAI / MSD (NIfTI)")).to_be_checked()
        page.get_by_label("DICOM SEG").check()
        page.get_by_role("button", name="Create export").click()
        row = page.get_by_test_id("export-1")
        expect(row).to_be_visible(timeout=60_000)
        export = Export.objects.get(project=project, version=1)
        assert sorted(export.formats) == ["dicom_seg", "monai"] and export.deidentify
        assert export.schema_version == 1
        assert len(export.selection) == 2
        expect(row).to_have_attribute("data-status", "succeeded", timeout=150_000)
        assert export.job_id is not None
        export_job = Job.objects.get(pk=export.job_id)
        assert export_job.status == JobStatus.SUCCEEDED, (export_job.error, log.read_text()[-3000:])
        export.refresh_from_db()
        assert export.left_out == [] and export.sha256
        shot(page, "export")

        # 9. The download: the zip the Export row describes, opened.
        with page.expect_download() as info:
            page.get_by_test_id("download-1").click()
        download = info.value
        assert download.suggested_filename == f"{SLUG}-v1.zip"
        path = download.path()
        assert path is not None
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == export.sha256
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            assert names - {"manifest.json"} == set(export.manifest)
            contents = {name: archive.read(name) for name in names}
        dataset = json.loads(contents["dataset.json"])
        assert dataset["labels"] == {"0": "background", "1": "lesion"}
        entries = [e for split in ("training", "validation", "test") for e in dataset.get(split, [])]
        assert len(entries) == 2
        truth_voxels = sorted(int((s.mask > 0).sum()) for s in studies)
        label_voxels: dict[str, int] = {}
        for entry in entries:
            assert entry["image"] == f"imagesTr/{entry['case']}.nii.gz"
            assert entry["label"] == f"labelsTr/{entry['case']}.nii.gz"
            image_path, label_path = tmp_path / "image.nii.gz", tmp_path / "label.nii.gz"
            image_path.write_bytes(contents[entry["image"]])  # nibabel reads gzipped NIfTI from files
            label_path.write_bytes(contents[entry["label"]])
            volume = cast(nib.Nifti1Image, nib.load(image_path))
            label = cast(nib.Nifti1Image, nib.load(label_path))
            assert volume.shape == label.shape == (64, 64, 8), (volume.shape, label.shape)
            values = np.asarray(label.dataobj)
            assert set(np.unique(values).tolist()) == {0, 1}
            label_voxels[entry["case"]] = int((values == 1).sum())
        # Both final labels are the true lesion masks (the agreed reading, and the panel's choice).
        assert sorted(label_voxels.values()) == truth_voxels
        segs = sorted(name for name in names if name.startswith("seg/"))
        assert segs == sorted(f"seg/{key}.dcm" for key in label_voxels), names
        for name in segs:
            assert_valid_dicom(contents[name], name)  # the standard's own checker: no error
            seg = highdicom.seg.segread(io.BytesIO(contents[name]))
            assert seg.SOPClassUID == pydicom.uid.SegmentationStorage
            [segment] = seg.SegmentSequence
            assert (segment.SegmentNumber, segment.SegmentLabel) == (1, "lesion")
            key = name.removeprefix("seg/").removesuffix(".dcm")
            assert int(np.count_nonzero(seg.get_volume().array)) == label_voxels[key]
        for study in studies:  # de-identified: no patient of the source files left
            text = b"".join(body for name, body in contents.items() if not name.endswith(".gz"))
            assert study.patient_id.encode() not in text
        user_page.assert_no_console_errors()

        # 10. Sign out, and a non-staff reader signs in on the app's page and lands in the app.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/accounts/login/"))
        assert "/admin/" not in page.url and "Django" not in page.content()
        reader = people["annotator"]
        assert not reader.is_staff
        page.get_by_label("Username").fill(reader.username)
        page.get_by_label("Password").fill(PASSWORD)
        shot(page, "sign-in")
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{user_page.base}/")
        expect(page.get_by_test_id("username")).to_have_text(reader.username)
        expect(page.get_by_role("heading", name="Your projects")).to_be_visible()
        expect(page.get_by_test_id(f"project-{SLUG}")).to_be_visible()
        assert "/admin/" not in page.url
        reader.refresh_from_db()
        assert reader.last_login is not None
        shot(page, "signed-in")
        user_page.assert_no_console_errors()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
