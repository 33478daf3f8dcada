"""Request id middleware: every request gets an id (the client's ``X-Request-ID`` when it is a safe
string, else a new one), logs written while handling it carry the id, and the response returns it.
CORS that is off unless origins are listed. A database lost mid-request answered 503. Optionally, the number
of database queries of each request in a response header (load tests)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from corsheaders.conf import conf as cors_conf
from corsheaders.middleware import CorsMiddleware as LibraryCorsMiddleware
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from config.request_context import HEADER, clean_request_id, new_request_id, reset_request_id, set_request_id

logger = logging.getLogger(__name__)


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = clean_request_id(request.headers.get(HEADER)) or new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response[HEADER] = request_id
        return response


class CorsMiddleware(LibraryCorsMiddleware):
    """django-cors-headers, switched off while CORS_ALLOWED_ORIGINS is empty: preflights then reach the views
    as before (401) and responses get no Vary: Origin, so the default deployment answers as if it were not
    installed."""

    def is_enabled(self, request: HttpRequest) -> bool:
        return bool(cors_conf.CORS_ALLOWED_ORIGINS) and super().is_enabled(request)


class DatabaseUnavailableMiddleware:
    """A request that loses the database mid-way (PostgreSQL restarting, a failover) is answered 503 with
    Retry-After and a readable JSON body instead of a 500: nothing was committed, and trying again shortly
    is the right thing for the client to do. Other database errors (integrity, programming) stay 500s."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error("database unavailable: %s", exception.__class__.__name__, exc_info=exception)
        response = JsonResponse(
            {"detail": "The database is not reachable right now; nothing was saved. Try again in a moment.",
             "code": "database_unavailable"},
            status=503,
        )  # fmt: skip
        response["Retry-After"] = "5"
        return response


QUERY_COUNT_HEADER = "X-Query-Count"


class QueryCountMiddleware:
    """Counts the database queries a request makes and returns the count in ``X-Query-Count``: scripts/load.sh
    reports queries per request per endpoint from it. On only with MEDLABEL_QUERY_COUNT_HEADER=true (the
    count says something about the code, nothing about the data, but it is no business of a client's).
    Counted by a wrapper around each execute, so it works with DEBUG off, where Django keeps no query log;
    responses streamed after the view returns count the queries made until then."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        count = 0

        def counter(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connections["default"].execute_wrapper(counter):
            response = self.get_response(request)
        response[QUERY_COUNT_HEADER] = str(count)
        return response
