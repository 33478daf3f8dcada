"""The inference models are in the admin; registry rows and audit logs are read-only there."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from inference.models import ModelVersion


@pytest.mark.django_db
def test_inference_admin_pages_open_and_the_registry_is_read_only(untrained: ModelVersion) -> None:
    superuser = User.objects.create_superuser("root", "root@example.org", "pw-for-tests-123")
    client = Client()
    client.force_login(superuser)
    for model in apps.get_app_config("inference").get_models():
        assert model in admin.site._registry, model.__name__
        opts = model._meta
        page = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert page.status_code == 200, opts.label
    change = client.get(reverse("admin:inference_modelversion_change", args=[untrained.pk]))
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert client.get(reverse("admin:inference_modelversion_add")).status_code == 403
