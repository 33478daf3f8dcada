"""The Celery application. Queues: ``default`` for CPU work, ``gpu`` for model work (one worker per GPU),
``interactive`` for reader prompts (a worker that keeps its engines and volumes warm; see inference.interactive)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("medlabel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"), Queue("interactive"))
app.conf.task_default_queue = "default"
app.autodiscover_tasks()


# --- Request id: from the request that queued a task into the logs of the worker that runs it ----------
# Imported here, not at the top, so the app object above exists before Django settings are touched.
import logging  # noqa: E402
from typing import Any  # noqa: E402

from celery.signals import before_task_publish, task_postrun, task_prerun  # noqa: E402

from config.request_context import (  # noqa: E402
    CELERY_HEADER,
    get_request_id,
    new_request_id,
    reset_request_id,
    set_request_id,
)

logger = logging.getLogger("medlabel.tasks")
_task_tokens: dict[str, Any] = {}


@before_task_publish.connect
def _add_request_id_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is not None and CELERY_HEADER not in headers:
        headers[CELERY_HEADER] = get_request_id() or new_request_id()


@task_prerun.connect
def _bind_request_id(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    request_id = None
    if task is not None:
        # Custom message headers appear on the request, or under .headers depending on the protocol.
        request_id = getattr(task.request, CELERY_HEADER, None) or (getattr(task.request, "headers", None) or {}).get(
            CELERY_HEADER
        )
    if task_id is not None:
        _task_tokens[task_id] = set_request_id(request_id or task_id)
        # One line per task start that carries the request id, so a request can be followed into its work.
        logger.info("task %s started", getattr(task, "name", "?"), extra={"task_id": task_id})


@task_postrun.connect
def _unbind_request_id(task_id: str | None = None, **kwargs: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            reset_request_id(token)
        except ValueError:  # set in another context (a retried eager task): just clear it
            set_request_id(None)
