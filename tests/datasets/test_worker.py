"""The export job on a real Celery worker (``celery -A config worker -Q default``) against the test's broker and
database: the API request enqueues it on commit, the worker builds the snapshot with progress, and the zip the
API then serves is the one the job recorded."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from annotation.models import AnnotationRevision, Case
from datasets.models import Export
from jobs.models import Job, JobStatus
from tests.conftest import require_env

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


def start_worker(storage: Path, log: Path) -> subprocess.Popen[bytes]:
    """A real Celery worker on the test run's broker. Tasks earlier tests queued and no worker ran (dashboard
    refreshes after every submission, for one) are purged first: the worker would otherwise work through the
    whole backlog before the task its test waits for."""
    from config.celery import app

    app.control.purge()
    url = urlsplit(require_env("DATABASE_URL"))
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path=f"/{connection.settings_dict['NAME']}")),
        "CELERY_BROKER_URL": require_env("CELERY_BROKER_URL"),
        "MEDLABEL_STORAGE_DIR": str(storage),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    command = [CELERY, "-A", "config", "worker", "-Q", "default", "--concurrency=1", "--pool=solo",
               "--without-gossip", "--without-mingle", "-l", "info"]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_builds_the_export_the_api_queued(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    worker = start_worker(isolated_storage, log)
    try:
        manager = client_for(users["manager"])
        slug = adjudicated_cases[0][0].project.slug
        body = {"formats": ["monai", "csv"], "filters": {"min_qa_level": "adjudicated"}}
        response = manager.post(f"/api/v1/projects/{slug}/exports/", data=body, content_type="application/json")
        assert response.status_code == 202, response.content
        export_id = response.json()["id"]
        job_id = Export.objects.get(pk=export_id).job_id
        assert job_id is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = Job.objects.get(pk=job_id)
            if job.is_finished:
                break
            time.sleep(0.3)
        assert job.status == JobStatus.SUCCEEDED, (job.status, job.error, log.read_text()[-3000:])
        assert job.worker.endswith(f":{worker.pid}")
        assert job.progress["done"] == job.progress["total"] == 3
        export = Export.objects.get(pk=export_id)
        download = manager.get(f"/api/v1/projects/{slug}/exports/{export_id}/download/")
        data = b"".join(cast(Any, download).streaming_content)
        assert hashlib.sha256(data).hexdigest() == export.sha256 == job.result["sha256"]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
