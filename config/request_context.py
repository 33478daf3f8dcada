"""The id of the HTTP request (or of the request that queued a Celery task) being handled right now.

A ``ContextVar``, so each thread of gunicorn and each task of a worker sees its own value; the log
formatter reads it, so every log line says which request it belongs to.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

request_id_var: ContextVar[str | None] = ContextVar("medlabel_request_id", default=None)

HEADER = "X-Request-ID"
# Celery message header that carries the id from the publisher to the worker.
CELERY_HEADER = "medlabel_request_id"
# An id from a client is echoed in logs and headers: keep it short and free of control characters.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(raw: str | None) -> str | None:
    """The client's id if it is safe to log and echo, else None (the caller makes a new one)."""
    if raw and _SAFE_ID.match(raw):
        return raw
    return None


def get_request_id() -> str | None:
    return request_id_var.get()


def set_request_id(value: str | None) -> Token[str | None]:
    return request_id_var.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    request_id_var.reset(token)
