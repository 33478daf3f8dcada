"""Helpers every job task uses; the tasks themselves live in the apps that own the work."""

from __future__ import annotations

from typing import Any

from celery import Task

from jobs.services import Handler, TransientJobError, run_job

# Late acknowledgement and re-queue on a lost worker, so that a killed worker's job comes back; bounded
# retries for transient errors; the claim in run_job makes a second delivery harmless.
JOB_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": 5,
}


def execute(task: Task, job_id: int, handler: Handler) -> str:
    try:
        return run_job(job_id, handler)
    except TransientJobError as exc:
        raise task.retry(exc=exc, countdown=min(60, 2 ** (task.request.retries or 0))) from exc
