"""Model registry, per-project inference settings, predictions and active-learning scores.

A model version is never changed in place once trained: weights, preprocessing and the training snapshot
are written once; only its status moves, along ``inference.services.registry.TRANSITIONS``, and every
move appends a ``ModelVersionEvent`` (never updated)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models import AnnotationRevision, Case, Project


class TaskType(models.TextChoices):
    SEGMENTATION = "segmentation", "Segmentation"
    CLASSIFICATION = "classification", "Classification"
    DETECTION = "detection", "Detection (boxes from segmentation components)"
    # Prompt-driven: image plus positive/negative click channels in, the prompted lesion's mask out (issue 17).
    INTERACTIVE = "interactive", "Interactive segmentation (clicks as guidance channels)"


class Architecture(models.TextChoices):
    UNET = "unet", "MONAI UNet"
    SEGRESNET = "segresnet", "MONAI SegResNet"
    DENSENET121 = "densenet121", "MONAI DenseNet121"
    MONAI_BUNDLE = "monai_bundle", "Imported MONAI bundle (its network_def)"


class ModelStatus(models.TextChoices):
    TRAINING = "training", "Training"
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
    FAILED = "failed", "Failed"


class Strategy(models.TextChoices):
    RANDOM = "random", "Random"
    UNCERTAINTY = "uncertainty", "Uncertainty"
    UNCERTAINTY_DISAGREEMENT = "uncertainty_disagreement", "Uncertainty and predicted reader disagreement"


class InferenceSettings(models.Model):
    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="inference_settings")
    # 0 turns automatic training off; otherwise a training job starts once this many cases have been
    # adjudicated (or agreed) since the snapshot of the latest version.
    auto_train_every = models.PositiveIntegerField(default=0)
    strategy = models.CharField(max_length=32, choices=Strategy.choices, default=Strategy.UNCERTAINTY)
    prelabel_on_ingest = models.BooleanField(default=False)
    # Training defaults for new versions; a training request may override them.
    task_type = models.CharField(max_length=16, choices=TaskType.choices, default=TaskType.SEGMENTATION)
    architecture = models.CharField(max_length=16, choices=Architecture.choices, default=Architecture.UNET)
    architecture_params = models.JSONField(default=dict, blank=True)
    preprocessing = models.JSONField(default=dict, blank=True)
    training_params = models.JSONField(default=dict, blank=True)
    seed = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "inference settings"

    def __str__(self) -> str:
        return f"inference settings of {self.project}"


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField(help_text="1, 2, ... per project")
    task_type = models.CharField(max_length=16, choices=TaskType.choices)
    architecture = models.CharField(max_length=16, choices=Architecture.choices)
    architecture_params = models.JSONField(default=dict, blank=True)
    # Spacing, orientation and intensity preprocessing (MONAI transforms), saved with the model so that
    # inference applies exactly what training did.
    preprocessing = models.JSONField(default=dict, blank=True)
    # Which schema labels the outputs become: mask label and segment, box label, presence choice label.
    label_map = models.JSONField(default=dict, blank=True)
    training_params = models.JSONField(default=dict, blank=True)
    weights_file = models.CharField(max_length=512, blank=True, help_text="Path in the default storage")
    weights_sha256 = models.CharField(max_length=64, blank=True)
    weights_bytes = models.BigIntegerField(default=0)
    # The dataset snapshot: {"train": [case ids], "validation": [case ids], "revisions": [revision ids], ...}.
    training_snapshot = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Final validation metrics")
    history = models.JSONField(default=list, blank=True, help_text="One row per epoch")
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.TRAINING, db_index=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", help_text="Transfer source"
    )
    training_job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    device = models.CharField(max_length=32, blank=True, help_text="Where it was trained")
    # A demo model learnt from synthetic studies' known truth, not from adjudicated labels: it is never
    # compared with, transferred into or promoted over a model trained on adjudicated labels.
    demo = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="unique_model_version_number"),
            models.UniqueConstraint(
                fields=["project", "task_type"],
                condition=models.Q(status="active"),
                name="one_active_model_per_task",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} model v{self.number} ({self.status})"

    @property
    def label(self) -> str:
        """What AI revisions carry in ``model_version``."""
        return f"{self.project.slug}/v{self.number}:{self.architecture}:{self.weights_sha256[:12]}"


class ModelVersionEvent(models.Model):
    """One status change of a model version: who promoted, retired or rolled back, why, with what numbers."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    reason = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_version_id", "created_at", "pk"]

    def __str__(self) -> str:
        return f"model {self.model_version_id}: {self.from_status} -> {self.to_status}"


class Prediction(models.Model):
    """A model's output for one case: the AI revision it became, class probabilities, saliency, uncertainty."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    revision = models.ForeignKey(AnnotationRevision, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    probabilities = models.JSONField(default=dict, blank=True, help_text="label -> {choice: probability}")
    components = models.JSONField(default=list, blank=True, help_text="Kept lesions: voxels, mm3, box, score")
    saliency_file = models.CharField(max_length=512, blank=True, help_text="Grad-CAM/occlusion map (npy.gz)")
    device = models.CharField(max_length=32, blank=True)
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "model_version"], name="unique_prediction")]
        ordering = ["case_id", "-created_at"]

    def __str__(self) -> str:
        return f"prediction of case {self.case_id} by model {self.model_version_id}"


class CaseScore(models.Model):
    """Which strategy scored a case how, with which model, and where it ranked. Never updated."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="scores")
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    strategy = models.CharField(max_length=32, choices=Strategy.choices)
    score = models.FloatField()
    uncertainty = models.FloatField(null=True, blank=True)
    disagreement = models.FloatField(null=True, blank=True)
    rank = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "rank"]
        indexes = [models.Index(fields=["case", "-created_at"])]

    def __str__(self) -> str:
        return f"case {self.case_id} scored {self.score:.4f} by {self.strategy}"
