"""GET/PATCH /api/v1/me/: who you are, your projects with your roles, and the language saved per user,
which the middleware then uses for Django's pages and the API's messages."""

from __future__ import annotations

from typing import cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import Profile
from annotation.models import Project, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member() -> User:
    user = cast(User, UserFactory(username="reader1"))
    first = cast(Project, ProjectFactory(slug="alpha", name="Alpha"))
    second = cast(Project, ProjectFactory(slug="beta", name="Beta"))
    MembershipFactory(project=first, user=user, role=Role.ANNOTATOR)
    MembershipFactory(project=first, user=user, role=Role.REVIEWER)
    MembershipFactory(project=second, user=user, role=Role.MANAGER)
    ProjectFactory(slug="gamma", name="Gamma")  # not a member: never listed
    return user


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_me_lists_projects_with_roles_and_nothing_else(member: User) -> None:
    body = _client(member).get("/api/v1/me/").json()
    assert body["username"] == "reader1"
    assert body["is_staff"] is False
    assert body["language"] == "en" and body["language_saved"] is False
    assert body["projects"] == [
        {"slug": "alpha", "name": "Alpha", "roles": ["annotator", "reviewer"], "ohif_url": None},
        {"slug": "beta", "name": "Beta", "roles": ["manager"], "ohif_url": None},
    ]


def test_me_needs_sign_in() -> None:
    response = Client().get("/api/v1/me/")
    assert response.status_code in (401, 403)
    assert "username" not in response.json()


def test_language_is_saved_per_user_and_translates_pages_and_api_errors(member: User) -> None:
    client = _client(member)
    response = client.patch("/api/v1/me/", {"language": "zh-hans"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["language"] == "zh-hans" and response.json()["language_saved"] is True
    assert Profile.objects.get(user=member).language == "zh-hans"
    # DRF's own messages come in Chinese now, without any Accept-Language header.
    bad = client.patch("/api/v1/me/", {"language": ""}, content_type="application/json")
    assert bad.status_code == 400
    assert "language" in bad.json()
    assert "不是合法选项" in str(bad.json()) or "有效" in str(bad.json()), bad.json()
    assert client.get("/api/v1/me/").headers["Content-Language"] == "zh-hans"
    # Another user keeps English.
    other = _client(cast(User, UserFactory(username="other")))
    assert other.get("/api/v1/me/").json()["language"] == "en"


def test_unknown_language_is_refused_and_nothing_saved(member: User) -> None:
    response = _client(member).patch("/api/v1/me/", {"language": "xx"}, content_type="application/json")
    assert response.status_code == 400
    assert "language" in response.json()
    assert not Profile.objects.filter(user=member).exists()


def test_app_routes_serve_the_app_and_anonymous_users_are_sent_to_sign_in(member: User) -> None:
    anonymous = Client().get("/projects/alpha")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    client = _client(member)
    for path in ("/", "/projects/alpha", "/cases/12/read", "/jobs"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert b'<div id="root">' in page.content, path
    assert client.get("/api/v1/nothing-here/").status_code == 404  # the API is not swallowed by the app
    assert client.get("/healthz").json() == {"status": "ok"}


def test_sign_in_page_follows_saved_language(member: User) -> None:
    Profile.objects.create(user=member, language="zh-hans")
    client = _client(member)
    page = client.get("/accounts/login/")
    assert "登录" in page.content.decode()
