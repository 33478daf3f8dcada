"""Demo models (issue 17, item 5): the run command's demo project shows pre-labels and working prompts from its
first start, from small models trained in background jobs on the synthetic studies' known truth.

A demo version carries ``demo=True``. It is trained by the ordinary training job, but on the truth the synthetic
generator returns for each study (regenerated from its arguments, kept in the version's training parameters),
never on readers' labels; it never transfers weights to or from a model of adjudicated labels, is never
promoted over one, and the first model trained on adjudicated labels replaces it (see ``training``)."""

from __future__ import annotations

from typing import Any

from annotation.models import Case, Project
from inference.models import ModelStatus, ModelVersion, TaskType
from inference.services.data import LabelledCase
from jobs.models import Job

# Small enough for a 2-core CPU to train each in a few minutes while the demo is already in use.
DEMO_NETWORK: dict[str, Any] = {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1, "dropout": 0.1}
DEMO_PREPROCESSING: dict[str, Any] = {"roi_size": [16, 64, 64]}
DEMO_TRAINING: dict[str, Any] = {
    "epochs": 8,
    "learning_rate": 0.01,
    "batch_size": 4,
    "patch_size": [16, 48, 48],
    "samples_per_case": 4,
    "validation_fraction": 0.25,
}
DEMO_TASKS = (TaskType.SEGMENTATION, TaskType.INTERACTIVE)


def demo_cases(version: ModelVersion) -> list[LabelledCase]:
    """The version's cases with the known truth of their synthetic study (regenerated from its arguments)."""
    from imaging.synthetic import generate_ct_study

    truths = {}
    for arguments in version.training_params.get("demo_truth", []):
        study = generate_ct_study(**arguments)
        truths[study.study_uid] = study.mask
    cases = Case.objects.filter(
        project=version.project, study__study_instance_uid__in=list(truths), series__isnull=True
    ).select_related("study", "project")
    return [LabelledCase(case, None, truths[case.study.study_instance_uid]) for case in cases.order_by("pk")]


def demo_models_start(*, project: Project, studies: list[dict[str, Any]]) -> list[Job]:
    """Queue the demo trainings (whole-study segmentation for pre-labels, interactive for prompts) that the
    project does not have yet; a second call queues nothing. ``studies``: ``generate_ct_study`` arguments."""
    from inference.services.training import training_start

    jobs = []
    for task in DEMO_TASKS:
        exists = (
            ModelVersion.objects.filter(project=project, task_type=task, demo=True)
            .exclude(status=ModelStatus.FAILED)
            .exists()
        )
        if exists or ModelVersion.objects.filter(project=project, task_type=task, demo=False).exists():
            continue  # already there, or the project has its own models
        jobs.append(
            training_start(
                project=project,
                actor=None,
                task_type=task,
                architecture="unet",
                architecture_params=DEMO_NETWORK,
                preprocessing=DEMO_PREPROCESSING,
                training_params=DEMO_TRAINING,
                transfer=False,
                demo_truth=studies,
            )
        )
    return jobs


def demo_after_training(version: ModelVersion) -> Job | None:
    """Once the demo segmentation model is active, pre-label the demo cases with it (a background job)."""
    from inference.services.prelabel import prelabel_start

    if version.task_type != TaskType.SEGMENTATION:
        return None
    return prelabel_start(project=version.project, actor=None, version=version)
