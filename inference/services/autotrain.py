"""Automatic training: a new version once enough adjudicated cases are new."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q

from annotation.models import Project
from inference.models import InferenceSettings, ModelStatus, ModelVersion
from inference.services.data import adjudicated_cases
from inference.services.training import model_versions_reconcile, training_start
from jobs.models import Job

if TYPE_CHECKING:
    pass

# torch and MONAI (about 4 s of CPU to import) load inside the functions that run models, never when this
# module is imported: the web process imports it through the API views and the ingest hook, and serves
# requests that never touch a model.


# --- Hooks ------------------------------------------------------------------------------------------------


def autotrain_check(*, project: Project) -> Job | None:
    """Start training when ``auto_train_every`` adjudicated cases are new since the latest version's
    snapshot and no training is under way. Also run by ``manage.py inference_autotrain``."""
    config = InferenceSettings.objects.filter(project=project).first()
    if config is None or config.auto_train_every == 0:
        return None
    model_versions_reconcile(project)
    if ModelVersion.objects.filter(project=project, status=ModelStatus.TRAINING).exists():
        return None
    latest = (
        ModelVersion.objects.filter(project=project)
        .exclude(status=ModelStatus.FAILED)
        .exclude(Q(training_snapshot={}))
        .order_by("-number")
        .first()
    )
    seen = set()
    if latest is not None:
        seen = set(latest.training_snapshot.get("train", [])) | set(latest.training_snapshot.get("validation", []))
        seen |= set(latest.training_snapshot.get("skipped_without_label", []))
    new = [lc for lc in adjudicated_cases(project) if lc.case.pk not in seen]
    if len(new) < config.auto_train_every:
        return None
    return training_start(project=project, actor=None)
