"""The export models in the Django admin: pages open, and the pseudonymisation secret is never shown."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotation.models import Project
from datasets.models import ProjectKey
from datasets.services import project_key


def test_export_admin_pages_open_and_hide_the_project_key(admin: User, reading_project: Project) -> None:
    secret = project_key(reading_project)
    assert project_key(reading_project) == secret  # made once, then stable
    client = Client()
    client.force_login(admin)
    for model in ("export", "projectkey"):
        assert client.get(reverse(f"admin:datasets_{model}_changelist")).status_code == 200
    key = ProjectKey.objects.get(project=reading_project)
    page = client.get(reverse("admin:datasets_projectkey_change", args=[key.pk]))
    assert page.status_code == 200 and secret not in page.content.decode()
