"""Pre-labeling: AI revisions tagged with the model version, seen by readers as their starting proposal;
bad model files and series geometry end as failed jobs with a reason; pre-label on ingest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.test import Client

from annotation.models import Annotation, AnnotationRevision, Case, Project
from annotation.services import assignment_create, cases_create, load_mask
from imaging.models import Instance
from imaging.synthetic import SyntheticStudy
from inference import services
from inference.models import ModelVersion, Prediction
from jobs.models import Job, JobStatus
from jobs.services import run_job
from tests.annotation.conftest import ingest_study
from tests.factories import place_studies

pytestmark = pytest.mark.django_db

Trainer = Callable[..., tuple[Job, ModelVersion]]


def prelabel(project: Project, cases: list[Case] | None = None, version: ModelVersion | None = None) -> Job:
    job = services.prelabel_start(
        project=project, actor=None, case_ids=[c.pk for c in cases] if cases else None, version=version
    )
    run_job(job.pk, services.prelabel_handler)
    job.refresh_from_db()
    return job


@pytest.fixture
def active(trained: Trainer) -> ModelVersion:
    job, version = trained(training_params={"epochs": 3})
    assert version.status == "active", job.error
    return version


def test_prelabel_stores_an_ai_revision_tagged_with_the_model_version(
    active: ModelVersion, ingested_studies: list[SyntheticStudy], users: dict[str, User]
) -> None:
    project = active.project
    study = ingest_study(104)  # a new study: never seen in training
    place_studies(project, [study.study_uid])
    (case,) = cases_create(project=project, study_uids=[study.study_uid])
    job = prelabel(project, [case])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["device_note"] == "no GPU: ran on CPU"

    annotation = Annotation.objects.get(case=case, role="ai")
    revision = annotation.current_revision
    assert revision is not None
    assert revision.origin == "ai" and annotation.reader_id is None and revision.author_id is None
    assert revision.model_version == active.label and active.label.startswith(f"{project.slug}/v{active.number}:unet:")
    labels = [item["label"] for item in revision.items]
    assert "nodule_present" in labels and "nodule_mask" in labels
    mask = load_mask(revision.masks.get())
    assert mask.shape == study.mask.shape and set(np.unique(mask)) <= {0, 1}
    # Boxes come from the mask's connected components, on their largest slice.
    prediction = Prediction.objects.get(case=case, model_version=active)
    assert prediction.revision_id == revision.pk
    boxes = [i for i in revision.items if i["label"] == "nodule_box"]
    assert len(boxes) == len(prediction.components)
    present = next(i["value"] for i in revision.items if i["label"] == "nodule_present")
    assert present == ("yes" if prediction.components else "no")
    assert set(prediction.probabilities["nodule_present"]) == {"yes", "no"}

    # Running the same job again produces nothing new (upsert on case and version).
    again = services.prelabel_start(project=project, actor=None, case_ids=[case.pk], version=active)
    run_job(again.pk, services.prelabel_handler)
    assert AnnotationRevision.objects.filter(annotation=annotation).count() == 1


def test_readers_assigned_to_the_case_see_the_ai_proposal_and_others_do_not(
    active: ModelVersion, reading_cases: list[Case], users: dict[str, User], client_for: Callable[..., Client]
) -> None:
    project = active.project
    study = ingest_study(105)
    place_studies(project, [study.study_uid])
    (case,) = cases_create(project=project, study_uids=[study.study_uid])
    assert prelabel(project, [case]).status == JobStatus.SUCCEEDED
    assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=None)

    reader = client_for(users["annotator"])
    listed = reader.get(f"/api/v1/cases/{case.pk}/annotations/").json()
    ai = [a for a in listed if a["role"] == "ai"]
    assert len(ai) == 1 and ai[0]["reader"] is None
    revision = reader.get(f"/api/v1/annotations/{ai[0]['id']}/revisions/1/").json()
    assert revision["origin"] == "ai" and revision["model_version"] == active.label
    predictions = reader.get(f"/api/v1/cases/{case.pk}/predictions/").json()
    assert predictions[0]["model_label"] == active.label
    # The reviewer is not on this case: neither the proposal nor the prediction is shown.
    assert client_for(users["reviewer"]).get(f"/api/v1/cases/{case.pk}/predictions/").status_code == 404


def test_a_weights_file_whose_sha256_does_not_match_fails_the_job(
    untrained: ModelVersion, reading_cases: list[Case], isolated_storage: Path
) -> None:
    path = Path(default_storage.path(untrained.weights_file))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    job = prelabel(untrained.project, reading_cases[:1])
    assert job.status == JobStatus.FAILED and "does not match its SHA-256" in job.error
    assert not Annotation.objects.filter(role="ai").exists() and not Prediction.objects.exists()


def test_a_weights_file_that_does_not_load_fails_the_job(untrained: ModelVersion, reading_cases: list[Case]) -> None:
    import hashlib

    garbage = b"not a torch file"
    path = Path(default_storage.path(untrained.weights_file))
    path.write_bytes(garbage)
    ModelVersion.objects.filter(pk=untrained.pk).update(weights_sha256=hashlib.sha256(garbage).hexdigest())
    untrained.refresh_from_db()
    job = prelabel(untrained.project, reading_cases[:1])
    assert job.status == JobStatus.FAILED and "does not load into unet" in job.error
    assert not Prediction.objects.exists()


def test_a_series_the_preprocessing_cannot_handle_fails_with_the_reason(
    untrained: ModelVersion, ingested_studies: list[SyntheticStudy]
) -> None:
    project = untrained.project
    study = ingest_study(106)
    place_studies(project, [study.study_uid])
    (case,) = cases_create(project=project, study_uids=[study.study_uid])
    Instance.objects.filter(series__study__study_instance_uid=study.study_uid).update(
        image_orientation=[0, 1, 0, 0, 0, -1]  # sagittal
    )
    job = prelabel(project, [case])
    assert job.status == JobStatus.FAILED
    assert f"case {case.pk}" in job.error and "is not axial" in job.error
    assert not Annotation.objects.filter(case=case, role="ai").exists()


def test_prelabel_on_ingest_when_the_project_asks_for_it(
    untrained: ModelVersion, django_capture_on_commit_callbacks: Callable[..., object], settings: object
) -> None:
    project = untrained.project
    services.inference_settings_update(project=project, prelabel_on_ingest=True)
    study = ingest_study(107)
    place_studies(project, [study.study_uid])
    (case,) = cases_create(project=project, study_uids=[study.study_uid])
    job = Job.objects.get(kind="prelabel", project=project)
    assert job.params == {"model_version": untrained.pk, "cases": [case.pk]} and job.queue == "gpu"
    run_job(job.pk, services.prelabel_handler)
    assert Prediction.objects.filter(case=case, model_version=untrained).exists()
    # Creating the same case again (idempotent) does not start another job.
    cases_create(project=project, study_uids=[study.study_uid])
    assert Job.objects.filter(kind="prelabel", project=project).count() == 1


def test_no_prelabel_on_ingest_when_off(untrained: ModelVersion) -> None:
    study = ingest_study(108)
    place_studies(untrained.project, [study.study_uid])
    cases_create(project=untrained.project, study_uids=[study.study_uid])
    assert not Job.objects.filter(kind="prelabel").exists()


def test_classification_prediction_stores_probabilities_and_a_saliency_map(
    agreed_cases: list[Case], users: dict[str, User]
) -> None:
    from tests.inference.conftest import train

    project = agreed_cases[0].project
    job, version = train(
        project, users["manager"], task_type="classification", architecture="densenet121",
        training_params={"epochs": 1},
        architecture_params={"init_features": 8, "growth_rate": 4, "block_config": [1, 1, 1, 1]},
    )  # fmt: skip
    assert job.status == JobStatus.SUCCEEDED, job.error
    study = ingest_study(109)
    place_studies(project, [study.study_uid])
    (case,) = cases_create(project=project, study_uids=[study.study_uid])
    result = prelabel(project, [case], version)
    assert result.status == JobStatus.SUCCEEDED, result.error
    prediction = Prediction.objects.get(case=case)
    probs = prediction.probabilities["nodule_present"]
    assert set(probs) == {"no", "yes"} and abs(sum(probs.values()) - 1) < 1e-3
    heat = np.load(__import__("io").BytesIO(services.saliency_bytes(prediction)))
    assert heat.shape == (32, 64, 64) and float(heat.max()) <= 1.0
    revision = prediction.revision
    assert revision is not None
    assert [i["label"] for i in revision.items] == ["nodule_present"]
