"""The Django admin works for every model: its list and add pages open for a superuser."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

APP_LABELS = {"imaging", "annotation", "review"}


@pytest.mark.django_db
def test_every_project_model_is_registered_and_its_admin_pages_open() -> None:
    from django.apps import apps

    models = [m for m in apps.get_models() if m._meta.app_label in APP_LABELS]
    unregistered = [m.__name__ for m in models if m not in admin.site._registry]
    assert unregistered == []
    superuser = User.objects.create_superuser("root", "root@example.org", "pw-for-tests-123")
    client = Client()
    client.force_login(superuser)
    for model in models:
        opts = model._meta
        changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert changelist.status_code == 200, f"{opts.label} changelist: {changelist.status_code}"
        add = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        assert add.status_code in (200, 403), f"{opts.label} add page: {add.status_code}"
