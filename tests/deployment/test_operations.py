"""Health and readiness endpoints, request ids in responses and JSON logs, and the id carried into a
Celery task run by a real worker on the real Redis broker."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.http import JsonResponse
from django.test import Client

from config.logging import JsonFormatter, RequestIdFilter
from config.request_context import get_request_id, reset_request_id, set_request_id
from imaging.models import DicomSource
from tests.conftest import require_env

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthz_answers_without_touching_the_database(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_backing_service_with_its_latency(client: Client, settings: Any) -> None:
    require_env("CELERY_BROKER_URL")
    settings.ORTHANC_URL = require_env("ORTHANC_URL")
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "broker", "storage", "pacs:orthanc"}
    for name, check in body["checks"].items():
        assert check["status"] == "ok", (name, check)
        assert 0 <= check["latency_ms"] < 5000
    assert body["checks"]["pacs:orthanc"]["required"] is False
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_down(client: Client, settings: Any, isolated_storage: Path) -> None:
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    settings.ORTHANC_URL = ""
    started = time.perf_counter()
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503, body
    assert body["status"] == "not_ready"
    assert body["checks"]["broker"]["status"] == "fail"
    assert "ConnectionRefused" in body["checks"]["broker"]["detail"] or "Error" in body["checks"]["broker"]["detail"]
    assert "redis://" not in json.dumps(body)  # no URL (which could hold a password) in the answer
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["storage"]["status"] == "ok"
    assert time.perf_counter() - started < 10
    assert list(isolated_storage.rglob("*.txt")) == []  # the storage probe cleans up after itself


@pytest.mark.django_db
def test_readyz_is_503_when_storage_cannot_be_written(client: Client, settings: Any, tmp_path: Path) -> None:
    settings.ORTHANC_URL = ""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker)}},
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["status"] == "fail"


@pytest.mark.django_db
def test_a_pacs_that_is_down_is_reported_and_only_required_when_configured(client: Client, settings: Any) -> None:
    settings.ORTHANC_URL = require_env("ORTHANC_URL")
    DicomSource.objects.create(
        name="remote-pacs",
        kind=DicomSource.Kind.DICOMWEB,
        base_url=f"http://127.0.0.1:{closed_port()}/dicom-web",
        username="u",
        password="topsecret",
        timeout_seconds=2,
    )
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["pacs:remote-pacs"]["status"] == "fail"
    assert body["checks"]["pacs:orthanc"]["status"] == "ok"
    assert "topsecret" not in response.content.decode()

    settings.READINESS_PACS_REQUIRED = True
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["pacs:remote-pacs"]["required"] is True


def test_request_id_is_taken_from_the_client_or_made_and_returned(client: Client) -> None:
    mine = "load-test-42.abc"
    assert client.get("/healthz", HTTP_X_REQUEST_ID=mine)["X-Request-ID"] == mine
    made = client.get("/healthz")["X-Request-ID"]
    assert len(made) == 32 and int(made, 16) >= 0
    # Control characters or an over-long id are not echoed into logs and headers.
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\twith tab")["X-Request-ID"]
    assert replaced != "bad id\twith tab" and len(replaced) == 32
    assert client.get("/healthz", HTTP_X_REQUEST_ID="x" * 500)["X-Request-ID"] != "x" * 500
    assert get_request_id() is None  # reset after the request


def test_json_formatter_writes_one_object_with_the_request_id() -> None:
    record = logging.LogRecord("imaging", logging.WARNING, __file__, 1, "slow frame %s", ("1.2.3",), None)
    record.study = "1.2.3.4"
    token = set_request_id("rid-123")
    try:
        RequestIdFilter().filter(record)
    finally:
        reset_request_id(token)
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["message"] == "slow frame 1.2.3" and data["level"] == "WARNING" and data["logger"] == "imaging"
    assert data["request_id"] == "rid-123" and data["study"] == "1.2.3.4"
    assert "\n" not in line
    try:
        raise ValueError("boom")
    except ValueError:
        error = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonFormatter().format(error))["exc_info"]


def test_django_error_logs_written_after_the_middleware_keep_the_request_id(client: Client) -> None:
    """django.request logs a 4xx after the middleware chain has returned: the id comes from the request."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = client.get("/api/v1/projects/", HTTP_X_REQUEST_ID="rid-unauthorised")
    finally:
        logger.removeHandler(handler)
    assert response.status_code in (401, 403)
    assert [getattr(r, "request_id", None) for r in records] == ["rid-unauthorised"]


def test_plain_log_format_stays_readable_by_default(settings: Any) -> None:
    if settings.LOG_FORMAT != "json":
        console = settings.LOGGING["handlers"]["console"]
        assert console["formatter"] == "plain_request"
        assert "[%(request_id)s]" in settings.LOGGING["formatters"]["plain_request"]["format"]


def test_request_id_travels_into_a_task_run_by_a_real_worker(tmp_path: Path) -> None:
    """Publish a job task inside a 'request' (the id set in the context var), run a real worker on the
    test's Redis with JSON logs, and find the id on the worker's log line for that task."""
    from annotation.tasks import import_studies

    broker = require_env("CELERY_BROKER_URL")
    queue = f"rid-test-{uuid.uuid4().hex[:8]}"
    request_id = f"rid-{uuid.uuid4().hex}"
    token = set_request_id(request_id)
    try:
        # Job 0 does not exist: run_job finds nothing to claim and returns; the log line is what counts.
        import_studies.apply_async(args=[0], queue=queue)
    finally:
        reset_request_id(token)
    log_path = tmp_path / "worker.log"
    env = {**os.environ, "LOG_FORMAT": "json", "CELERY_BROKER_URL": broker, "DJANGO_SETTINGS_MODULE": "config.settings"}
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queue,
                "--pool=solo",
                "--loglevel=INFO",
                "-n",
                f"{queue}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        found: dict[str, Any] | None = None
        while time.monotonic() < deadline and found is None:
            time.sleep(0.5)
            for line in log_path.read_text().splitlines():
                if line.startswith("{"):
                    entry = json.loads(line)
                    if (
                        entry.get("logger") == "medlabel.tasks"
                        and "annotation.tasks.import_studies" in entry["message"]
                    ):
                        found = entry
            assert worker.poll() is None, log_path.read_text()[-3000:]
        assert found is not None, log_path.read_text()[-3000:]
        assert found["request_id"] == request_id
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def test_a_request_that_loses_the_database_is_a_503_with_retry_after(rf: Any) -> None:
    from django.db import IntegrityError, OperationalError

    from config.middleware import DatabaseUnavailableMiddleware

    middleware = DatabaseUnavailableMiddleware(lambda request: JsonResponse({}))
    request = rf.post("/api/v1/cases/1/revisions/")
    response = middleware.process_exception(request, OperationalError("server closed the connection unexpectedly"))
    assert response is not None and response.status_code == 503
    assert response["Retry-After"] == "5"
    assert isinstance(response, JsonResponse) and json.loads(response.content)["code"] == "database_unavailable"
    # A bug is still a bug: other database errors are not dressed up as "try again".
    assert middleware.process_exception(request, IntegrityError("duplicate key")) is None
    assert middleware.process_exception(request, ValueError("boom")) is None
