"""Thin Celery tasks on the ``gpu`` queue: each runs one service handler under the job lifecycle."""

from __future__ import annotations

from celery import Task, shared_task

from inference import services
from jobs.tasks import JOB_TASK_OPTIONS, execute


@shared_task(name="inference.tasks.prelabel", **JOB_TASK_OPTIONS)
def prelabel(self: Task, job_id: int) -> str:
    return execute(self, job_id, services.prelabel_handler)


@shared_task(name="inference.tasks.train", **JOB_TASK_OPTIONS)
def train(self: Task, job_id: int) -> str:
    return execute(self, job_id, services.train_handler)


@shared_task(name="inference.tasks.score", **JOB_TASK_OPTIONS)
def score(self: Task, job_id: int) -> str:
    return execute(self, job_id, services.score_handler)


@shared_task(name="inference.tasks.evaluate", **JOB_TASK_OPTIONS)
def evaluate(self: Task, job_id: int) -> str:
    return execute(self, job_id, services.evaluate_handler)
