"""Per-project inference settings (what a training job and the hooks use by default)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from annotation.models import Project
from config.errors import ApplicationError
from inference.models import Architecture, InferenceSettings, TaskType

# torch and MONAI (about 4 s of CPU to import) load inside the functions that run models, never when this
# module is imported: the web process imports it through the API views and the ingest hook, and serves
# requests that never touch a model.


# --- Settings -------------------------------------------------------------------------------------------


def settings_for(project: Project) -> InferenceSettings:
    found, _ = InferenceSettings.objects.get_or_create(project=project)
    return found


SETTINGS_FIELDS = (
    "auto_train_every",
    "strategy",
    "prelabel_on_ingest",
    "task_type",
    "architecture",
    "architecture_params",
    "preprocessing",
    "training_params",
    "seed",
)


@transaction.atomic
def inference_settings_update(*, project: Project, **changes: Any) -> InferenceSettings:
    current = InferenceSettings.objects.select_for_update().filter(project=project).first() or settings_for(project)
    unknown = sorted(set(changes) - set(SETTINGS_FIELDS))
    if unknown:
        raise ApplicationError(f"Unknown inference setting(s): {', '.join(unknown)}")
    for name, value in changes.items():
        setattr(current, name, value)
    _check_architecture(current.task_type, current.architecture)
    current.save(update_fields=[*changes, "updated_at"])
    return current


def _check_architecture(task_type: str, architecture: str) -> None:
    if architecture == Architecture.MONAI_BUNDLE:
        raise ApplicationError("A MONAI bundle is imported (by an administrator), not trained", code="bad_architecture")
    if task_type == TaskType.CLASSIFICATION and architecture != Architecture.DENSENET121:
        raise ApplicationError(f"A classification model needs densenet121, not {architecture}", code="bad_architecture")
    if task_type != TaskType.CLASSIFICATION and architecture == Architecture.DENSENET121:
        raise ApplicationError(f"densenet121 classifies; a {task_type} model needs unet or segresnet")
