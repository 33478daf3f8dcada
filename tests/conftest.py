"""Shared fixtures. Tests run against the real PostgreSQL, Redis and Orthanc that scripts/test.sh starts;
a test that needs one of them fails (never skips) when it is not there."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pydicom
import pytest
from django.contrib.auth.models import User
from django.test import Client
from pydicom.data import get_testdata_file
from rest_framework.authtoken.models import Token

from annotation.models import Project, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the suite with `bash scripts/test.sh`, which starts the real services")
    return value


@pytest.fixture(autouse=True)
def isolated_storage(settings: Any, tmp_path: Path) -> Path:
    """Each test gets its own empty DICOM store, so 'nothing stored' can be checked on disk."""
    location = tmp_path / "storage"
    location.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    settings.MEDIA_ROOT = location
    return location


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings: Any) -> None:
    """PBKDF2 costs ~0.3 s per user created and per basic-auth request; the tests are not about it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _close_server_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Persistent connections (CONN_MAX_AGE) of live_server's request threads would outlive the test
    and keep the test database from being dropped; close them at the end of each request instead."""
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 0)


@pytest.fixture(autouse=True)
def _no_nagle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test server writes headers and body separately; with Nagle's algorithm each response then
    waits for the client's delayed ACK (~40 ms). Test speed only."""
    from django.core.servers.basehttp import WSGIRequestHandler

    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    """The test client runs requests in the test's thread, where a request's language (Accept-Language, the
    user's saved one) stays active afterwards: each test starts and ends in the default language, so that
    messages asserted in English are not translated by whatever test ran before."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_access_policy() -> Iterator[None]:
    from imaging.access import access_policy

    access_policy.cache_clear()
    yield
    access_policy.cache_clear()


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def testdata_bytes(name: str) -> bytes:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not shipped in pydicom's wheel"
    return Path(str(path)).read_bytes()


def dataset_bytes(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture
def project(db: None) -> Project:
    return cast(Project, ProjectFactory(slug="chest", name="Chest CT"))


@pytest.fixture
def make_member(db: None) -> Callable[..., User]:
    def make(project: Project, role: str = Role.MANAGER, username: str | None = None) -> User:
        user = cast(User, UserFactory(username=username) if username else UserFactory())
        MembershipFactory(project=project, user=user, role=role)
        return user

    return make


@pytest.fixture
def manager(project: Project, make_member: Callable[..., User]) -> User:
    return make_member(project, Role.MANAGER, "manager")


@pytest.fixture
def manager_client(manager: User) -> Client:
    client = Client()
    client.force_login(manager)
    return client


@pytest.fixture
def token_for() -> Callable[[User], str]:
    def make(user: User) -> str:
        token, _ = Token.objects.get_or_create(user=user)
        return token.key

    return make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """What dciodvfy warned about in the objects the platform wrote (its errors fail the tests)."""
    from tests.dciodvfy import WARNINGS_SEEN

    if WARNINGS_SEEN:
        terminalreporter.section("dciodvfy warnings (objects written by the platform)")
        for line, times in sorted(WARNINGS_SEEN.items()):
            terminalreporter.write_line(f"{times:4d} x {line}")
