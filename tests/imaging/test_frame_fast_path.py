"""The WADO-RS frame fast path (imaging.dicomweb.fastpath) against the normal view, request by request.

Each request goes to two WSGI applications in this process: Django's own handler (the normal view behind the
whole middleware chain) and the fast path in front of a spy of that handler. A 200 must come from the fast path
itself (the spy not called) with the normal view's status, headers and frame bytes; every refusal must reach
the normal view (the spy called) and so be its answer: same status and message, in English and in Chinese.
Isolation first: UIDs borrowed from another project's store never give a frame."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg
import pytest
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import Client
from pydicom.dataset import Dataset
from rest_framework.authtoken.models import Token

from accounts.services import api_token_create, api_token_revoke
from annotation.models import Project, Role
from imaging.dicomweb.fastpath import FrameFastPath
from imaging.models import DicomSource
from imaging.services.ingest import IncomingFile, ingest_files
from imaging.services.pull import study_index_upstream
from tests.conftest import require_env
from tests.factories import DicomSourceFactory, ProjectFactory, UserFactory
from tests.imaging.test_dicomweb_local import synthetic
from tests.imaging.test_dicomweb_proxy import closed_port, fresh_series

PASSWORD = "test-password-123"  # tests.factories.UserFactory
OCTET_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Spy:
    app: WSGIHandler = field(default_factory=WSGIHandler)
    calls: int = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.calls += 1
        return self.app(environ, start_response)


def call(app: Any, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started["status"], started["headers"] = status, response_headers

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Answer(int(started["status"].split()[0]), dict(started["headers"]), body)


@pytest.fixture
def apps() -> Iterator[tuple[WSGIHandler, FrameFastPath, Spy]]:
    # As Django's test client does: the test's transaction must survive each request's end-of-request signal.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        spy = Spy()
        yield WSGIHandler(), FrameFastPath(spy), spy
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def store(datasets: list[Dataset], project: Project) -> None:
    files = []
    for index, ds in enumerate(datasets):
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(IncomingFile(f"{index}.dcm", buffer.getvalue()))
    report = ingest_files(files, store=project.image_store)
    assert not report.rejected, report


@dataclass
class World:
    p1: Project
    p2: Project
    alice: User  # annotator in p1
    bob: User  # manager of p2
    s1: list[Dataset]
    s2: list[Dataset]

    def frame_path(self, ds: Dataset, frame: int = 1, scope: str | None = None, **borrow: str) -> str:
        study = borrow.get("study", ds.StudyInstanceUID)
        series = borrow.get("series", ds.SeriesInstanceUID)
        sop = borrow.get("sop", ds.SOPInstanceUID)
        root = "/dicomweb" + (f"/projects/{scope}" if scope else "")
        return f"{root}/studies/{study}/series/{series}/instances/{sop}/frames/{frame}"


@pytest.fixture
def world(db: None, make_member: Callable[..., User]) -> World:
    p1 = cast(Project, ProjectFactory(slug="p1"))
    p2 = cast(Project, ProjectFactory(slug="p2"))
    alice = make_member(p1, Role.ANNOTATOR, "alice")
    bob = make_member(p2, Role.MANAGER, "bob")
    s1, s2 = synthetic(61)[:2], synthetic(62)[:2]
    store(s1, p1)
    store(s2, p2)
    return World(p1, p2, alice, bob, s1, s2)


def token(user: User) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def session_cookie(user: User) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


def without_boundary(answer: Answer) -> tuple[dict[str, str], bytes]:
    boundary = re.search(r"boundary=([^;\s]+)", answer.headers["Content-Type"])
    assert boundary is not None
    headers = {k: v.replace(boundary[1], "B") for k, v in answer.headers.items() if k != "X-Request-ID"}
    return headers, answer.body.replace(boundary[1].encode(), b"B")


def assert_served_like_the_view(apps: tuple[WSGIHandler, FrameFastPath, Spy], path: str, headers: dict[str, str]):
    django_app, fast, spy = apps
    normal = call(django_app, path, headers=headers)
    before = spy.calls
    quick = call(fast, path, headers=headers)
    assert normal.status == 200, normal.body[:300]
    assert spy.calls == before, "the fast path handed a frame it should serve to Django"
    assert quick.status == 200
    assert without_boundary(quick) == without_boundary(normal)
    assert quick.headers["X-Request-ID"]
    return quick


def assert_refused_like_the_view(
    apps: tuple[WSGIHandler, FrameFastPath, Spy], path: str, headers: dict[str, str], status: int, method: str = "GET"
) -> dict[str, Any]:
    django_app, fast, spy = apps
    bodies = {}
    for language in ("en", "zh-hans"):
        asked = {**headers, "Accept-Language": language}
        normal = call(django_app, path, method, asked)
        before = spy.calls
        quick = call(fast, path, method, asked)
        assert spy.calls == before + 1, "the fast path answered a refusal itself"
        assert quick.status == normal.status == status, quick.body[:300]
        if status == 200:  # handed on and served by the normal view (a random boundary each time)
            assert quick.body == normal.body or without_boundary(quick)[1] == without_boundary(normal)[1]
            continue
        assert quick.body == normal.body
        bodies[language] = quick.json() if "json" in quick.headers.get("Content-Type", "") else {}
    return bodies


def test_a_members_frame_is_served_by_the_fast_path_exactly_as_the_view_serves_it(world: World, apps: Any):
    ds = world.s1[1]
    quick = assert_served_like_the_view(apps, world.frame_path(ds), {**token(world.alice), "Accept": OCTET_ACCEPT})
    assert ds.PixelData in quick.body
    assert_served_like_the_view(apps, world.frame_path(ds, scope="p1"), token(world.alice))
    # The browser's viewer: the session cookie, on a GET without a CSRF token (a read needs none).
    assert_served_like_the_view(apps, world.frame_path(ds), session_cookie(world.alice))
    # A personal API token, as dicomweb-client and OHIF send it.
    _, secret = api_token_create(user=world.alice, name="viewer")
    assert_served_like_the_view(apps, world.frame_path(ds), {"Authorization": f"Bearer {secret}"})


def test_uids_borrowed_from_another_projects_store_never_give_a_frame(world: World, apps: Any):
    theirs, ours = world.s1[0], world.s2[0]
    bob = token(world.bob)
    cases = [
        world.frame_path(theirs),  # all of p1's UIDs, unscoped
        world.frame_path(theirs, scope="p2"),  # p1's UIDs in bob's own project
        world.frame_path(theirs, scope="p1"),  # bob's token on p1 itself
        world.frame_path(ours, sop=theirs.SOPInstanceUID),  # bob's study and series, p1's SOP
        world.frame_path(ours, series=theirs.SeriesInstanceUID, sop=theirs.SOPInstanceUID),
        world.frame_path(theirs, study=ours.StudyInstanceUID),  # bob's study UID, p1's series and SOP
    ]
    for path in cases:
        assert_refused_like_the_view(apps, path, bob, 404)
    assert_refused_like_the_view(apps, world.frame_path(theirs), session_cookie(world.bob), 404)


def test_every_refusal_is_the_normal_views_answer_in_both_languages(world: World, apps: Any):
    ds = world.s1[0]
    path = world.frame_path(ds)
    outsider = cast(User, UserFactory(username="outsider"))
    bodies = assert_refused_like_the_view(apps, path, token(outsider), 404)
    assert ds.StudyInstanceUID in bodies["en"]["detail"]

    bodies = assert_refused_like_the_view(apps, path, {}, 401)
    assert bodies["en"]["code"] == "not_authenticated"

    bodies = assert_refused_like_the_view(apps, path, {"Authorization": "Token not-a-token"}, 401)
    assert bodies["en"]["detail"] != bodies["zh-hans"]["detail"]  # DRF's message, translated

    token_row, secret = api_token_create(user=world.alice, name="old")
    api_token_revoke(token=token_row)
    bodies = assert_refused_like_the_view(apps, path, {"Authorization": f"Bearer {secret}"}, 401)
    assert "revoked" in bodies["en"]["detail"]
    assert bodies["en"]["detail"] != bodies["zh-hans"]["detail"]

    alice_token = token(world.alice)
    User.objects.filter(pk=world.alice.pk).update(is_active=False)
    bodies = assert_refused_like_the_view(apps, path, alice_token, 401)
    assert bodies["en"]["detail"] != bodies["zh-hans"]["detail"]
    User.objects.filter(pk=world.alice.pk).update(is_active=True)

    bodies = assert_refused_like_the_view(apps, world.frame_path(ds, frame=2), alice_token, 404)
    assert "Frame 2 does not exist" in bodies["en"]["detail"]
    assert_refused_like_the_view(apps, world.frame_path(ds, frame=0), alice_token, 404)
    assert_refused_like_the_view(apps, path.replace("/frames/1", "/frames/1,1"), alice_token, 200)
    assert_refused_like_the_view(apps, world.frame_path(ds, sop="1.2.x"), alice_token, 400)
    assert_refused_like_the_view(apps, path, {**alice_token, "Accept": "image/png"}, 406)
    # Other methods on the frame route are the normal view's business.
    assert_refused_like_the_view(apps, path, alice_token, 200, method="HEAD")
    assert_refused_like_the_view(apps, path, alice_token, 403, method="POST")  # CSRF: the view writes nothing
    # Basic authentication (a password hash per request) is left to the normal view.
    basic = {"Authorization": "Basic " + __import__("base64").b64encode(f"alice:{PASSWORD}".encode()).decode()}
    assert_refused_like_the_view(apps, path, basic, 200)


def test_who_the_fast_path_takes_the_request_for_is_who_the_view_takes_it_for(world: World, apps: Any):
    path = world.frame_path(world.s1[0])
    # The session comes first: alice's session with a token that is no token is alice's frame...
    assert_served_like_the_view(apps, path, {**session_cookie(world.alice), "Authorization": "Token nonsense"})
    # ...and bob's session with alice's token is bob, who may not see it.
    assert_refused_like_the_view(apps, path, {**session_cookie(world.bob), **token(world.alice)}, 404)
    # An administrator's legacy token: the normal view (administrators' lookup has another shape) serves it.
    admin = cast(User, UserFactory(username="root", is_superuser=True, is_staff=True))
    assert_refused_like_the_view(apps, path, token(admin), 200)
    # A personal token with the Token keyword is the personal token's, not a legacy key.
    _, secret = api_token_create(user=world.alice, name="viewer")
    assert_served_like_the_view(apps, path, {"Authorization": f"Token {secret}"})
    assert_refused_like_the_view(apps, path, {"Authorization": f"Token {secret}x"}, 401)


def test_a_session_of_a_user_who_left_the_project_gives_no_frame(world: World, apps: Any):
    cookie = session_cookie(world.alice)
    path = world.frame_path(world.s1[0])
    assert_served_like_the_view(apps, path, cookie)
    world.p1.memberships.filter(user=world.alice).delete()
    assert_refused_like_the_view(apps, path, cookie, 404)


@pytest.fixture
def proxied(world: World) -> tuple[Project, list[Dataset]]:
    """p3, whose studies stay in Orthanc (indexed here, pixels proxied); alice is a member."""
    pacs = cast(
        DicomSource,
        DicomSourceFactory(name="orthanc", base_url=require_env("ORTHANC_DICOMWEB_URL"), timeout_seconds=10),
    )
    p3 = cast(Project, ProjectFactory(slug="p3", dicom_source=pacs))
    p3.memberships.create(user=world.alice, role=Role.ANNOTATOR)
    series = fresh_series()[:2]
    orthanc = DICOMwebClient(url=pacs.base_url)
    orthanc.store_instances(series)
    study_index_upstream(source=pacs, study_instance_uid=series[0].StudyInstanceUID, store=p3.image_store)
    return p3, series


def test_a_proxied_frame_is_orthancs_body_passed_through_as_the_view_passes_it(
    world: World, apps: Any, proxied: tuple[Project, list[Dataset]]
):
    p3, series = proxied
    ds = series[1]
    for scope in (None, "p3"):
        quick = assert_served_like_the_view(apps, world.frame_path(ds, scope=scope), token(world.alice))
        assert ds.PixelData in quick.body
    # Bob is in no project of that PACS: the normal view's 404, and the PACS is never asked.
    assert_refused_like_the_view(apps, world.frame_path(ds), token(world.bob), 404)
    assert_refused_like_the_view(apps, world.frame_path(ds, scope="p3"), token(world.bob), 404)
    assert_refused_like_the_view(apps, world.frame_path(ds, frame=2), token(world.alice), 404)


def test_a_pacs_that_is_down_is_the_views_502_asked_once(
    world: World, apps: Any, proxied: tuple[Project, list[Dataset]]
):
    p3, series = proxied
    assert p3.dicom_source_id is not None
    DicomSource.objects.filter(pk=p3.dicom_source_id).update(base_url=f"http://127.0.0.1:{closed_port()}/dicom-web")
    django_app, fast, spy = apps
    path = world.frame_path(series[0], scope="p3")
    for language in ("en", "zh-hans"):
        headers = {**token(world.alice), "Accept-Language": language}
        normal, quick = call(django_app, path, headers=headers), call(fast, path, headers=headers)
        assert spy.calls == 0  # answered by the fast path, without a second try through Django
        assert quick.status == normal.status == 502
        assert quick.body == normal.body and "unreachable" in quick.json()["detail"]
        drop = {"X-Request-ID"}
        assert {k: v for k, v in quick.headers.items() if k not in drop} == {
            k: v for k, v in normal.headers.items() if k not in drop
        }


@pytest.mark.django_db(transaction=True)
def test_a_frame_after_postgresql_closed_the_connection_is_served_on_a_new_one(
    make_member: Callable[..., User], monkeypatch: pytest.MonkeyPatch
):
    from django.db import connections

    connection: Any = connections["default"]
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)  # as served: a persistent connection
    connection.close()  # the next one is opened with that age
    project = cast(Project, ProjectFactory(slug="p1"))
    user = make_member(project, Role.ANNOTATOR, "alice")
    series = synthetic(63)[:1]
    store(series, project)
    spy = Spy()
    fast = FrameFastPath(spy)
    path = World(project, project, user, user, series, series).frame_path(series[0])
    credentials = token(user)
    first = call(fast, path, headers=credentials)
    assert first.status == 200 and spy.calls == 0
    assert call(fast, path, headers=credentials).status == 200 and spy.calls == 0  # on the same connection
    pid = connection.connection.info.backend_pid
    with psycopg.connect(require_env("DATABASE_URL"), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    again = call(fast, path, headers=credentials)
    assert again.status == 200, again.body[:300]
    assert series[0].PixelData in again.body
    assert spy.calls == 1  # the fast path's query found the connection gone; Django served it on a new one
    assert connection.connection.info.backend_pid != pid
    connection.close()
