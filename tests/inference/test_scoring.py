"""Active learning: scores by strategy, recorded per case, set priorities that the worklist follows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.test import Client

from annotation.models import Case, Project
from annotation.services import assignment_claim_next, cases_create
from config.errors import NotFoundError
from inference import services
from inference.models import CaseScore, ModelVersion
from jobs.models import Job, JobStatus
from jobs.services import run_job
from tests.annotation.conftest import ingest_study
from tests.factories import place_studies

pytestmark = pytest.mark.django_db

Trainer = Callable[..., tuple[Job, ModelVersion]]
NEW_SEEDS = (111, 112, 113, 114)


@pytest.fixture
def unread(trained: Trainer) -> tuple[ModelVersion, list[Case]]:
    _, version = trained(training_params={"epochs": 3})
    project = version.project
    studies = [ingest_study(seed) for seed in NEW_SEEDS]
    place_studies(project, [s.study_uid for s in studies])
    return version, cases_create(project=project, study_uids=[s.study_uid for s in studies])


def score(project: Project, strategy: str) -> Job:
    job = services.score_start(project=project, actor=None, strategy=strategy)
    run_job(job.pk, services.score_handler)
    job.refresh_from_db()
    return job


def test_the_worklist_serves_cases_in_the_order_of_their_uncertainty(
    unread: tuple[ModelVersion, list[Case]], users: dict[str, User], client_for: Callable[..., Client]
) -> None:
    version, cases = unread
    project = version.project
    job = score(project, "uncertainty")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["device_note"] == "no GPU: ran on CPU" and job.result["scored"] == len(cases)
    rows = list(CaseScore.objects.filter(job_id=job.pk).order_by("rank"))
    assert {r.case_id for r in rows} == {c.pk for c in cases}  # the agreed training cases are not unread
    assert [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)
    assert all(r.strategy == "uncertainty" and r.model_version_id == version.pk for r in rows)
    assert all(r.uncertainty is not None and r.uncertainty > 0 for r in rows)
    expected = [r.case_id for r in rows]
    for case in Case.objects.filter(pk__in=expected):
        assert case.priority_source == "active_learning:uncertainty"

    # The reader's "next" follows the scores, and so does the managers' case list.
    claimed = []
    for _ in expected:
        assignment = assignment_claim_next(project=project, user=users["annotator"], role="first_reader")
        assert assignment is not None
        claimed.append(assignment.case_id)
        assignment.status = "submitted"
        assignment.save(update_fields=["status"])
    assert claimed == expected
    listed = client_for(users["manager"]).get(f"/api/v1/projects/{project.slug}/cases/?limit=100").json()
    order = [c["id"] for c in listed["results"] if c["id"] in expected]
    assert order == expected


def test_random_strategy_records_its_choice_and_scores_are_append_only(unread: tuple[ModelVersion, list[Case]]) -> None:
    version, cases = unread
    job = score(version.project, "random")
    assert job.status == JobStatus.SUCCEEDED, job.error
    rows = CaseScore.objects.filter(job_id=job.pk)
    assert rows.count() == len(cases) and {r.strategy for r in rows} == {"random"}
    assert all(0 <= r.score < 1 and r.uncertainty is None for r in rows)
    row = rows.first()
    assert row is not None
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        CaseScore.objects.filter(pk=row.pk).update(score=2.0)


def test_uncertainty_with_disagreement_ranks_cases_like_those_the_panel_decided() -> None:
    # Past cases: the uncertain ones (0.6-0.7) went to the panel, the confident ones (0.1-0.2) did not.
    history = (np.array([0.1, 0.15, 0.2, 0.6, 0.65, 0.7]), np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    predicted = services.predicted_disagreement(np.array([0.12, 0.66]), history, k=3)
    assert predicted.tolist() == [0.0, 1.0]
    assert services.predicted_disagreement(np.array([0.5]), (np.array([]), np.array([]))).tolist() == [0.0]


def test_uncertainty_disagreement_job_records_both_parts(unread: tuple[ModelVersion, list[Case]]) -> None:
    version, cases = unread
    job = score(version.project, "uncertainty_disagreement")
    assert job.status == JobStatus.SUCCEEDED, job.error
    rows = CaseScore.objects.filter(job_id=job.pk)
    assert rows.count() == len(cases)
    assert all(r.disagreement == 0.0 for r in rows)  # no case of this project has been disputed yet
    assert max(r.score for r in rows) == pytest.approx(0.5)  # the most uncertain case, normalised


def test_scoring_by_uncertainty_needs_an_active_model(tiny_project: Project) -> None:
    with pytest.raises(NotFoundError, match="no active model"):
        services.score_start(project=tiny_project, actor=None, strategy="uncertainty")
    assert not Job.objects.exists()
