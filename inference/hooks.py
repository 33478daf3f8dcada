"""Light hooks other apps call through settings; they import the model code (torch) only when needed."""

from __future__ import annotations

from django.db import transaction

from annotation.models import Case, Project
from inference.models import InferenceSettings, Prediction


def on_cases_created(*, project: Project, cases: list[Case]) -> None:
    """settings.ANNOTATION_CASES_CREATED_HANDLER: pre-label new cases when the project asks for it and
    has an active model; and check whether enough new labels call for automatic training."""
    config = InferenceSettings.objects.filter(project=project).first()
    if config is None:
        return
    from inference import registry, services

    if config.prelabel_on_ingest and cases:
        version = registry.active_version(project)  # a whole-study model, never an interactive one
        if version is not None:
            done = set(
                Prediction.objects.filter(case__in=cases, model_version=version).values_list("case_id", flat=True)
            )
            todo = [c.pk for c in cases if c.pk not in done]
            if todo:
                services.prelabel_start(project=project, actor=None, case_ids=todo, version=version)
    services.autotrain_check(project=project)


def on_case_labelled(*, case: Case) -> None:
    """settings.REVIEW_CASE_LABELLED_HANDLER: a case became agreed or adjudicated. Where the project trains
    automatically, queue the check once the transaction commits (a rolled-back decision queues nothing); the
    check is idempotent, so several decisions in one transaction still start one training."""
    if not InferenceSettings.objects.filter(project_id=case.project_id, auto_train_every__gt=0).exists():
        return
    project_id = case.project_id

    def send() -> None:
        from inference.tasks import autotrain_check

        autotrain_check.apply_async(args=(project_id,), queue="default")

    transaction.on_commit(send)
