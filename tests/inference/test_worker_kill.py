"""A real GPU-queue worker (``celery -A config worker -Q gpu``, on the CPU here) killed with SIGKILL in the
middle of a training job: the next worker re-queues the orphan and runs it again from the start, and
nothing of the first attempt was stored (no weights file, no metrics, the version still "training")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.contrib.auth.models import User
from django.db import connection

from annotation.models import Case
from inference import services
from inference.models import ModelStatus, ModelVersion
from jobs.models import JobStatus
from tests.conftest import require_env, stored_files

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


def worker_env(storage: Path) -> dict[str, str]:
    """The test's services, and the test database (pytest-django's) rather than the configured one."""
    url = urlsplit(require_env("DATABASE_URL"))
    database = str(connection.settings_dict["NAME"])
    return {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path=f"/{database}")),
        "CELERY_BROKER_URL": require_env("CELERY_BROKER_URL"),
        "MEDLABEL_STORAGE_DIR": str(storage),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "JOB_HEARTBEAT_TIMEOUT": "300",
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            CELERY,
            "-A",
            "config",
            "worker",
            "-Q",
            "gpu",
            "--concurrency=1",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_training_leaves_the_job_retried_and_nothing_half_written(
    agreed_cases: list[Case], users: dict[str, User], isolated_storage: Path, tmp_path: Path
) -> None:
    project = agreed_cases[0].project
    env = worker_env(isolated_storage)
    log = tmp_path / "worker.log"
    first = start_worker(env, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        job = services.training_start(
            project=project, actor=users["manager"], training_params={"epochs": 6, "samples_per_case": 6}
        )  # committed: the message is on the gpu queue now
        version = ModelVersion.objects.get(training_job=job)

        def first_epoch_done() -> bool:
            job.refresh_from_db()
            return job.status == JobStatus.RUNNING and len(job.history) >= 1

        wait_for(first_epoch_done, 120, "the first epoch", log)
        assert job.worker.endswith(f":{first.pid}") and job.progress["message"] == "no GPU: ran on CPU"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)  # reaped: its pid no longer exists

        job.refresh_from_db()
        version.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.attempts == 1  # what the dead worker left
        assert version.status == ModelStatus.TRAINING and version.weights_file == "" and version.metrics == {}
        assert not [p for p in stored_files(isolated_storage) if "models" in p.parts]

        second = start_worker(env, log)  # at start it re-queues the jobs of dead workers on this host

        def finished() -> bool:
            job.refresh_from_db()
            return job.is_finished

        wait_for(finished, 180, "the retried job to finish", log)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.attempts == 2 and job.worker.endswith(f":{second.pid}")
        messages = [e.message for e in job.events.all()]
        assert any("was lost; re-queued" in m for m in messages), messages
        version.refresh_from_db()
        assert version.status in (ModelStatus.ACTIVE, ModelStatus.CANDIDATE)
        assert [row["epoch"] for row in version.history] == list(range(1, 7))  # one whole run, not two halves
        weights = [p for p in stored_files(isolated_storage) if "models" in p.parts]
        assert len(weights) == 1 and weights[0].name.startswith(f"v{version.number}-")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
