"""Shared pieces of the DICOMweb endpoints: authentication, errors as responses, multipart bodies."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any, cast

from django.contrib.auth.models import AnonymousUser
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.settings import api_settings

from config.errors import ApplicationError
from config.types import AnyUser
from imaging.dicom import is_valid_uid

DICOM_JSON = "application/dicom+json"

View = Callable[..., HttpResponseBase]


def error_response(status: int, message: str, code: str = "invalid") -> JsonResponse:
    return JsonResponse({"detail": message, "code": code}, status=status)


def _authenticate(request: HttpRequest) -> AnyUser:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user
    # dicomweb-client, OHIF and scripts send a token or basic credentials instead of a session cookie: the
    # API's own authentication classes (personal tokens, legacy tokens, basic), so that imaging need not know
    # where tokens live. The session was looked at above (Django's middleware set request.user).
    # DRF's stubs type the setting as the dotted paths it is written as; at run time it holds the classes.
    configured = cast(list[type[BaseAuthentication]], api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    classes = [c for c in configured if not issubclass(c, SessionAuthentication)]
    for authenticator in (cls() for cls in classes):
        try:
            result = authenticator.authenticate(request)  # type: ignore[arg-type]
        except AuthenticationFailed as exc:
            raise ApplicationError(str(exc.detail), code="authentication_failed") from exc
        if result is not None:
            return result[0]
    return AnonymousUser()


def dicomweb_view(view: View) -> View:
    """Authenticate, validate UIDs in the path, and turn domain errors into JSON error responses."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return _serve(view, request, *args, **kwargs)

    return wrapper


def dicomweb_frame_view(view: View) -> View:
    """``dicomweb_view`` for a read that viewers make once per slice (frames): the persistent connection's
    health check, a ``SELECT 1`` round trip before the request's first query, is left to that first query.
    When PostgreSQL closed the connection in the meantime (a restart, a failover), that query fails, the
    connection is found unusable and closed, and the request is served again on a new one: what the health
    check would have done, without its round trip on every frame. Only for views that write nothing (a retry
    must be harmless)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        connection: Any = connections[DEFAULT_DB_ALIAS]  # django-stubs do not name the health check's fields
        if (
            connection.connection is None  # a new connection is healthy
            or not connection.health_check_enabled
            or connection.health_check_done
            or connection.in_atomic_block
        ):
            return _serve(view, request, *args, **kwargs)
        connection.health_check_done = True
        try:
            return _serve(view, request, *args, **kwargs)
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block or connection.is_usable():
                raise  # not a lost connection: DatabaseUnavailableMiddleware answers it
            connection.close()
        return _serve(view, request, *args, **kwargs)

    return wrapper


def _serve(view: View, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    try:
        user = _authenticate(request)
    except ApplicationError as exc:
        response = error_response(401, exc.message, exc.code)
        response["WWW-Authenticate"] = 'Basic realm="dicomweb"'
        return response
    if not user.is_authenticated:
        response = error_response(401, "Authentication required", "not_authenticated")
        response["WWW-Authenticate"] = 'Basic realm="dicomweb"'
        return response
    request.user = user
    for key in ("study", "series", "instance"):
        value = kwargs.get(key)
        if value is not None and not is_valid_uid(value):
            label = {"study": "Study", "series": "Series", "instance": "SOP"}[key]
            return error_response(400, f"Malformed {label} Instance UID: {value!r}", "malformed_uid")
    try:
        return view(request, *args, **kwargs)
    except ApplicationError as exc:
        return error_response(exc.status_code, exc.message, exc.code)


def dicom_json_response(payload: list[dict[str, Any]] | dict[str, Any], status: int = 200) -> HttpResponseBase:
    return HttpResponse(json.dumps(payload, separators=(",", ":")), content_type=DICOM_JSON, status=status)


def new_boundary() -> str:
    return secrets.token_hex(16)


def multipart_stream(parts: Iterable[tuple[str, bytes]], boundary: str) -> Iterator[bytes]:
    """Encode (content type, body) pairs as a multipart/related body, lazily."""
    delimiter = f"--{boundary}\r\n".encode()
    for content_type, body in parts:
        yield delimiter + f"Content-Type: {content_type}\r\n\r\n".encode()
        yield body
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def multipart_response(parts: Iterable[tuple[str, bytes]], part_type: str, extra: str = "") -> StreamingHttpResponse:
    boundary = new_boundary()
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}{extra}'
    return StreamingHttpResponse(multipart_stream(parts, boundary), content_type=content_type)


def multipart_body_response(parts: Iterable[tuple[str, bytes]], part_type: str) -> HttpResponse:
    """A multipart/related response built in memory, for bounded bodies such as frames: one write with a
    Content-Length is cheaper per request than a streamed, chunked body."""
    boundary = new_boundary()
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return HttpResponse(b"".join(multipart_stream(parts, boundary)), content_type=content_type)


def parse_multipart_related(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """Split a multipart/related body into (content type, payload) pairs."""
    params = _media_type_params(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise ApplicationError("multipart/related body without a boundary parameter", code="bad_multipart")
    delimiter = b"--" + boundary.encode()
    chunks = body.split(delimiter)
    parts: list[tuple[str, bytes]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        header_end = chunk.find(b"\r\n\r\n")
        if header_end < 0:
            raise ApplicationError("Malformed multipart part: no blank line after its headers", code="bad_multipart")
        headers = chunk[:header_end].decode("latin-1").split("\r\n")
        payload = chunk[header_end + 4 :]
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        part_type = ""
        for header in headers:
            name, _, value = header.partition(":")
            if name.strip().lower() == "content-type":
                part_type = value.strip()
        parts.append((part_type or params.get("type", ""), payload))
    if not parts:
        raise ApplicationError("multipart/related body has no parts", code="bad_multipart")
    return parts


def _media_type_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for piece in value.split(";")[1:]:
        key, _, raw = piece.partition("=")
        params[key.strip().lower()] = raw.strip().strip('"')
    return params


def media_type(value: str) -> str:
    return value.split(";")[0].strip().lower()


def accepted_media_types(request: HttpRequest) -> list[tuple[str, dict[str, str]]]:
    """The Accept header as (media type, parameters) pairs, most preferred first: by quality (q), then in the
    client's order. Types the client refuses (q=0) are left out."""
    header = request.headers.get("Accept", "") or "*/*"
    weighted = []
    for item in header.split(","):
        item = item.strip()
        if item:
            params = _media_type_params(item)
            try:
                quality = float(params.get("q", "1"))
            except ValueError:
                quality = 1.0
            if quality > 0:
                weighted.append((quality, media_type(item), params))
    # sorted() is stable: equal qualities keep the client's order.
    return [(media, params) for _, media, params in sorted(weighted, key=lambda entry: -entry[0])]
