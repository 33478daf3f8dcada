"""Fixtures for the export tests: the annotation fixtures (three ingested synthetic CTs with ground truth, the
``nodules`` project with the chest_ct_nodules schema, one user per role), and cases driven to their final
label through the real review services: two readings that disagree, then a one-expert panel that decides.

Helpers: ``adjudicate(case, users, first_values, second_values)``, ``agree(case, users, values)``,
``run_export(export)`` (runs the job's handler synchronously, as the worker would), ``zip_files(export)``."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage

from annotation.models import AnnotationRevision, Case, CaseStatus, Project
from annotation.services import assignment_create
from datasets.models import Export
from datasets.services import export_build
from imaging.synthetic import SyntheticStudy
from jobs.models import Job, JobStatus
from jobs.services import run_job
from review.services import panel_vote, policy_for, reading_submit
from tests.annotation import conftest as annotation_fixtures
from tests.annotation.conftest import case_series, case_sops, chest_values

admin = annotation_fixtures.admin
bare_project = annotation_fixtures.bare_project
client_for = annotation_fixtures.client_for
ingested_studies = annotation_fixtures.ingested_studies
reading_cases = annotation_fixtures.reading_cases
reading_project = annotation_fixtures.reading_project
users = annotation_fixtures.users


def read(case: Case, user: User, role: str, values: dict[str, Any]) -> AnnotationRevision:
    """A reader's submitted reading, submitted and handed over to the review workflow as the API does."""
    assignment_create(case=case, user=user, role=role, assigned_by=None)
    return reading_submit(case=case, reader=user, role=role, base_revision=0, values=values)


def set_one_expert_panel(project: Project) -> None:
    policy = policy_for(project)
    policy.mode = "blind_double"
    policy.second_read_share = 1.0
    policy.panel_size = 1
    policy.quorum = 1
    policy.save()


def adjudicate(
    case: Case, users: dict[str, User], first: dict[str, Any], second: dict[str, Any], *, winner: str = "first"
) -> AnnotationRevision:
    """Two disagreeing readings, the panel votes for ``winner``; returns the winning reading's revision."""
    set_one_expert_panel(case.project)
    rev1 = read(case, users["annotator"], "first_reader", first)
    rev2 = read(case, users["reviewer"], "second_reader", second)
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_PANEL, case.status
    chosen = rev1 if winner == "first" else rev2
    panel_vote(case=case, expert=users["expert"], rationale="closer to the image", voted_for=chosen)
    case.refresh_from_db()
    assert case.status == CaseStatus.ADJUDICATED, case.status
    return chosen


def agree(case: Case, users: dict[str, User], values: dict[str, Any]) -> None:
    set_one_expert_panel(case.project)
    read(case, users["annotator"], "first_reader", values)
    read(case, users["reviewer"], "second_reader", values)
    case.refresh_from_db()
    assert case.status == CaseStatus.AGREED, case.status


def truth_values(case: Case, study: SyntheticStudy, **overrides: Any) -> dict[str, Any]:
    """Values whose mask is the study's ground-truth lesion mask and whose box is the lesion's box on its
    middle slice."""
    lesion = study.lesions[0]
    z0, y0, x0, z1, y1, x1 = lesion.bbox_voxel
    geometry = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}
    mask = study.mask.copy()
    return chest_values(case, mask=mask, geometry=geometry, slice_index=(z0 + z1) // 2, **overrides)


def other_values(case: Case) -> dict[str, Any]:
    """A reading that disagrees with the truth: a different, far-away block as mask and box."""
    series = case_series(case)
    mask = np.zeros((series.number_of_slices, series.rows or 0, series.columns or 0), dtype=np.uint8)
    mask[0:2, 2:6, 2:6] = 1
    return chest_values(case, mask=mask, geometry={"x": 2, "y": 2, "width": 4, "height": 4}, nodule_present="no")


@pytest.fixture
def adjudicated_cases(
    reading_project: Project, reading_cases: list[Case], ingested_studies: list[SyntheticStudy], users: dict[str, User]
) -> list[tuple[Case, AnnotationRevision]]:
    """The three cases adjudicated, the panel choosing the ground-truth reading; (case, winning revision)."""
    result = []
    for case, study in zip(reading_cases, ingested_studies, strict=True):
        winner = adjudicate(case, users, truth_values(case, study, comment="PHI-free comment"), other_values(case))
        result.append((case, winner))
    return result


def run_export(export: Export, *, expect: str | None = JobStatus.SUCCEEDED) -> Export:
    """Run the export's job; ``expect`` is the status it must end in (PARTIAL when cases are left out; None
    for either of the two)."""
    assert export.job_id is not None
    status = run_job(export.job_id, export_build)
    job = Job.objects.get(pk=export.job_id)
    if expect is None:
        assert status in (JobStatus.SUCCEEDED, JobStatus.PARTIAL), (status, job.error)
    else:
        assert status == expect, (status, job.error, job.result.get("left_out"))
    export.refresh_from_db()
    return export


def zip_bytes(export: Export) -> bytes:
    with default_storage.open(export.file, "rb") as handle:
        return handle.read()


def zip_files(export: Export) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes(export))) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


__all__ = ["case_sops"]
