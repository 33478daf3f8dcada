"""Importing studies from the real Orthanc of the test run into a project, as a job with a report."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, cast

import pytest
from dicomweb_client.api import DICOMwebClient
from django.test import Client

from annotation.labels import load_example_schema
from annotation.models import Case, Project
from annotation.services import schema_create_version
from config.types import User
from imaging.models import DicomSource, Study
from jobs.models import Job, JobStatus
from tests.conftest import require_env
from tests.factories import DicomSourceFactory
from tests.imaging.test_dicomweb_proxy import fresh_series

pytestmark = pytest.mark.services


@pytest.fixture
def project_with_schema(bare_project: Project, users: dict[str, User]) -> Project:
    schema_create_version(
        project=bare_project, definition=load_example_schema("chest_ct_nodules"), created_by=users["manager"]
    )
    return bare_project


def eager_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the Celery app itself: Django's CELERY_TASK_ALWAYS_EAGER is read once, when the app is first used."""
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _import(client: Client, project: Project, body: dict[str, Any], capture: Callable[..., Any]) -> Job:
    with capture(execute=True):
        response = client.post(f"/api/v1/projects/{project.slug}/imports/", body, content_type="application/json")
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


@pytest.mark.django_db(transaction=False)
def test_import_copies_links_and_opens_cases_once(
    monkeypatch: pytest.MonkeyPatch,
    project_with_schema: Project,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    eager_celery(monkeypatch)
    series = fresh_series()
    DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL")).store_instances(series)
    source = cast(DicomSource, DicomSourceFactory())
    project_with_schema.import_sources.add(source)  # an administrator opens the PACS to the project
    uid = str(series[0].StudyInstanceUID)
    missing = "1.2.3.4.5.6.7.8.9.424242"
    body = {"source": source.name, "study_uids": [uid, missing], "mode": "copy"}
    manager = client_for(users["manager"])

    job = _import(manager, project_with_schema, body, django_capture_on_commit_callbacks)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["imported"] == 1 and job.result["cases"] == 1
    by_uid = {line["study_instance_uid"]: line for line in job.result["studies"]}
    assert by_uid[uid]["status"] == "imported" and by_uid[uid]["stored"] == len(series)
    assert by_uid[missing]["status"] == "not_found" and "Not found" in by_uid[missing]["reason"]
    assert Study.objects.filter(store=project_with_schema.image_store, study_instance_uid=uid).count() == 1
    assert job.progress == {"done": 2, "total": 2, "message": "done"}

    again = _import(manager, project_with_schema, body, django_capture_on_commit_callbacks)
    assert again.status == JobStatus.SUCCEEDED
    rerun = {line["study_instance_uid"]: line for line in again.result["studies"]}[uid]
    assert rerun["status"] == "imported" and rerun["stored"] == 0 and rerun["duplicate"] == len(series)
    assert Case.objects.filter(project=project_with_schema, study__study_instance_uid=uid).count() == 1


@pytest.mark.django_db
def test_import_from_a_pacs_that_is_down_fails_after_its_attempts_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
    project_with_schema: Project,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    eager_celery(monkeypatch)
    down = cast(DicomSource, DicomSourceFactory(base_url=f"http://127.0.0.1:{_closed_port()}/dicom-web"))
    project_with_schema.import_sources.add(down)
    body = {"source": down.name, "study_uids": ["1.2.3.4"], "mode": "index"}
    job = _import(client_for(users["manager"]), project_with_schema, body, django_capture_on_commit_callbacks)
    assert job.status == JobStatus.FAILED and job.attempts == job.max_attempts
    assert down.name in job.error or "PACS" in job.error
    assert [e.to_status for e in job.events.all()].count("queued") == job.max_attempts


@pytest.mark.django_db
def test_import_is_for_managers_and_names_bad_input(
    project_with_schema: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    source = cast(DicomSource, DicomSourceFactory())
    url = f"/api/v1/projects/{project_with_schema.slug}/imports/"
    body = {"source": source.name, "study_uids": ["1.2.3"]}
    reader = client_for(users["annotator"]).post(url, body, content_type="application/json")
    assert reader.status_code == 403
    outsider = client_for(users["outsider"]).post(url, body, content_type="application/json")
    assert outsider.status_code == 404
    manager = client_for(users["manager"])
    unknown = manager.post(url, {**body, "source": "no-such-pacs"}, content_type="application/json")
    assert unknown.status_code == 400 and "no-such-pacs" in unknown.content.decode()
    # A PACS that no administrator opened to the project may hold other projects' studies: refused, named.
    closed = manager.post(url, body, content_type="application/json")
    assert closed.status_code == 403 and source.name in closed.json()["detail"]
    project_with_schema.import_sources.add(source)
    empty = manager.post(url, {**body, "study_uids": [" "]}, content_type="application/json")
    assert empty.status_code == 400
    assert not Job.objects.exists()
