"""The job lifecycle every worker task relies on: atomic claim, progress, outcome, recovery, API."""

from __future__ import annotations

import socket
import subprocess
from typing import Any, cast

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from annotation.models import Project, Role
from config.errors import ApplicationError
from config.types import User
from jobs import services
from jobs.models import Job, JobEvent, JobStatus
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.i18n import assert_chinese


def make_job(**kwargs: Any) -> Job:
    return services.job_create(kind="export", task_name="jobs.tests_only.none", enqueue=False, **kwargs)


@pytest.mark.django_db
def test_a_job_is_claimed_once_and_records_its_story() -> None:
    job = make_job()
    first = services.job_claim(job.pk, worker="host-a:1")
    assert first is not None and first.status == JobStatus.RUNNING and first.attempts == 1
    # A second delivery of the same message, from a live worker elsewhere, finds nothing to do.
    assert services.job_claim(job.pk, worker="host-b:2") is None
    services.Progress(job.pk)(done=2, total=4, history={"epoch": 1, "loss": 0.5})
    services.job_succeed(first, {"files": 3})
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.result == {"files": 3}
    assert job.progress == {"done": 2, "total": 4} and job.history == [{"epoch": 1, "loss": 0.5}]
    assert services.job_claim(job.pk, worker="host-b:2") is None  # finished: running twice does nothing
    assert [(e.from_status, e.to_status) for e in job.events.all()] == [
        ("", "queued"), ("queued", "running"), ("running", "succeeded"),
    ]  # fmt: skip


@pytest.mark.django_db
def test_run_job_records_a_readable_failure_and_retries_transient_errors() -> None:
    job = make_job()

    def bad_input(job: Job, progress: services.Progress) -> dict[str, Any]:
        raise ApplicationError("No adjudicated cases to train on")

    assert services.run_job(job.pk, bad_input) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error == "No adjudicated cases to train on"

    flaky = make_job()
    calls: list[int] = []

    def transient(job: Job, progress: services.Progress) -> dict[str, Any]:
        calls.append(job.attempts)
        if len(calls) < 3:
            raise services.TransientJobError("PACS is restarting")
        return {"ok": True}

    for _ in range(2):
        with pytest.raises(services.TransientJobError):
            services.run_job(flaky.pk, transient)
    assert services.run_job(flaky.pk, transient) == JobStatus.SUCCEEDED
    assert calls == [1, 2, 3]


@pytest.mark.django_db
def test_a_job_whose_worker_died_is_taken_over_and_fails_after_its_attempts() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    job = make_job()
    services.job_claim(job.pk, worker=f"{socket.gethostname()}:{dead.pid}")
    taken = services.job_claim(job.pk, worker="other:1")
    assert taken is not None and taken.attempts == 2
    Job.objects.filter(pk=job.pk).update(worker=f"{socket.gethostname()}:{dead.pid}", attempts=3)
    assert services.job_claim(job.pk, worker="other:1") is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "stopped 3 times" in job.error


@pytest.mark.django_db
def test_recover_orphans_requeues_jobs_of_dead_workers_on_this_host() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    job = make_job()
    services.job_claim(job.pk, worker=f"{socket.gethostname()}:{dead.pid}")
    alive = make_job()
    services.job_claim(alive.pk)  # this test process: alive
    assert services.jobs_recover_orphans() == [job.pk]
    job.refresh_from_db()
    alive.refresh_from_db()
    assert job.status == JobStatus.QUEUED and alive.status == JobStatus.RUNNING


@pytest.mark.django_db
def test_job_events_are_append_only() -> None:
    job = make_job()
    event = JobEvent.objects.filter(job=job).first()
    assert event is not None
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        JobEvent.objects.filter(pk=event.pk).update(message="rewritten")


@pytest.mark.django_db
def test_jobs_api_scopes_by_project_role_and_lets_managers_cancel_and_retry() -> None:
    project, other = cast(Project, ProjectFactory()), cast(Project, ProjectFactory())
    manager, reader = cast(User, UserFactory()), cast(User, UserFactory())
    MembershipFactory(project=project, user=manager, role=Role.MANAGER)
    MembershipFactory(project=project, user=reader, role=Role.ANNOTATOR)
    mine = make_job(project=project)
    theirs = make_job(project=other)
    as_manager, as_reader = Client(), Client()
    as_manager.force_login(manager)
    as_reader.force_login(reader)

    listed = as_manager.get(f"/api/v1/jobs/?project={project.slug}").json()
    assert [j["id"] for j in listed["results"]] == [mine.pk]
    assert as_manager.get(f"/api/v1/jobs/{theirs.pk}/").status_code == 404
    assert as_reader.get(f"/api/v1/jobs/{mine.pk}/").status_code == 404
    bad = as_manager.get("/api/v1/jobs/?status=exploded")
    assert bad.status_code == 400 and "exploded" in bad.json()["detail"]

    cancelled = as_manager.post(f"/api/v1/jobs/{mine.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert as_manager.post(f"/api/v1/jobs/{mine.pk}/cancel/").status_code == 409
    assert as_manager.post(f"/api/v1/jobs/{mine.pk}/retry/").status_code == 409

    failed = make_job(project=project)
    claimed = services.job_claim(failed.pk)
    assert claimed is not None
    services.job_fail(claimed, "boom")
    detail = as_manager.post(f"/api/v1/jobs/{failed.pk}/retry/").json()
    assert detail["status"] == "queued" and detail["attempts"] == 0
    assert [e["to_status"] for e in detail["events"]][-2:] == ["failed", "queued"]


@pytest.mark.django_db
def test_job_events_and_progress_come_in_the_managers_language() -> None:
    """Workers write a job's lines with no reader in sight; the Jobs screen shows them in the manager's language
    (issue 13, item 4), the names and numbers in them as written."""
    project = cast(Project, ProjectFactory())
    manager = cast(User, UserFactory(username="manager"))
    MembershipFactory(project=project, user=manager, role=Role.MANAGER)
    job = make_job(project=project)
    claimed = services.job_claim(job.pk, worker="host-a:1")
    assert claimed is not None
    services.Progress(job.pk)(done=2, total=4, message="case 2 of 4")
    services.job_fail(claimed, "time limit exceeded after 60 s", retry=True, worker="host-a:1")
    services.job_cancel(job, actor=manager)
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(manager)

    detail = client.get(f"/api/v1/jobs/{job.pk}/").json()
    messages = [event["message"] for event in detail["events"]]
    assert messages == ["已创建", "已领取", "正在重试：超过时限（60 秒）", "已被 manager 取消"]
    assert_chinese(messages, ["manager"])
    assert detail["error"] == "超过时限（60 秒）"
    assert detail["progress"]["message"] == "第 2 个病例，共 4 个"
    # Stored in English, and shown so to an English reader.
    assert JobEvent.objects.filter(job=job).last().message == "cancelled by manager"  # type: ignore[union-attr]
    english = Client(HTTP_ACCEPT_LANGUAGE="en")
    english.force_login(manager)
    assert english.get(f"/api/v1/jobs/{job.pk}/").json()["progress"]["message"] == "case 2 of 4"
