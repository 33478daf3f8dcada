"""One DRF exception handler: domain errors become JSON responses with their status and message."""

from __future__ import annotations

from typing import Any

from django.db import DataError
from django.utils.translation import gettext
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from config.errors import ApplicationError


def _is_nul_in_text(exc: Exception) -> bool:
    # psycopg refuses a NUL (0x00) in any text parameter before PostgreSQL sees it. Whatever door the text came
    # through (a JSON body's name looked up, a query string's filter), that is the client's input, not a fault.
    return isinstance(exc, DataError) and "NUL (0x00)" in str(exc)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        body.update(exc.extra)
        return Response(body, status=exc.status_code)
    if _is_nul_in_text(exc):
        set_rollback()
        return Response(
            {"detail": gettext("Text may not contain the NUL character (0x00)."), "code": "nul_character"}, status=400
        )
    return exception_handler(exc, context)
