"""Evaluation jobs: a version's metric on held-out adjudicated cases; the metric helpers training uses
for its promotion gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from config.errors import ConflictError
from config.types import User
from inference import registry
from inference.models import ModelStatus, ModelVersion, TaskType
from inference.services.data import _examples, adjudicated_cases
from jobs.models import Job, JobKind
from jobs.services import JobFailed, Progress, job_create

if TYPE_CHECKING:
    import torch

    from inference import engine

# torch and MONAI (about 4 s of CPU to import) load inside the functions that run models, never when this
# module is imported: the web process imports it through the API views and the ingest hook, and serves
# requests that never touch a model.


def _version_for_job(job: Job) -> ModelVersion:
    version = (
        ModelVersion.objects.select_related("project", "parent").filter(pk=job.params.get("model_version")).first()
    )
    if version is None:
        raise JobFailed(f"Model version {job.params.get('model_version')} does not exist")
    return version


def _metric_name(version: ModelVersion) -> str:
    return "accuracy" if version.task_type == TaskType.CLASSIFICATION else "dice"


def _evaluate(
    version: ModelVersion, model: torch.nn.Module, examples: list[engine.Example], device: torch.device
) -> dict[str, Any]:
    from inference import engine

    if version.task_type == TaskType.INTERACTIVE:
        from inference.interactive import learned

        intensity = engine.preprocessing_spec(version.preprocessing)["intensity"]
        params = {**version.training_params, "intensity": intensity}  # the region-growing prior works in HU
        return learned.evaluate_interactive(model, examples, params=params, device=device)
    if version.task_type == TaskType.CLASSIFICATION:
        return engine.evaluate_classification(model, examples, device=device)
    spec = engine.preprocessing_spec(version.preprocessing)
    return engine.evaluate_segmentation(model, examples, roi_size=spec["roi_size"], device=device)


# --- Evaluation --------------------------------------------------------------------------------------------


def evaluate_start(*, version: ModelVersion, actor: User | None, case_ids: list[int] | None = None) -> Job:
    if version.status in (ModelStatus.TRAINING, ModelStatus.FAILED):
        raise ConflictError(f"Model version {version.number} is {version.status}; it has no weights to evaluate")
    return job_create(
        kind=JobKind.EVALUATE,
        task_name="inference.tasks.evaluate",
        project=version.project,
        created_by=actor,
        params={"model_version": version.pk, "cases": case_ids or []},
        queue="gpu",
    )


def evaluate_handler(job: Job, progress: Progress) -> dict[str, Any]:
    """The version's metric on held-out adjudicated cases: the given ones, else its own validation split."""
    from inference import engine

    version = _version_for_job(job)
    device, device_note = engine.pick_device()
    model = registry.load_network(version)
    wanted = set(job.params.get("cases") or version.training_snapshot.get("validation", []))
    labelled = [lc for lc in adjudicated_cases(version.project) if lc.case.pk in wanted]
    if not labelled:
        raise JobFailed("No adjudicated held-out cases to evaluate on")
    progress(message=device_note, total=len(labelled))
    examples, skipped = _examples(version, labelled)
    result = _evaluate(version, model, examples, device)
    return {
        "model_version": version.pk,
        "device": str(device),
        "device_note": device_note,
        "skipped": skipped,
        **result,
    }
