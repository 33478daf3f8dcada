"""Log formatting: one JSON object per line (``LOG_FORMAT=json``, for log collectors), or the readable
plain format; both carry the request id of the HTTP request or Celery task being handled."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from config.request_context import get_request_id

# Attributes every LogRecord has; anything else was passed with ``extra=`` and goes into the JSON.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "request_id", "taskName"}
)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``-`` outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # django.request logs 4xx/5xx after the middleware has returned, with the request attached.
            from_request = getattr(getattr(record, "request", None), "request_id", None)
            record.request_id = get_request_id() or from_request or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or get_request_id(),
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        # default=str: a request object or a path passed in ``extra`` must not break the log line.
        return json.dumps(payload, default=str, ensure_ascii=False)
