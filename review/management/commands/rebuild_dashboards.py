"""Recompute the dashboards' per-case summaries of one project or all (after bulk imports or direct changes)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from review.dashboards import case_summaries_refresh


class Command(BaseCommand):
    help = "Recompute the dashboards' per-case summaries (review.CaseSummary) of a project, or of every project."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="project slug (default: every project)")

    def handle(self, *args: Any, **options: Any) -> None:
        projects = Project.objects.order_by("slug")
        if options["project"]:
            projects = projects.filter(slug=options["project"])
            if not projects.exists():
                raise CommandError(f"No project {options['project']!r}")
        for project in projects:
            count = case_summaries_refresh(project=project)
            self.stdout.write(f"{project.slug}: {count} case summaries rebuilt")
