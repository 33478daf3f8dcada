"""The models screen in Chromium against a live server (issue 16, item 7): a manager sees the project's model
versions with their metrics and training curve, promotes a candidate (the database's active version changes) and
rolls back, starts a training job whose progress the screen follows to the end (the job is run here, through the
real job lifecycle, on a tiny UNet), and starts evaluation, pre-labeling and scoring jobs."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from annotation.models import Case, Project
from annotation.services import current_schema
from inference import engine, registry, services
from inference.models import ModelStatus, ModelVersion
from jobs.models import Job, JobStatus
from jobs.services import run_job
from tests.browser import panel_helpers
from tests.inference import conftest as inference_fixtures

pytestmark = pytest.mark.django_db(transaction=True)

browsers = panel_helpers.browsers
agreed_cases = inference_fixtures.agreed_cases
tiny_project = inference_fixtures.tiny_project
reading_cases = inference_fixtures.reading_cases

HISTORY = [{"epoch": e, "loss": round(1.0 / e, 4), "val_dice": round(0.2 * e, 4)} for e in (1, 2, 3)]


def candidate(project: Project, *, metrics: dict[str, Any], history: list[dict[str, Any]]) -> ModelVersion:
    """A trained-looking candidate (fresh weights of the project's tiny UNet, stored and hashed), never promoted."""
    config = services.settings_for(project)
    version = registry.model_version_create(
        project=project,
        task_type="segmentation",
        architecture="unet",
        architecture_params={**engine.DEFAULT_ARCHITECTURE_PARAMS["unet"], **config.architecture_params},
        preprocessing=engine.preprocessing_spec(config.preprocessing),
        label_map=services.default_label_map(current_schema(project).definition),
        training_params={},
        parent=None,
        created_by=None,
    )
    data = engine.weights_to_bytes(engine.build_network("unet", version.architecture_params))
    name, digest = registry.store_weights(version, data)
    return registry.model_version_finish_training(
        version=version, weights_file=name, weights_sha256=digest, weights_bytes=len(data),
        snapshot={}, metrics=metrics, history=history, device="cpu",
    )  # fmt: skip


def test_manager_promotes_rolls_back_and_follows_a_training_job(
    browsers: panel_helpers.Browsers, agreed_cases: list[Case], users: dict[str, User]
) -> None:
    project = agreed_cases[0].project
    first = inference_fixtures.register_untrained(project)
    second = candidate(project, metrics={"dice": 0.62, "hd95": 4.5}, history=HISTORY)
    assert first.status == ModelStatus.ACTIVE and second.status == ModelStatus.CANDIDATE

    user_page = browsers.page_for(users["manager"], language="en")
    page = user_page.goto(f"/projects/{project.slug}/models")
    expect(page.get_by_role("heading", name=f"Models: {project.slug}")).to_be_visible()
    row1 = page.get_by_test_id(f"model-{first.number}")
    row2 = page.get_by_test_id(f"model-{second.number}")
    expect(row1).to_have_attribute("data-status", "active")
    expect(row2).to_have_attribute("data-status", "candidate")
    expect(row2).to_contain_text("dice 0.620")

    # The candidate's metrics and training curve.
    row2.get_by_role("button", name="Details").click()
    details = page.get_by_test_id("model-details")
    expect(details.get_by_test_id("model-metrics")).to_contain_text("hd95")
    expect(details.get_by_test_id("training-curve")).to_be_visible()
    expect(details.get_by_test_id("curve-summary")).to_contain_text("Loss 0.333, Validation Dice 0.600")
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "models-screen")

    # Promote by hand: the database's active version changes, the old one is retired.
    page.get_by_label("Reason (optional)").fill("better on my cases")
    row2.get_by_role("button", name="Promote").click()
    expect(page.get_by_test_id("models-notice")).to_have_text(f"Version {second.number} is now active.")
    expect(row2).to_have_attribute("data-status", "active")
    expect(row1).to_have_attribute("data-status", "retired")
    active = ModelVersion.objects.get(project=project, task_type="segmentation", status=ModelStatus.ACTIVE)
    assert active.pk == second.pk
    assert active.events.order_by("-pk").first().reason == "better on my cases"  # type: ignore[union-attr]
    first.refresh_from_db()
    assert first.status == ModelStatus.RETIRED

    # Roll back: the first version is active again.
    page.get_by_label("Reason (optional)").fill("")
    page.get_by_role("button", name="Roll back to the previous version").click()
    expect(row1).to_have_attribute("data-status", "active")
    assert ModelVersion.objects.get(project=project, status=ModelStatus.ACTIVE).pk == first.pk

    # Train: a job and a version in training; the job runs here (tiny UNet) while the screen follows it.
    page.get_by_role("button", name="Train a new version").click()
    expect(page.get_by_test_id("models-notice")).to_contain_text("Training job #")
    job = Job.objects.get(project=project, kind="train")
    assert job.status == JobStatus.QUEUED and job.created_by == users["manager"]
    third = ModelVersion.objects.get(training_job=job)
    assert third.status == ModelStatus.TRAINING
    job_row = page.get_by_test_id(f"job-{job.pk}")
    expect(job_row).to_have_attribute("data-status", "queued")
    assert run_job(job.pk, services.train_handler) == JobStatus.SUCCEEDED
    expect(job_row).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(job_row.locator("progress")).to_have_attribute("value", "100")
    third.refresh_from_db()
    assert third.status in (ModelStatus.CANDIDATE, ModelStatus.ACTIVE) and len(third.history) == 6
    row3 = page.get_by_test_id(f"model-{third.number}")
    expect(row3).to_have_attribute("data-status", third.status, timeout=30_000)

    # Evaluate, pre-label and score now: each starts its job.
    row3.get_by_role("button", name="Evaluate").click()
    expect(page.get_by_test_id("models-notice")).to_contain_text("Evaluation job #")
    page.get_by_role("button", name="Pre-label now").click()
    expect(page.get_by_test_id("models-notice")).to_contain_text("Pre-labeling job #")
    page.get_by_role("button", name="Score now").click()
    expect(page.get_by_test_id("models-notice")).to_contain_text("Scoring job #")
    kinds = set(Job.objects.filter(project=project).values_list("kind", flat=True))
    assert kinds == {"train", "evaluate", "prelabel", "score"}
    evaluation = Job.objects.get(project=project, kind="evaluate")
    assert evaluation.params["model_version"] == third.pk
    for other in Job.objects.filter(project=project).exclude(kind="train"):
        expect(page.get_by_test_id(f"job-{other.pk}")).to_be_visible()
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "models-jobs")
    user_page.assert_no_console_errors()
