"""A frame's database round trips (issue 19): the viewer asks for one frame per slice, so the persistent
connection's health check (a ``SELECT 1`` before the request's first query) is a third of a frame's round
trips. A frame skips it; a connection that PostgreSQL closed in the meantime is noticed by the frame's own
first query, and the frame is asked again on a new connection, as the health check would have done."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from pydicom.dataset import Dataset

from annotation.models import Project
from imaging.services.ingest import IncomingFile, ingest_files
from imaging.synthetic import generate_ct_study
from tests.conftest import dataset_bytes
from tests.factories import place_studies

pytestmark = pytest.mark.django_db(transaction=True)
connection: Any = connections["default"]  # django-stubs do not name the health check's fields
ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@pytest.fixture
def frame(project: Project) -> Dataset:
    dataset = next(iter(generate_ct_study(seed=31, rows=32, columns=32, slices=4, n_lesions=0).datasets()))
    report = ingest_files([IncomingFile(name="f", data=dataset_bytes(dataset))])
    place_studies(project, report.study_uids)
    return dataset


@pytest.fixture(autouse=True)
def persistent_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """As served (CONN_MAX_AGE 60): the suite's other tests close every connection after each request."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()


@pytest.fixture
def health_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the health checks of the default connection (they run beneath Django's query log)."""
    calls: list[int] = []
    original = type(connection).is_usable

    def counted(self: Any) -> bool:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(type(connection), "is_usable", counted)
    yield calls


def frame_url(ds: Dataset, project: Project) -> str:
    return (
        f"/dicomweb/projects/{project.slug}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1"
    )


def new_request() -> None:
    """What the start of a request does to a persistent connection (Django's test client leaves it out)."""
    connection.close_if_unusable_or_obsolete()
    assert connection.connection is not None and not connection.health_check_done


def test_a_frame_on_a_persistent_connection_makes_no_health_check_round_trip(
    frame: Dataset, project: Project, manager: User, token_for: Callable[[User], str], health_checks: list[int]
):
    client = Client(HTTP_AUTHORIZATION=f"Token {token_for(manager)}")
    assert client.get(frame_url(frame, project), HTTP_ACCEPT=ACCEPT).status_code == 200
    new_request()
    response = client.get(frame_url(frame, project), HTTP_ACCEPT=ACCEPT)
    assert response.status_code == 200 and frame.PixelData in response.content
    assert health_checks == []
    # Other requests keep theirs.
    new_request()
    assert client.get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+json").status_code == 200
    assert health_checks == [1]


def test_a_frame_after_postgresql_closed_the_connection_is_served_on_a_new_one(
    frame: Dataset, project: Project, manager: User, token_for: Callable[[User], str]
):
    client = Client(HTTP_AUTHORIZATION=f"Token {token_for(manager)}")
    url = frame_url(frame, project)
    assert client.get(url, HTTP_ACCEPT=ACCEPT).status_code == 200
    pid = connection.connection.info.backend_pid
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    new_request()
    response = client.get(url, HTTP_ACCEPT=ACCEPT)
    assert response.status_code == 200, response.content[:300]
    assert frame.PixelData in response.content
    assert connection.connection.info.backend_pid != pid
