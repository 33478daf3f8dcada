"""Who sees and stores what over DICOMweb, through a real HTTP server: members see the studies of their
projects only, a foreign study answers exactly like an unknown one, only managers store, and requests
without valid credentials are challenged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from annotation.models import Project, Role
from imaging.models import Instance
from tests.conftest import stored_files
from tests.factories import ProjectFactory, UserFactory
from tests.imaging.test_dicomweb_local import (
    server_url,
    synthetic,
    token_session,
)

PASSWORD = "test-password-123"  # tests.factories.UserFactory


@dataclass
class World:
    base: str
    p1: Project
    p2: Project
    a: User  # manager of p1
    b: User  # manager of p2
    annotator: User  # annotator in p1
    admin: User  # superuser, member of nothing
    tokens: dict[str, str]
    s1: list[Dataset]  # a's study, in p1
    s2: list[Dataset]  # b's study, in p2

    def session(self, user: User) -> requests.Session:
        return token_session(self.tokens[user.username])

    def client(self, user: User, scope: str | None = None) -> DICOMwebClient:
        root = f"{self.base}/dicomweb" + (f"/projects/{scope}" if scope else "")
        client = DICOMwebClient(url=root, session=self.session(user))
        client.set_http_retry_params(retry=False)
        return client


@pytest.fixture
def world(live_server: Any, make_member: Callable[..., User], token_for: Callable[[User], str]) -> World:
    p1 = cast(Project, ProjectFactory(slug="p1"))
    p2 = cast(Project, ProjectFactory(slug="p2"))
    a = make_member(p1, Role.MANAGER, "alice")
    b = make_member(p2, Role.MANAGER, "bob")
    annotator = make_member(p1, Role.ANNOTATOR, "carol")
    admin = cast(User, UserFactory(username="root", is_superuser=True, is_staff=True))
    tokens = {user.username: token_for(user) for user in (a, b, annotator, admin)}
    world = World(server_url(live_server), p1, p2, a, b, annotator, admin, tokens, synthetic(41)[:2], synthetic(42)[:2])
    world.client(a, "p1").store_instances(world.s1)
    world.client(b, "p2").store_instances(world.s2)
    return world


def study_uids(results: list[dict[str, Any]]) -> set[str]:
    return {item["0020000D"]["Value"][0] for item in results}


def test_qido_shows_only_the_studies_of_ones_projects(world: World):
    s1, s2 = world.s1[0].StudyInstanceUID, world.s2[0].StudyInstanceUID
    for scope in (None, "p2"):
        bob = world.client(world.b, scope)
        assert study_uids(bob.search_for_studies()) == {s2}
        assert study_uids(bob.search_for_series()) == {s2}
        assert {i["00080018"]["Value"][0] for i in bob.search_for_instances()} == {ds.SOPInstanceUID for ds in world.s2}
        assert bob.search_for_studies(search_filters={"StudyInstanceUID": s1}) == []
        assert bob.search_for_studies(search_filters={"PatientID": world.s1[0].PatientID}) == []
        assert bob.search_for_series(search_filters={"SeriesInstanceUID": world.s1[0].SeriesInstanceUID}) == []
        assert bob.search_for_instances(search_filters={"SOPInstanceUID": world.s1[0].SOPInstanceUID}) == []
    alice = world.client(world.a)
    assert study_uids(alice.search_for_studies()) == {s1}
    assert study_uids(world.client(world.annotator).search_for_studies()) == {s1}  # annotators read


def normalised(response: requests.Response, *uids: str) -> tuple[int, str, str]:
    body = response.json()
    detail = body["detail"]
    for uid in uids:
        detail = detail.replace(uid, "<uid>")
    return response.status_code, body["code"], detail


def foreign_and_unknown_paths(ds: Dataset) -> list[tuple[str, str]]:
    """Every resource of one instance's study, with its URL path and the same path for an unknown study."""
    unknown = str(generate_uid())
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    paths = [
        "studies/{study}",
        "studies/{study}/metadata",
        "studies/{study}/series",
        "studies/{study}/instances",
        "studies/{study}/series/{series}",
        "studies/{study}/series/{series}/metadata",
        "studies/{study}/series/{series}/instances",
        "studies/{study}/series/{series}/instances/{sop}",
        "studies/{study}/series/{series}/instances/{sop}/metadata",
        "studies/{study}/series/{series}/instances/{sop}/frames/1",
        "studies/{study}/series/{series}/instances/{sop}/rendered",
        "studies/{study}/series/{series}/instances/{sop}/frames/1/rendered",
        "studies/{study}/series/{series}/instances/{sop}/bulk/7FE00010",
    ]
    return [
        (
            path.format(study=study, series=series, sop=sop),
            path.format(study=unknown, series=series, sop=sop),
        )
        for path in paths
    ]


def test_a_foreign_study_answers_like_an_unknown_one(world: World):
    bob = world.session(world.b)
    ds = world.s1[0]
    for scope in ("", "/projects/p2"):
        for foreign, unknown in foreign_and_unknown_paths(ds):
            accept = {"Accept": "image/png"} if foreign.endswith("rendered") else {}
            got = bob.get(f"{world.base}/dicomweb{scope}/{foreign}", headers=accept, timeout=10)
            expected = bob.get(f"{world.base}/dicomweb{scope}/{unknown}", headers=accept, timeout=10)
            assert got.status_code == 404, (scope, foreign, got.status_code)
            unknown_uid = unknown.split("/")[1]
            assert normalised(got, ds.StudyInstanceUID) == normalised(expected, unknown_uid), foreign
            assert ds.PatientID not in got.text
    # The owner does get them.
    alice = world.session(world.a)
    for foreign, _ in foreign_and_unknown_paths(ds):
        accept = {"Accept": "image/png"} if foreign.endswith("rendered") else {}
        assert alice.get(f"{world.base}/dicomweb/{foreign}", headers=accept, timeout=10).status_code == 200, foreign


def test_a_foreign_project_answers_like_an_unknown_one(world: World, isolated_storage: Path):
    bob = world.session(world.b)
    ds = world.s1[0]
    for path in ("studies", f"studies/{ds.StudyInstanceUID}/metadata", "series", "instances"):
        foreign = bob.get(f"{world.base}/dicomweb/projects/p1/{path}", timeout=10)
        unknown = bob.get(f"{world.base}/dicomweb/projects/no-such-project/{path}", timeout=10)
        assert foreign.status_code == 404, path
        assert normalised(foreign, "p1") == normalised(unknown, "no-such-project")
    files_before = stored_files(isolated_storage)
    with pytest.raises(requests.HTTPError) as caught:
        world.client(world.b, "p1").store_instances(synthetic(43)[:1])
    assert caught.value.response is not None and caught.value.response.status_code == 404
    assert Instance.objects.count() == len(world.s1) + len(world.s2)
    assert stored_files(isolated_storage) == files_before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dicomweb/studies"),
        ("GET", "/dicomweb/projects/p1/studies"),
        ("GET", "/dicomweb/studies/{study}/metadata"),
        ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1"),
        ("POST", "/dicomweb/projects/p1/studies"),
    ],
)
def test_requests_without_valid_credentials_are_challenged(world: World, method: str, path: str):
    ds = world.s1[0]
    url = world.base + path.format(study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, sop=ds.SOPInstanceUID)
    headers = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=x'} if method == "POST" else {}
    attempts: list[tuple[str, dict[str, str], Any]] = [
        ("none", {}, None),
        ("wrong token", {"Authorization": "Token " + "0" * 40}, None),
        ("wrong password", {}, (world.a.username, "not-the-password")),
        ("unknown user", {}, ("mallory", PASSWORD)),
    ]
    for label, extra, auth in attempts:
        response = requests.request(method, url, headers={**headers, **extra}, auth=auth, data=b"--x--\r\n", timeout=10)
        assert response.status_code == 401, (label, response.status_code)
        assert response.headers["WWW-Authenticate"] == 'Basic realm="dicomweb"', label
        assert response.json()["detail"], label
        assert ds.PatientID not in response.text


def test_annotator_cannot_store(world: World, isolated_storage: Path):
    files_before = stored_files(isolated_storage)
    new = synthetic(44)[:1]
    with pytest.raises(requests.HTTPError) as caught:
        world.client(world.annotator, "p1").store_instances(new)
    response = caught.value.response
    assert response is not None and response.status_code == 403
    assert "manager" in response.json()["detail"]
    assert not Instance.objects.filter(sop_instance_uid=new[0].SOPInstanceUID).exists()
    assert stored_files(isolated_storage) == files_before
    # Nor outside a project: there only administrators store.
    with pytest.raises(requests.HTTPError) as caught:
        world.client(world.a).store_instances(new)
    assert caught.value.response is not None and caught.value.response.status_code == 403
    assert not Instance.objects.filter(sop_instance_uid=new[0].SOPInstanceUID).exists()


def test_token_and_basic_auth_both_work(world: World):
    s1 = world.s1[0].StudyInstanceUID
    by_token = world.client(world.a)
    assert study_uids(by_token.search_for_studies()) == {s1}
    basic = requests.Session()
    basic.auth = (world.a.username, PASSWORD)
    by_basic = DICOMwebClient(url=f"{world.base}/dicomweb", session=basic)
    assert study_uids(by_basic.search_for_studies()) == {s1}
    metadata = by_basic.retrieve_study_metadata(s1)
    assert {m["00080018"]["Value"][0] for m in metadata} == {ds.SOPInstanceUID for ds in world.s1}
    stored = DICOMwebClient(url=f"{world.base}/dicomweb/projects/p1", session=basic).store_instances(synthetic(45)[:1])
    assert len(stored.ReferencedSOPSequence) == 1


def test_superuser_sees_all(world: World):
    admin = world.client(world.admin)
    everything = {world.s1[0].StudyInstanceUID, world.s2[0].StudyInstanceUID}
    assert study_uids(admin.search_for_studies()) == everything
    for ds in (world.s1[1], world.s2[1]):
        item = admin.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert item["00080018"]["Value"] == [ds.SOPInstanceUID]
    assert study_uids(world.client(world.admin, "p2").search_for_studies()) == {world.s2[0].StudyInstanceUID}
    # A study stored outside any project is visible to administrators only.
    loose = synthetic(46)[:1]
    admin.store_instances(loose)
    assert loose[0].StudyInstanceUID in study_uids(admin.search_for_studies())
    assert study_uids(world.client(world.a).search_for_studies()) == {world.s1[0].StudyInstanceUID}
