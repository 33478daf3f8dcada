"""Job lifecycle: create and enqueue, claim atomically, report progress, finish, retry, cancel, recover.

Tasks stay thin: ``run_job(job_id, handler)`` claims the job with a conditional UPDATE (so a message
delivered twice runs the work once), calls the handler with a progress reporter, and records the outcome.
A handler writes its results in one transaction at its end, so a worker killed midway leaves nothing
half-written: the job is re-queued (or failed after ``max_attempts``) and runs again from the start."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import Project
from config.errors import ApplicationError, ConflictError
from config.types import User
from jobs.messages import (
    CANCELLED_BY,
    CLAIMED,
    CREATED,
    DONE,
    DONE_LEFT_OUT,
    GIVING_UP,
    LOST,
    LOST_REQUEUED,
    LOST_RETRYING,
    LOST_TIMES,
    RETRIED_BY,
    RETRYING,
    TIME_LIMIT,
    job_text,
)
from jobs.models import FINISHED_STATUSES, Job, JobEvent, JobKind, JobStatus

logger = logging.getLogger(__name__)

S = JobStatus
TRANSITIONS: dict[str, set[str]] = {
    S.QUEUED: {S.RUNNING, S.CANCELLED, S.FAILED},
    S.RUNNING: {S.SUCCEEDED, S.PARTIAL, S.FAILED, S.QUEUED, S.CANCELLED},
    S.FAILED: {S.QUEUED},  # a manager's retry
    S.SUCCEEDED: set(),
    S.PARTIAL: set(),
    S.CANCELLED: set(),
}


class JobFailed(ApplicationError):
    """A handler's way to end its job as failed with a reason a person can read (bad input, no GPU...)."""


class TransientJobError(Exception):
    """Worth another attempt: a service restarting, a PACS briefly away."""


class JobCancelled(Exception):
    """Raised inside a handler by the progress reporter once a manager has cancelled the job."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _record(job: Job, from_status: str, to_status: str, message: str = "", worker: str = "") -> None:
    JobEvent.objects.create(job=job, from_status=from_status, to_status=to_status, message=message, worker=worker)


def _transition(job: Job, to_status: str, *, message: str = "", by: str = "", **fields: Any) -> Job:
    """Move a locked job along the table, or refuse with 409."""
    if to_status not in TRANSITIONS[job.status]:
        raise ConflictError(f"Job {job.pk} is {job.status}; it cannot become {to_status}")
    from_status = job.status
    job.status = to_status
    for name, value in fields.items():
        setattr(job, name, value)
    if to_status in FINISHED_STATUSES:
        job.finished_at = timezone.now()
    job.save()
    _record(job, from_status, to_status, message, by)
    return job


def job_enqueue(job: Job) -> None:
    """Send the job's task to its queue once the surrounding transaction has committed."""

    def send() -> None:
        module_name, _, task_attr = job.task_name.rpartition(".")
        task = getattr(importlib.import_module(module_name), task_attr)
        task.apply_async(args=[job.pk], queue=job.queue)

    transaction.on_commit(send)


@transaction.atomic
def job_create(
    *,
    kind: str,
    task_name: str,
    project: Project | None = None,
    created_by: User | None = None,
    params: dict[str, Any] | None = None,
    queue: str = "default",
    max_attempts: int = 3,
    enqueue: bool = True,
) -> Job:
    if kind not in JobKind.values:
        raise ApplicationError(f"Unknown job kind {kind!r}")
    job = Job.objects.create(
        kind=kind,
        task_name=task_name,
        project=project,
        created_by=created_by,
        params=params or {},
        queue=queue,
        max_attempts=max_attempts,
    )
    _record(job, "", S.QUEUED, job_text(CREATED), "")
    if enqueue:
        job_enqueue(job)
    return job


def _pid_is_dead(worker: str) -> bool:
    """True when ``worker`` names a process on this host that no longer exists (killed mid-task)."""
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)


def job_claim(job_id: int, *, worker: str | None = None) -> Job | None:
    """Take the job for this worker, or None when it is finished, cancelled or alive elsewhere.

    A RUNNING job is taken over when its worker is gone (same host, dead pid) or silent for longer than
    JOB_HEARTBEAT_TIMEOUT: that is the redelivered message of a worker killed mid-task."""
    worker = worker or worker_id()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_finished:
            return None
        if job.status == S.RUNNING:
            stale = job.heartbeat_at is None or job.heartbeat_at < _stale_before()
            if not (stale or _pid_is_dead(job.worker)):
                return None
            if job.attempts >= job.max_attempts:
                _transition(
                    job,
                    S.FAILED,
                    message=job_text(LOST_TIMES, worker=job.worker, times=job.attempts),
                    by=worker,
                    error=job_text(GIVING_UP, times=job.attempts),
                )
                return None
            _transition(job, S.QUEUED, message=job_text(LOST_RETRYING, worker=job.worker), by=worker)
        now = timezone.now()
        return _transition(
            job,
            S.RUNNING,
            message=job_text(CLAIMED),
            by=worker,
            worker=worker,
            attempts=job.attempts + 1,
            started_at=job.started_at or now,
            heartbeat_at=now,
            error="",
        )


@dataclass
class Progress:
    """What a handler calls to say how far it is; it also notices a cancellation."""

    job_id: int

    def __call__(self, *, history: dict[str, Any] | None = None, **progress: Any) -> None:
        job = Job.objects.filter(pk=self.job_id).values("status", "history").first()
        if job is None or job["status"] == S.CANCELLED:
            raise JobCancelled(f"job {self.job_id} was cancelled")
        updates: dict[str, Any] = {"progress": progress, "heartbeat_at": timezone.now()}
        if history is not None:
            updates["history"] = [*job["history"], history]
        Job.objects.filter(pk=self.job_id, status=S.RUNNING).update(**updates)


def job_succeed(job: Job, result: dict[str, Any], *, worker: str = "") -> Job:
    """Finish a job. A handler that left part of its work out says so with ``left_out_cases`` (a count) in
    its result: the job then ends PARTIAL, "succeeded with N left out", never as a plain success."""
    left_out = int(result.get("left_out_cases") or 0)
    status, message = (S.SUCCEEDED, job_text(DONE))
    if left_out:
        status, message = S.PARTIAL, job_text(DONE_LEFT_OUT, n=left_out)
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.status != S.RUNNING:
            raise ConflictError(f"Job {job.pk} is {locked.status}, not running")
        return _transition(locked, status, message=message, by=worker, result=result)


def job_fail(job: Job, error: str, *, retry: bool = False, worker: str = "") -> bool:
    """Record a failure; with ``retry`` and attempts left, put the job back in the queue. True if re-queued."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.status != S.RUNNING:
            return False
        if retry and locked.attempts < locked.max_attempts:
            _transition(locked, S.QUEUED, message=job_text(RETRYING, error=error), by=worker, error=error)
            return True
        _transition(locked, S.FAILED, message=error, by=worker, error=error)
        return False


def job_cancel(job: Job, *, actor: User) -> Job:
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        return _transition(locked, S.CANCELLED, message=job_text(CANCELLED_BY, user=actor.get_username()))


def job_retry(job: Job, *, actor: User) -> Job:
    """A manager's second chance for a failed job: a fresh set of attempts."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.status != S.FAILED:
            raise ConflictError(f"Only a failed job can be retried; job {job.pk} is {locked.status}")
        _transition(locked, S.QUEUED, message=job_text(RETRIED_BY, user=actor.get_username()), attempts=0, error="")
        job_enqueue(locked)
        return locked


def jobs_recover_orphans() -> list[int]:
    """Re-queue (or fail, when out of attempts) RUNNING jobs whose worker is gone. Run at worker start and
    by ``manage.py recover_jobs``; returns the ids it re-queued."""
    requeued: list[int] = []
    candidates = Job.objects.filter(status=S.RUNNING).filter(
        Q(heartbeat_at__lt=_stale_before()) | Q(worker__startswith=f"{socket.gethostname()}:")
    )
    for job_pk in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            job = Job.objects.select_for_update().get(pk=job_pk)
            stale = job.heartbeat_at is None or job.heartbeat_at < _stale_before()
            if job.status != S.RUNNING or not (stale or _pid_is_dead(job.worker)):
                continue
            if job.attempts >= job.max_attempts:
                _transition(
                    job,
                    S.FAILED,
                    message=job_text(LOST, worker=job.worker),
                    error=job_text(GIVING_UP, times=job.attempts),
                )
                continue
            _transition(job, S.QUEUED, message=job_text(LOST_REQUEUED, worker=job.worker))
            job_enqueue(job)
            requeued.append(job.pk)
    return requeued


Handler = Callable[[Job, Progress], dict[str, Any]]


def run_job(job_id: int, handler: Handler) -> str:
    """Claim, run, record. Returns the job's status afterwards ("skipped" when there was nothing to claim).

    Raises TransientJobError after re-queueing, so that the Celery task can schedule its retry."""
    worker = worker_id()
    job = job_claim(job_id, worker=worker)
    if job is None:
        return "skipped"
    try:
        result = handler(job, Progress(job.pk))
    except JobCancelled:
        return S.CANCELLED
    except (TransientJobError, OperationalError) as exc:
        if job_fail(job, f"{type(exc).__name__}: {exc}", retry=True, worker=worker):
            raise TransientJobError(str(exc)) from exc
        return S.FAILED
    except SoftTimeLimitExceeded:
        job_fail(job, job_text(TIME_LIMIT, seconds=settings.CELERY_TASK_SOFT_TIME_LIMIT), worker=worker)
        return S.FAILED
    except ApplicationError as exc:
        job_fail(job, exc.message, worker=worker)
        return S.FAILED
    except Exception as exc:  # a bug or bad data: keep the job's story readable, keep the trace in the log
        logger.error("job %s failed:\n%s", job_id, traceback.format_exc())
        job_fail(job, f"{type(exc).__name__}: {exc}", worker=worker)
        return S.FAILED
    try:
        finished = job_succeed(job, result, worker=worker)
    except ConflictError:  # cancelled while finishing
        return S.CANCELLED
    return finished.status
