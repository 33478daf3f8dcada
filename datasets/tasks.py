"""The export job's Celery task: thin, the work is datasets.services.export_build."""

from __future__ import annotations

from celery import Task, shared_task

from datasets import services
from jobs.tasks import JOB_TASK_OPTIONS, execute


@shared_task(**JOB_TASK_OPTIONS)
def export_snapshot(self: Task, job_id: int) -> str:
    return execute(self, job_id, services.export_build)
