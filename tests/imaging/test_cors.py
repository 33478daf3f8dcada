"""CORS for web viewers on another origin (OHIF, ...): off unless origins are listed; preflights answered
without credentials; only listed origins may read DICOMweb and API responses, with credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Project

VIEWER = "https://viewer.example.org"
STRANGER = "https://evil.example.net"
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
)


@pytest.fixture
def viewer_listed(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [VIEWER, "http://127.0.0.1:3000"]


def preflight(path: str, origin: str, headers: str = "authorization, accept, x-request-id") -> Any:
    return Client().options(
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": headers},
    )


@pytest.mark.parametrize("path", ["/dicomweb/studies", "/dicomweb/projects/chest/studies", "/api/v1/projects/"])
def test_listed_origin_gets_a_preflight_answer_without_credentials(viewer_listed: None, db: None, path: str):
    response = preflight(path, VIEWER)
    assert 200 <= response.status_code < 300, response.content
    assert response["Access-Control-Allow-Origin"] == VIEWER
    assert response["Access-Control-Allow-Credentials"] == "true"
    allowed_headers = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "accept", "x-request-id"} <= allowed_headers
    assert "GET" in response["Access-Control-Allow-Methods"]
    assert "WWW-Authenticate" not in response


def test_unlisted_origin_gets_no_allow_origin(viewer_listed: None, db: None):
    response = preflight("/dicomweb/studies", STRANGER)
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response
    # The same host on another scheme or port is another origin.
    for origin in ("http://viewer.example.org", "https://viewer.example.org:8443", "http://127.0.0.1:3001"):
        assert "Access-Control-Allow-Origin" not in preflight("/dicomweb/studies", origin), origin


@pytest.mark.parametrize("path", ["/dicomweb/studies", "/api/v1/projects/"])
def test_credentialed_answer_is_readable_by_a_listed_origin_only(
    viewer_listed: None, manager: User, token_for: Callable[[User], str], path: str
):
    auth = {"Authorization": f"Token {token_for(manager)}"}
    listed = Client().get(path, headers={**auth, "Origin": VIEWER})
    assert listed.status_code == 200, listed.content
    assert listed["Access-Control-Allow-Origin"] == VIEWER
    assert listed["Access-Control-Allow-Credentials"] == "true"
    exposed = {h.strip().lower() for h in listed["Access-Control-Expose-Headers"].split(",")}
    assert {"warning", "x-request-id"} <= exposed
    assert "origin" in listed["Vary"].lower()

    # The server answers (the request was the client's to make), but without Access-Control-Allow-Origin the
    # browser keeps the body from the page.
    stranger = Client().get(path, headers={**auth, "Origin": STRANGER})
    assert stranger.status_code == 200
    assert not any(name in stranger for name in CORS_HEADERS)


def test_session_cookie_request_from_listed_origin_is_readable(viewer_listed: None, manager_client: Client):
    response = manager_client.get("/dicomweb/studies", headers={"Origin": VIEWER})
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == VIEWER
    assert response["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/", "/healthz"])
def test_pages_outside_dicomweb_and_the_api_answer_no_cors(viewer_listed: None, db: None, path: str):
    response = Client().get(path, headers={"Origin": VIEWER})
    assert not any(name in response for name in CORS_HEADERS)


def test_without_listed_origins_cors_is_off(settings: Any, manager: User, token_for: Callable[[User], str]):
    settings.CORS_ALLOWED_ORIGINS = []
    response = preflight("/dicomweb/studies", VIEWER)
    # Not answered as a preflight: the view refuses it as it refuses any request without credentials.
    assert response.status_code == 401
    assert not any(name in response for name in CORS_HEADERS)
    answer = Client().get(
        "/dicomweb/studies", headers={"Authorization": f"Token {token_for(manager)}", "Origin": VIEWER}
    )
    assert answer.status_code == 200
    assert not any(name in answer for name in CORS_HEADERS)
    assert "origin" not in answer.get("Vary", "").lower()


def test_project_scope_preflight_needs_no_project_access(viewer_listed: None, project: Project):
    # A preflight says nothing about the project: it is answered the same for any slug, known or not.
    known = preflight(f"/dicomweb/projects/{project.slug}/studies", VIEWER)
    unknown = preflight("/dicomweb/projects/no-such-project/studies", VIEWER)
    assert known.status_code == unknown.status_code == 200
    assert known["Access-Control-Allow-Origin"] == unknown["Access-Control-Allow-Origin"] == VIEWER
