"""WADO-RS frames served ahead of Django's middleware chain and URL resolver (issue 19).

A viewer asks for one frame per slice, hundreds per series; the middleware chain and URL resolution were
nearly half of a local frame's CPU. This WSGI wrapper answers the one request shape that dominates, ``GET
.../studies/<uid>/series/<uid>/instances/<uid>/frames/<n>``, by itself, and only when it can answer exactly
as the normal view would with a 200. Everything else, every error included (no or bad credentials, an
instance that is not there or not visible, a frame number out of range, a media type not offered, HEAD,
POST, basic authentication, CORS requests), goes on to Django unchanged, so that each refusal is the normal
view's own answer, with its status, message and language.

Nothing here decides access by itself: the user comes from the same authentication classes as the normal
view (DRF's, in the configured order, after the session), and the instance from the same compiled lookup as
the normal view (``wado._pixel_instance``, whose SQL is ``access_policy().visible_studies_in_sql``'s rule).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user
from django.core import signals
from django.core.exceptions import DisallowedHost
from django.core.files.storage import default_storage
from django.core.handlers.wsgi import WSGIRequest
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.utils import translation
from django.utils.module_loading import import_string
from rest_framework.authentication import BaseAuthentication, BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.settings import api_settings

from accounts.authentication import LegacyTokenAuthentication, PersonalTokenAuthentication
from accounts.models import API_TOKEN_PREFIX
from accounts.selectors import saved_language
from config.errors import ApplicationError
from config.request_context import HEADER as REQUEST_ID_HEADER
from config.request_context import clean_request_id, new_request_id, reset_request_id, set_request_id
from imaging.dicom import is_valid_uid
from imaging.dicomweb import wado
from imaging.dicomweb.common import error_response
from imaging.models import DicomSource, Instance
from imaging.services import upstream
from imaging.services.framecache import pixel_source

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Served = tuple[str, list[tuple[str, str]], Iterable[bytes]]  # status line, headers, body

FRAME_PATH = re.compile(
    r"/dicomweb/(?:projects/(?P<scope>[-a-zA-Z0-9_]+)/)?studies/(?P<study>[^/]+)/series/(?P<series>[^/]+)"
    r"/instances/(?P<instance>[^/]+)/frames/(?P<frame>[1-9][0-9]{0,8})"
)
REQUEST_ID_META = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")


class FrameFastPath:
    """WSGI middleware: serves single local frames itself, hands every other request to ``app``."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.static_headers = _static_headers()
        self.session_cookie = settings.SESSION_COOKIE_NAME
        self.count_queries = "config.middleware.QueryCountMiddleware" in settings.MIDDLEWARE
        self.cors = bool(getattr(settings, "CORS_ALLOWED_ORIGINS", None))
        # "Token <key>" is the legacy token's only where the classes that read the header are these two, in
        # this order (the personal token class passes on keys without its prefix).
        readers = [type(authenticator) for authenticator in _token_authenticators()]
        self.legacy_tokens = readers == [PersonalTokenAuthentication, LegacyTokenAuthentication]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET":
            match = FRAME_PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match is not None and not (self.cors and "HTTP_ORIGIN" in environ):
                served = self._serve(environ, match)
                if served is not None:
                    status, headers, body = served
                    start_response(status, headers)
                    return body
        return self.app(environ, start_response)

    def _serve(self, environ: dict[str, Any], match: re.Match[str]) -> Served | None:
        study, series, sop = match["study"], match["series"], match["instance"]
        if not (is_valid_uid(study) and is_valid_uid(series) and is_valid_uid(sop)):
            return None
        request_id = clean_request_id(environ.get(REQUEST_ID_META)) or new_request_id()
        context = set_request_id(request_id)
        # The same signals as Django's handler: persistent connections are recycled (CONN_MAX_AGE) and a broken
        # one is dropped, as for any other request.
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            if self.count_queries:
                count = [0]

                def counter(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
                    count[0] += 1
                    return execute(sql, params, many, ctx)

                with connections[DEFAULT_DB_ALIAS].execute_wrapper(counter):
                    served = self._frame(environ, match["scope"], study, series, sop, int(match["frame"]))
                if served is not None:
                    served[1].append(("X-Query-Count", str(count[0])))
            else:
                served = self._frame(environ, match["scope"], study, series, sop, int(match["frame"]))
        finally:
            signals.request_finished.send(sender=self.__class__)
            reset_request_id(context)
        if served is not None:
            served[1].append((REQUEST_ID_HEADER, request_id))
        return served

    def _frame(
        self, environ: dict[str, Any], scope: str | None, study: str, series: str, sop: str, number: int
    ) -> Served | None:
        request = WSGIRequest(environ)
        try:
            request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it
        except DisallowedHost:
            return None
        connection: Any = connections[DEFAULT_DB_ALIAS]
        # As dicomweb_frame_view: no SELECT 1 health check before the first query; a connection lost since
        # the last request fails that query instead, is closed, and Django serves the request on a new one.
        if connection.connection is not None and connection.health_check_enabled and not connection.in_atomic_block:
            connection.health_check_done = True
        try:
            return self._lookup_and_read(request, scope, study, series, sop, number)
        except (OperationalError, InterfaceError):
            # Lost (closed here, so that Django reconnects) or not: the normal view serves the frame or says what
            # is wrong (a 503 from DatabaseUnavailableMiddleware). Nothing was written: asking again is harmless.
            if not connection.in_atomic_block and not connection.is_usable():
                connection.close()
            return None

    def _lookup_and_read(
        self, request: WSGIRequest, scope: str | None, study: str, series: str, sop: str, number: int
    ) -> Served | None:
        legacy_key = self._legacy_token_key(request)
        if legacy_key is not None:  # token, access and instance in one query
            user, by_session = None, False
            row = wado.pixel_instance_by_legacy_token(legacy_key, scope, study, series, sop)
        else:
            user, by_session = self._user(request)
            if user is None:
                return None
            row = wado._pixel_instance(user, scope, study, series, sop)
        if row is None or not row.has_pixel_data or number > row.number_of_frames:
            return None
        source = pixel_source(row.series.study, row)
        if source is not None:
            return self._proxied(request, user, by_session, row, source, (study, series, sop, number))
        if row.is_encapsulated or row.pixel_data_offset is None:
            return None  # compressed frames are cut out of the file by pydicom: the normal view does it
        try:
            part_type, syntax, decode = wado._frame_media(request, row)
        except Exception:  # NotAcceptableError and anything unexpected: the normal view answers it
            return None
        if decode:
            return None
        body, content_type = _frame_body(row, number, f"{part_type}; transfer-syntax={syntax}", part_type)
        if body is None:
            return None
        return "200 OK", self._headers(request, user, by_session, content_type, len(body)), [body]

    def _proxied(
        self,
        request: WSGIRequest,
        user: Any,
        by_session: bool,
        row: Instance,
        source: DicomSource,
        frame: tuple[str, str, str, int],
    ) -> Served | None:
        """The PACS's own multipart body passed through (upstream.stream_frame), as the normal view passes it."""
        try:
            wado._frame_media(request, row, proxied=True)
        except Exception:  # not acceptable: the normal view says so, before asking the PACS anything
            return None
        try:
            passed = upstream.stream_frame(source, *frame, row.transfer_syntax_uid)
        except ApplicationError as exc:
            # The PACS is down, slow or has no such frame: the normal view's answer, without asking the PACS again.
            error = error_response(exc.status_code, exc.message, exc.code)
            headers = self._headers(request, user, by_session, error["Content-Type"], len(error.content))
            return f"{error.status_code} {error.reason_phrase}", headers, [error.content]
        if passed is None:
            return None  # an answer the normal view reads and relabels part by part
        content_type, length, body = passed
        return "200 OK", self._headers(request, user, by_session, content_type, length), body

    def _headers(
        self, request: WSGIRequest, user: Any, by_session: bool, content_type: str, length: int
    ) -> list[tuple[str, str]]:
        headers = [("Content-Type", content_type), ("Content-Length", str(length)), *self.static_headers]
        # As the normal view's middlewares: LocaleMiddleware's Vary and language (UserLanguageMiddleware's for a
        # session's user), SessionMiddleware's Vary (the view always looks at the session).
        language = saved_language(user) if by_session else ""
        headers.append(("Vary", "Accept-Language, Cookie"))
        headers.append(("Content-Language", language or translation.get_language_from_request(request)))
        return headers

    def _legacy_token_key(self, request: WSGIRequest) -> str | None:
        """The key of ``Authorization: Token <key>`` when LegacyTokenAuthentication is the class that reads it (no
        session cookie, which the normal view looks at first; not a personal ``mlq_`` token)."""
        if not self.legacy_tokens or self.session_cookie in request.COOKIES:
            return None
        parts = request.META.get("HTTP_AUTHORIZATION", "").split()
        if len(parts) != 2 or parts[0].lower() != "token" or parts[1].startswith(API_TOKEN_PREFIX):
            return None
        return parts[1]

    def _user(self, request: WSGIRequest) -> tuple[Any, bool]:
        """(the user, whether by session) as the normal view authenticates, or (None, False) where the normal
        view must answer (no credentials, bad ones, basic authentication, whose password hashing is no fast path
        anyway)."""
        if self.session_cookie in request.COOKIES and not settings.SECRET_KEY_FALLBACKS:
            # (With old keys to fall back on, Django may rotate the session while checking it: the normal view's.)
            engine = import_string(settings.SESSION_ENGINE)
            request.session = engine.SessionStore(request.COOKIES[self.session_cookie])
            user = get_user(request)  # Django's own check: session, backend, password hash
            if request.session.modified:  # flushed (a changed password): the normal view answers the rest
                return None, False
            if user.is_authenticated:
                return user, True
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header or header.split(" ", 1)[0].lower() == "basic":
            return None, False
        for authenticator in _token_authenticators():
            try:
                result = authenticator.authenticate(request)  # type: ignore[arg-type]
            except AuthenticationFailed:
                return None, False
            if result is not None:
                return result[0], False
        return None, False


def _token_authenticators() -> list[BaseAuthentication]:
    """The configured API authentication classes that read the Authorization header, in their order: the same
    ones, in the same order, as imaging.dicomweb.common._authenticate (less basic authentication)."""
    configured = cast(list[type[BaseAuthentication]], api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    return [cls() for cls in configured if not issubclass(cls, SessionAuthentication | BasicAuthentication)]


def _static_headers() -> list[tuple[str, str]]:
    """The headers Django's security middlewares give every response of this kind (see the test that compares
    a fast-path answer with the normal view's)."""
    headers = []
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        headers.append(("Referrer-Policy", policy if isinstance(policy, str) else ",".join(policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()))
    return headers


def _frame_body(row: Instance, number: int, part_content_type: str, part_type: str) -> tuple[bytes | None, str]:
    """The multipart/related body of one native frame, assembled in one buffer: the part's head, the frame read
    straight into place from the file, the closing delimiter."""
    try:
        path = default_storage.path(row.file)
    except NotImplementedError:  # a storage without local files: the normal view reads through it
        return None, ""
    boundary = secrets.token_hex(16)
    head = f"--{boundary}\r\nContent-Type: {part_content_type}\r\n\r\n".encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = row.frame_length
    body = bytearray(len(head) + length + len(tail))
    body[: len(head)] = head
    assert row.pixel_data_offset is not None
    offset = row.pixel_data_offset + (number - 1) * length
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None, ""
    try:
        read = os.preadv(fd, [memoryview(body)[len(head) : len(head) + length]], offset)
    finally:
        os.close(fd)
    if read != length:
        return None, ""  # a short file: the normal view says what is wrong
    body[len(head) + length :] = tail
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return bytes(body), content_type


def wrap(app: WSGIApp) -> WSGIApp:
    """``app`` behind the frame fast path, unless DICOMWEB_FRAME_FAST_PATH is off."""
    return FrameFastPath(app) if getattr(settings, "DICOMWEB_FRAME_FAST_PATH", True) else app
