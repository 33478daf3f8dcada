"""A NUL character (0x00) in text a request sends, through any door: PostgreSQL text cannot hold one, and a lookup
with it was a 500 (the API fuzz test found it in POST /api/v1/imaging/pull/'s source name). Every such request
is a 400 that says what is wrong, in the user's language, and stores nothing."""

from __future__ import annotations

from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Project
from imaging.models import DicomSource
from tests.factories import UserFactory

NUL = "a\x00b"


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(cast(User, UserFactory(is_staff=True, is_superuser=True)))
    return client


def assert_nul_refused(response: Any, language: str = "en") -> None:
    assert response.status_code == 400, response.content
    text = response.content.decode()
    # Ours, or Django's form validator's ("Null characters are not allowed.") where a form field reads the text.
    assert ("NUL" in text or "Null characters" in text) if language == "en" else ("空字符" in text), text


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_source_name_with_a_nul_character_is_refused_by_the_pull(admin_client: Client, language: str) -> None:
    before = DicomSource.objects.count()
    response = admin_client.post(
        "/api/v1/imaging/pull/",
        {"source": NUL, "study_instance_uid": "1.2.3"},
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE=language,
    )
    assert_nul_refused(response, language)
    assert DicomSource.objects.count() == before


@pytest.mark.django_db
def test_a_project_whose_source_name_has_a_nul_character_is_not_created(admin_client: Client) -> None:
    before = Project.objects.count()
    response = admin_client.post(
        "/api/v1/projects/",
        {"name": "NUL source", "slug": "nul-source", "dicom_source": NUL},
        content_type="application/json",
    )
    assert_nul_refused(response)
    assert Project.objects.count() == before


@pytest.mark.django_db
def test_a_case_filter_with_a_nul_character_is_a_400_too(
    manager_client: Client, manager: User, project: Project
) -> None:
    for query in ({"reader": NUL}, {"status": NUL}, {"priority_source": NUL}):
        assert_nul_refused(manager_client.get(f"/api/v1/projects/{project.slug}/cases/", query))
