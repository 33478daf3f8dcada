"""manage.py export_audit [--project SLUG] [--output FILE]: the audit trail as CSV, oldest first.

One row per case transition, annotation revision, panel vote, agreement result and model version change,
from the append-only tables (review/audit.py, which the audit API and its CSV also use).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from review.audit import AuditFilters, audit_page, write_csv


class Command(BaseCommand):
    help = "Export the audit trail (transitions, revisions, votes, agreement results, model changes) as CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="Only this project (slug)")
        parser.add_argument("--output", help="File to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["project"]:
            projects = list(Project.objects.filter(slug=options["project"]))
            if not projects:
                raise CommandError(f"No project {options['project']!r}")
        else:
            projects = list(Project.objects.order_by("slug"))
        rows = [row for project in projects for row in audit_page(project, AuditFilters(), newest_first=False).rows]
        if len(projects) > 1:
            rows.sort(key=lambda row: row["time"])
        if options["output"]:
            with open(options["output"], "w", newline="", encoding="utf-8") as handle:
                write_csv(handle, rows)
            self.stderr.write(f"{len(rows)} audit rows written to {options['output']}")
        else:
            write_csv(self.stdout if self.stdout else sys.stdout, rows)
