"""Training on adjudicated labels, promotion by validation metric on the same held-out cases, rollback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from annotation.models import Case, Project
from annotation.services import assignment_create
from inference import registry
from inference.models import ModelStatus, ModelVersion, ModelVersionEvent
from jobs.models import Job, JobStatus
from tests.annotation.conftest import chest_values
from tests.inference.conftest import train

pytestmark = pytest.mark.django_db

Trainer = Callable[..., tuple[Job, ModelVersion]]


def test_only_a_better_version_is_promoted_on_the_same_held_out_cases(trained: Trainer) -> None:
    # v1 does not learn (learning rate 0): promoted only because it is the first model of the task.
    job1, v1 = trained(training_params={"learning_rate": 0.0, "epochs": 1})
    assert job1.status == JobStatus.SUCCEEDED, job1.error
    assert v1.status == ModelStatus.ACTIVE and job1.result["promoted"] is True
    assert job1.result["device_note"] == "no GPU: ran on CPU" and v1.device == "cpu"

    # v2 learns: it beats v1 on the same held-out cases and replaces it.
    job2, v2 = trained()
    v1.refresh_from_db()
    assert job2.status == JobStatus.SUCCEEDED, job2.error
    comparison = job2.result["comparison"]
    assert comparison["candidate"] > comparison["active"], comparison
    assert v2.status == ModelStatus.ACTIVE and v1.status == ModelStatus.RETIRED
    assert v2.parent_id == v1.pk  # transfer learning from the active version's weights
    assert v2.training_snapshot["validation"] == v1.training_snapshot["validation"]  # same seed, same split

    # v3 does not learn: it loses to v2 and stays a candidate; v2 stays active.
    job3, v3 = trained(training_params={"learning_rate": 0.0, "epochs": 1}, transfer=False)
    v2.refresh_from_db()
    assert job3.status == JobStatus.SUCCEEDED and job3.result["promoted"] is False
    assert job3.result["comparison"]["candidate"] < job3.result["comparison"]["active"]
    assert v3.status == ModelStatus.CANDIDATE and v2.status == ModelStatus.ACTIVE
    assert "not better" in job3.result["comparison"]["reason"]

    # History per epoch is in the job (for the progress bar and the curve) and on the version.
    assert [row["epoch"] for row in job2.history] == list(range(1, 7))
    assert all("loss" in row and "val_dice" in row for row in v2.history)
    # Events: who and why, in order.
    assert [(e.from_status, e.to_status) for e in ModelVersionEvent.objects.filter(model_version=v1)] == [
        ("", "training"), ("training", "candidate"), ("candidate", "active"), ("active", "retired"),
    ]  # fmt: skip


def test_training_uses_adjudicated_and_consensus_labels_only(
    trained: Trainer, agreed_cases: list[Case], users: dict[str, User]
) -> None:
    project = agreed_cases[0].project
    # An extra reader's draft reading on a case is not training data.
    assignment_create(case=agreed_cases[0], user=users["expert"], role="panel_member", assigned_by=None)
    job, version = trained(training_params={"epochs": 1})
    snapshot = version.training_snapshot
    assert sorted(snapshot["train"] + snapshot["validation"]) == sorted(c.pk for c in agreed_cases)
    from annotation.models import AnnotationRevision

    roles = set(
        AnnotationRevision.objects.filter(pk__in=snapshot["revisions"]).values_list("annotation__role", flat=True)
    )
    assert roles == {"consensus"}
    assert snapshot["split"] == "by patient" and project.pk == version.project_id


def test_training_without_adjudicated_labels_fails_readably_and_is_never_promoted(
    tiny_project: Project, users: dict[str, User]
) -> None:
    job, version = train(tiny_project, users["manager"])
    assert job.status == JobStatus.FAILED
    assert "no adjudicated or agreed cases to train on" in job.error
    assert version.status == ModelStatus.FAILED and version.weights_file == ""
    with pytest.raises(registry.InvalidModelTransitionError):
        registry.model_version_promote(version=version, actor=users["manager"], reason="try")
    version.refresh_from_db()
    assert version.status == ModelStatus.FAILED


def test_manual_promotion_and_one_call_rollback(trained: Trainer, users: dict[str, User]) -> None:
    _, v1 = trained()
    _, v2 = trained(training_params={"learning_rate": 0.0, "epochs": 1}, transfer=False)
    assert v1.status == ModelStatus.ACTIVE and v2.status == ModelStatus.CANDIDATE
    registry.model_version_promote(version=v2, actor=users["manager"], reason="reader feedback")
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == (ModelStatus.RETIRED, ModelStatus.ACTIVE)
    assert v2.events.last().actor == users["manager"]  # type: ignore[union-attr]

    restored = registry.model_version_rollback(project=v1.project, task_type="segmentation", actor=users["manager"])
    v2.refresh_from_db()
    assert restored.pk == v1.pk and restored.status == ModelStatus.ACTIVE and v2.status == ModelStatus.RETIRED
    # Nothing was overwritten: both weights files are still there, with their hashes.
    assert v1.weights_sha256 != v2.weights_sha256
    assert registry.load_network(v1) is not None and registry.load_network(v2) is not None


def test_model_events_are_append_only(trained: Trainer) -> None:
    _, version = trained(training_params={"epochs": 1})
    event = ModelVersionEvent.objects.filter(model_version=version).first()
    assert event is not None
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        ModelVersionEvent.objects.filter(pk=event.pk).update(reason="rewritten")


def test_a_raw_single_reading_is_not_training_data(
    tiny_project: Project, reading_cases: list[Case], users: dict[str, User]
) -> None:
    from annotation.services import annotation_save

    case = reading_cases[0]
    assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=None)
    annotation_save(case=case, reader=users["annotator"], role="first_reader", base_revision=0,
                    values=chest_values(case, mask=True), submit=True)  # fmt: skip
    job, version = train(tiny_project, users["manager"])
    assert job.status == JobStatus.FAILED and "adjudicated" in job.error


def test_automatic_training_after_n_new_adjudicated_cases(agreed_cases: list[Case], users: dict[str, User]) -> None:
    from django.core.management import call_command

    from inference.services import autotrain_check, inference_settings_update

    project = agreed_cases[0].project
    inference_settings_update(project=project, auto_train_every=4)
    assert autotrain_check(project=project) is None  # 3 agreed cases: not yet
    inference_settings_update(project=project, auto_train_every=3)
    call_command("inference_autotrain")
    jobs = Job.objects.filter(kind="train", project=project)
    assert jobs.count() == 1 and jobs.get().created_by is None and jobs.get().queue == "gpu"
    call_command("inference_autotrain")  # a training is under way: no second one
    assert Job.objects.filter(kind="train", project=project).count() == 1


def test_a_version_whose_training_job_was_given_up_is_failed_not_left_training(
    tiny_project: Project, users: dict[str, User]
) -> None:
    from inference.services import model_versions_reconcile, training_start
    from jobs.services import job_claim, job_fail

    job = training_start(project=tiny_project, actor=users["manager"])
    claimed = job_claim(job.pk, worker="gone-host:1")
    assert claimed is not None
    job_fail(claimed, "The worker running this job stopped 3 times; giving up.")
    assert model_versions_reconcile(tiny_project) == 1
    version = ModelVersion.objects.get(training_job=job)
    assert version.status == ModelStatus.FAILED and "stopped 3 times" in version.events.last().reason  # type: ignore[union-attr]


def test_evaluate_job_reports_the_metric_on_held_out_cases(trained: Trainer) -> None:
    from inference.services import evaluate_handler, evaluate_start
    from jobs.services import run_job

    _, version = trained(training_params={"epochs": 1})
    job = evaluate_start(version=version, actor=None)
    assert run_job(job.pk, evaluate_handler) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    assert job.result["cases"] == len(version.training_snapshot["validation"]) >= 1
    assert job.result["dice"] == pytest.approx(version.metrics["dice"])
    assert job.result["device_note"] == "no GPU: ran on CPU"
