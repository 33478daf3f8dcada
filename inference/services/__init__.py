"""Inference work: settings, training on adjudicated labels, pre-labeling, evaluation, active-learning scores.

Each ``*_start`` service creates a job (queue ``gpu``); each ``*_handler`` is what the thin Celery task in
``inference.tasks`` runs through ``jobs.services.run_job``. Handlers write their results in one transaction
at the end (training, scoring) or per case with an upsert on (case, model version) (pre-labeling), so a
worker killed midway leaves nothing half-written and a second run produces only what is missing.

One module per job kind; this package re-exports their public names so that ``from inference import
services`` and ``from inference.services import X`` stay the way callers reach them."""

from inference.services.autotrain import autotrain_check
from inference.services.data import (
    ADJUDICATED_ROLES,
    LABELLED_STATUSES,
    LabelledCase,
    adjudicated_cases,
    default_label_map,
    patient_split,
)
from inference.services.demo import demo_models_start
from inference.services.evaluation import evaluate_handler, evaluate_start
from inference.services.interactive import interactive_training_start
from inference.services.prelabel import (
    CasePrediction,
    predict,
    prelabel_case,
    prelabel_handler,
    prelabel_start,
    saliency_bytes,
)
from inference.services.scoring import predicted_disagreement, score_handler, score_start, unread_cases
from inference.services.settings import SETTINGS_FIELDS, inference_settings_update, settings_for
from inference.services.training import model_versions_reconcile, train_handler, training_start

__all__ = [
    "ADJUDICATED_ROLES",
    "LABELLED_STATUSES",
    "SETTINGS_FIELDS",
    "CasePrediction",
    "LabelledCase",
    "adjudicated_cases",
    "autotrain_check",
    "default_label_map",
    "demo_models_start",
    "evaluate_handler",
    "evaluate_start",
    "inference_settings_update",
    "interactive_training_start",
    "model_versions_reconcile",
    "patient_split",
    "predict",
    "predicted_disagreement",
    "prelabel_case",
    "prelabel_handler",
    "prelabel_start",
    "saliency_bytes",
    "score_handler",
    "score_start",
    "settings_for",
    "train_handler",
    "training_start",
    "unread_cases",
]
