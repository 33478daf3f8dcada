"""Readiness checks for ``/readyz``: can this process serve requests right now?

Each check returns its status and latency. Database, broker and storage are required (the web app is
useless without them); the PACS checks (the local Orthanc, ``ORTHANC_URL``, and every upstream DICOMweb
source) are reported but only required with ``READINESS_PACS_REQUIRED=true``, because one PACS being
down must not take the whole web tier out of a load balancer: studies from the local store still work.
Failure details name the kind of error only, never a URL with credentials or a stack trace.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from kombu import Connection

from imaging.models import DicomSource


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    required: bool
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": "ok" if self.ok else "fail",
            "required": self.required,
            "latency_ms": round(self.latency_ms, 1),
        }
        if self.detail:
            data["detail"] = self.detail
        return data


def _timed(name: str, required: bool, check: Callable[[], None]) -> CheckResult:
    start = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure is "not ready"; the name of the error is enough to act on
        return CheckResult(name, False, required, (time.perf_counter() - start) * 1000, _describe(exc))
    return CheckResult(name, True, required, (time.perf_counter() - start) * 1000)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    # Messages can carry a URL with credentials (broker, database): keep the error class only then.
    if "://" in text or "@" in text or "password" in text.lower():
        text = ""
    return f"{exc.__class__.__name__}: {text}"[:200] if text else exc.__class__.__name__


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    timeout = settings.READINESS_TIMEOUT_SECONDS
    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {})
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        options.update(socket_connect_timeout=timeout, socket_timeout=timeout)
    with Connection(url, connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=max(1, round(timeout)))
        if url.startswith(("redis://", "rediss://")):
            # A connected socket is not yet an answering server (e.g. Redis still loading its data).
            conn.default_channel.client.ping()  # type: ignore[attr-defined]


def check_storage() -> None:
    """Write, read back and delete a small object: a read-only or full store is not ready either."""
    name = f"readyz/{uuid.uuid4().hex}.txt"
    payload = b"medlabel readiness probe"
    saved = default_storage.save(name, ContentFile(payload))
    try:
        with default_storage.open(saved, "rb") as handle:
            if handle.read() != payload:
                raise OSError("storage returned different bytes than were written")
    finally:
        default_storage.delete(saved)


def _http_check(url: str, auth: tuple[str, str] | None, timeout: float) -> Callable[[], None]:
    def check() -> None:
        response = requests.get(url, auth=auth, timeout=timeout)
        if response.status_code >= 500:
            raise ConnectionError(f"HTTP {response.status_code}")

    return check


def pacs_checks() -> list[tuple[str, Callable[[], None]]]:
    timeout = settings.READINESS_TIMEOUT_SECONDS
    checks: list[tuple[str, Callable[[], None]]] = []
    if settings.ORTHANC_URL:
        checks.append(("pacs:orthanc", _http_check(settings.ORTHANC_URL.rstrip("/") + "/system", None, timeout)))
    for source in DicomSource.objects.filter(kind=DicomSource.Kind.DICOMWEB).exclude(base_url=""):
        auth = (source.username, source.password) if source.username else None
        url = source.base_url.rstrip("/") + "/studies?limit=1"
        checks.append((f"pacs:{source.name}", _http_check(url, auth, min(timeout, source.timeout_seconds))))
    return checks


def run_checks() -> tuple[bool, dict[str, Any]]:
    """(ready, report): ready is False when any required check failed."""
    results = [
        _timed("database", True, check_database),
        _timed("broker", True, check_broker),
        _timed("storage", True, check_storage),
    ]
    if results[0].ok:  # the upstream sources are rows in the database
        pacs_required = settings.READINESS_PACS_REQUIRED
        results.extend(_timed(name, pacs_required, check) for name, check in pacs_checks())
    ready = all(r.ok for r in results if r.required)
    return ready, {"status": "ready" if ready else "not_ready", "checks": {r.name: r.as_dict() for r in results}}
