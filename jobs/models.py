"""Background jobs: one row per unit of worker work (pre-label, train, score, evaluate, export, ...).

The status field is the single source of truth the API and the Jobs screen show; the allowed transitions
are ``jobs.services.TRANSITIONS`` and every transition appends a ``JobEvent`` (never updated)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class JobKind(models.TextChoices):
    INGEST = "ingest", "Ingest"
    PRELABEL = "prelabel", "Pre-label"
    TRAIN = "train", "Training"
    SCORE = "score", "Active-learning scoring"
    EVALUATE = "evaluate", "Model evaluation"
    EXPORT = "export", "Dataset export"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    # Finished, but some of the work was left out (an export's cases that could not be written): the
    # handler's result says which and why. Never shown as a plain success.
    PARTIAL = "partial", "Succeeded with items left out"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    kind = models.CharField(max_length=16, choices=JobKind.choices, db_index=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    project = models.ForeignKey(
        "annotation.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What to do (ids, options): the task reads its inputs from here, never from its message.
    params = models.JSONField(default=dict, blank=True)
    # Latest progress: {"done": 3, "total": 10, "epoch": 2, "loss": 0.4, "metric": 0.7, "message": "..."}.
    progress = models.JSONField(default=dict, blank=True)
    # Epoch-by-epoch or step-by-step history for curves (training loss, validation metric).
    history = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # Dotted path of the Celery task that runs the job, and the queue it goes to ("gpu" for model work).
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=32, default="default")
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    # "host:pid" of the worker process holding the job, and when it last said it was alive.
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["project", "kind", "status"])]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class JobEvent(models.Model):
    """One status change of a job, with the reason (claimed by, retried because, failed because)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    message = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_id", "created_at", "pk"]

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.from_status} -> {self.to_status}"
