"""Light hooks other apps call through settings; they import the model code (torch) only when needed."""

from __future__ import annotations

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
