"""Start automatic training where a project's setting asks for it (for cron or a periodic task)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from inference.models import InferenceSettings
from inference.services import autotrain_check


class Command(BaseCommand):
    help = "Start training in every project with enough new adjudicated cases (auto_train_every)."

    def handle(self, *args: Any, **options: Any) -> None:
        for config in InferenceSettings.objects.filter(auto_train_every__gt=0).select_related("project"):
            job = autotrain_check(project=config.project)
            if job is not None:
                self.stdout.write(f"{config.project.slug}: training job {job.pk}")
