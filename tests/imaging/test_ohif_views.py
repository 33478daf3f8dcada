"""The OHIF Viewer served by the platform (/ohif/, /ohif/projects/<slug>/): off by default, signed-in users
only, a project's viewer for its members only and bound to that project's DICOMweb root, and the published
build's files moved under /ohif/ as served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Project
from tests.factories import ProjectFactory

BUNDLE = b'(() => { __webpack_require__.p = "/"; })();'
INDEX = (
    '<!doctype html><html><head><script>window.PUBLIC_URL="/"</script>'
    '<link href="/app.bundle.css" rel="stylesheet"><script src="/app-config.js"></script>'
    '<script defer src="/app.bundle.js"></script><a href="//cdn.example/x">x</a></head></html>'
)


@pytest.fixture
def dist(tmp_path: Path, settings: Any) -> Path:
    """A stand-in for the published build's dist/, with the kinds of files the real one has."""
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "app.bundle.js").write_bytes(BUNDLE)
    (root / "app.bundle.css").write_bytes(b"@font-face{src:url(/font.woff2)}")
    (root / "codec.wasm").write_bytes(b"\0asm")
    (root / "assets" / "logo.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside the build")
    settings.OHIF_DIST_DIR = root
    settings.OHIF_ENABLED = True
    return root


def config_of(response: Any) -> dict[str, Any]:
    text = response.content.decode()
    assert text.startswith("window.config = ")
    return dict(json.loads(text.removeprefix("window.config = ").rstrip().rstrip(";")))


def test_off_by_default(manager_client: Client, project: Project, settings: Any) -> None:
    assert settings.OHIF_ENABLED is False
    for path in ("/ohif/", "/ohif/app-config.js", f"/ohif/projects/{project.slug}/"):
        assert manager_client.get(path).status_code == 404, path
    me = manager_client.get("/api/v1/me/").json()
    assert [p["ohif_url"] for p in me["projects"]] == [None]


def test_enabled_but_not_installed_says_how_to_install(manager_client: Client, settings: Any, tmp_path: Path) -> None:
    settings.OHIF_ENABLED = True
    settings.OHIF_DIST_DIR = tmp_path / "missing"
    response = manager_client.get("/ohif/")
    assert response.status_code == 503
    assert b"scripts/ohif.sh" in response.content


def test_anonymous_users_are_sent_to_sign_in(dist: Path, project: Project) -> None:
    for path in ("/ohif/", f"/ohif/projects/{project.slug}/viewer"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path


def test_index_and_files_are_served_under_the_prefix(dist: Path, manager_client: Client) -> None:
    index = manager_client.get("/ohif/viewer?StudyInstanceUIDs=1.2.3")  # a client route of OHIF
    html = index.content.decode()
    assert index.status_code == 200 and index["Content-Type"].startswith("text/html")
    assert 'window.PUBLIC_URL="/ohif/"' in html
    assert 'href="/ohif/app.bundle.css"' in html and 'src="/ohif/app.bundle.js"' in html
    assert 'src="/ohif/app-config.js"' in html
    assert 'href="//cdn.example/x"' in html  # not a path of the site: left alone
    bundle = manager_client.get("/ohif/app.bundle.js")
    assert bundle.content == b'(() => { __webpack_require__.p = "/ohif/"; })();'
    assert bundle["Content-Type"].startswith("text/javascript")
    assert manager_client.get("/ohif/app.bundle.css").content == b"@font-face{src:url(/ohif/font.woff2)}"
    wasm = manager_client.get("/ohif/codec.wasm")
    assert wasm["Content-Type"] == "application/wasm" and wasm.getvalue() == b"\0asm"
    assert manager_client.get("/ohif/assets/logo.svg").getvalue() == b"<svg/>"
    # A path out of the build is a client route like any unknown path: index.html, never the file.
    escaped = manager_client.get("/ohif/..%2Fsecret.txt")
    assert b"outside the build" not in escaped.content


def test_the_platform_config_uses_all_my_studies(dist: Path, manager_client: Client) -> None:
    config = config_of(manager_client.get("/ohif/app-config.js"))
    (source,) = config["dataSources"]
    assert config["defaultDataSourceName"] == source["sourceName"]
    assert source["configuration"]["qidoRoot"] == source["configuration"]["wadoRoot"] == "/dicomweb"
    assert config["routerBasename"] == "/ohif"


def test_a_projects_viewer_is_bound_to_its_root(dist: Path, manager_client: Client, project: Project) -> None:
    html = manager_client.get(f"/ohif/projects/{project.slug}/viewer").content.decode()
    assert f'src="/ohif/projects/{project.slug}/app-config.js"' in html
    assert 'src="/ohif/app.bundle.js"' in html
    config = config_of(manager_client.get(f"/ohif/projects/{project.slug}/app-config.js"))
    (source,) = config["dataSources"]
    assert source["configuration"]["qidoRoot"] == f"/dicomweb/projects/{project.slug}"
    assert source["configuration"]["wadoRoot"] == f"/dicomweb/projects/{project.slug}"
    assert config["routerBasename"] == f"/ohif/projects/{project.slug}"
    me = manager_client.get("/api/v1/me/").json()
    assert [p["ohif_url"] for p in me["projects"]] == [f"/ohif/projects/{project.slug}/"]


def test_a_projects_viewer_is_for_its_members_only(dist: Path, manager: User) -> None:
    other = ProjectFactory(slug="elsewhere")
    client = Client()
    client.force_login(manager)
    assert client.get(f"/ohif/projects/{other.slug}/").status_code == 404
    assert client.get(f"/ohif/projects/{other.slug}/app-config.js").status_code == 404
