"""One DRF exception handler: domain errors become JSON responses with their status and message."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.errors import ApplicationError


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        body.update(exc.extra)
        return Response(body, status=exc.status_code)
    return exception_handler(exc, context)
