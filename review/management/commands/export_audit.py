"""manage.py export_audit [--project SLUG] [--output FILE]: the audit trail as CSV, oldest first.

One row per case transition, annotation revision, panel vote and agreement result, from the
append-only tables.
"""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import AnnotationRevision, Project
from review.models import AgreementResult, CaseEvent, PanelVote

COLUMNS = ["time", "kind", "project", "case", "actor", "from_status", "to_status", "detail"]


def _rows(project: Project | None) -> list[dict[str, Any]]:
    def scoped(queryset: Any, case_path: str) -> Any:
        return queryset.filter(**{f"{case_path}__project": project}) if project is not None else queryset

    rows: list[dict[str, Any]] = []
    for event in scoped(CaseEvent.objects.select_related("actor", "case__project"), "case"):
        rows.append(
            {
                "time": event.created_at,
                "kind": "case_transition",
                "project": event.case.project.slug,
                "case": event.case_id,
                "actor": event.actor.username if event.actor else "",
                "from_status": event.from_status,
                "to_status": event.to_status,
                "detail": json.dumps({"reason": event.reason, "metrics": event.metrics}, sort_keys=True),
            }
        )
    revisions = scoped(
        AnnotationRevision.objects.select_related("author", "annotation__case__project", "schema"), "annotation__case"
    )
    for revision in revisions:
        annotation = revision.annotation
        rows.append(
            {
                "time": revision.created_at,
                "kind": "annotation_revision",
                "project": annotation.case.project.slug,
                "case": annotation.case_id,
                "actor": revision.author.username if revision.author else revision.model_version or annotation.role,
                "from_status": "",
                "to_status": "",
                "detail": json.dumps(
                    {
                        "annotation": annotation.pk,
                        "role": annotation.role,
                        "revision": revision.number,
                        "parent": revision.parent_id,
                        "origin": revision.origin,
                        "schema_version": revision.schema.version,
                        "submission": revision.is_submission,
                    },
                    sort_keys=True,
                ),
            }
        )
    for vote in scoped(PanelVote.objects.select_related("expert", "case__project"), "case"):
        rows.append(
            {
                "time": vote.created_at,
                "kind": "panel_vote",
                "project": vote.case.project.slug,
                "case": vote.case_id,
                "actor": vote.expert.username,
                "from_status": "",
                "to_status": "",
                "detail": json.dumps(
                    {"voted_for": vote.voted_for_id, "corrected": vote.corrected_id, "rationale": vote.rationale},
                    sort_keys=True,
                ),
            }
        )
    for result in scoped(AgreementResult.objects.select_related("case__project"), "case"):
        rows.append(
            {
                "time": result.created_at,
                "kind": "agreement",
                "project": result.case.project.slug,
                "case": result.case_id,
                "actor": "",
                "from_status": "",
                "to_status": "",
                "detail": json.dumps({"agreed": result.agreed, "reasons": result.reasons}, sort_keys=True),
            }
        )
    rows.sort(key=lambda row: (row["time"], row["kind"], row["case"]))
    for row in rows:
        row["time"] = row["time"].isoformat()
    return rows


class Command(BaseCommand):
    help = "Export the audit trail (transitions, revisions, votes, agreement results) as CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="Only this project (slug)")
        parser.add_argument("--output", help="File to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        project = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"No project {options['project']!r}")
        rows = _rows(project)
        if options["output"]:
            with open(options["output"], "w", newline="", encoding="utf-8") as handle:
                self._write(handle, rows)
            self.stderr.write(f"{len(rows)} audit rows written to {options['output']}")
        else:
            self._write(self.stdout if self.stdout else sys.stdout, rows)

    @staticmethod
    def _write(handle: Any, rows: list[dict[str, Any]]) -> None:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
