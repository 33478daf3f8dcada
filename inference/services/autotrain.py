"""Automatic training: a new version once enough adjudicated cases are new.

Run when a case becomes agreed or adjudicated (``inference.hooks.on_case_labelled`` queues the Celery task
``inference.tasks.autotrain_check`` after the commit) and by ``manage.py inference_autotrain``. Checking twice, or
from two workers at once, starts one training: the check holds the project's row lock."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from annotation.models import Project
from inference.models import InferenceSettings, ModelStatus, ModelVersion, TaskType
from inference.services.data import adjudicated_cases
from inference.services.training import model_versions_reconcile, training_start
from jobs.models import Job


def _seen(project: Project, task_type: str) -> set[int]:
    """Cases the latest version of the task (of adjudicated labels) has already trained or been checked on."""
    latest = (
        ModelVersion.objects.filter(project=project, task_type=task_type, demo=False)
        .exclude(status=ModelStatus.FAILED)
        .exclude(Q(training_snapshot={}))
        .order_by("-number")
        .first()
    )
    if latest is None:
        return set()
    snapshot = latest.training_snapshot
    return (
        set(snapshot.get("train", []))
        | set(snapshot.get("validation", []))
        | set(snapshot.get("skipped_without_label", []))
    )


def autotrain_check(*, project: Project) -> Job | None:
    """Start training when ``auto_train_every`` adjudicated cases are new since the latest version's
    snapshot and no training is under way: the project's default task, and its interactive model too once the
    project has one trained on adjudicated labels. Returns the (first) job started."""
    config = InferenceSettings.objects.filter(project=project).first()
    if config is None or config.auto_train_every == 0:
        return None
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)  # two checks at once start one training
        model_versions_reconcile(project)
        if ModelVersion.objects.filter(project=project, status=ModelStatus.TRAINING).exists():
            return None
        tasks = [config.task_type]
        has_interactive = (
            ModelVersion.objects.filter(project=project, task_type=TaskType.INTERACTIVE, demo=False)
            .exclude(status=ModelStatus.FAILED)
            .exists()
        )
        if has_interactive and TaskType.INTERACTIVE not in tasks:
            tasks.append(TaskType.INTERACTIVE)
        labelled = adjudicated_cases(project)
        started = []
        for task in tasks:
            seen = _seen(project, task)
            if len([lc for lc in labelled if lc.case.pk not in seen]) >= config.auto_train_every:
                # An interactive model is a UNet whatever the project's default architecture.
                arch = "unet" if task == TaskType.INTERACTIVE else None
                started.append(training_start(project=project, actor=None, task_type=task, architecture=arch))
        return started[0] if started else None
