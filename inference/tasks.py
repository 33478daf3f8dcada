"""Thin Celery tasks on the ``gpu`` queue: each runs one service handler under the job lifecycle; and the
automatic training check (``default`` queue), which only decides and queues a training job."""

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


@shared_task(name="inference.tasks.autotrain_check", ignore_result=True)
def autotrain_check(project_id: int) -> int | None:
    """Start training where enough new cases are adjudicated; idempotent (a second run starts nothing)."""
    from annotation.models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    job = services.autotrain_check(project=project)
    return job.pk if job is not None else None
