"""The audit trail: append-only at the database level, and exported as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from annotation.models import AnnotationRevision, Case, CaseStatus, Project, ReadingRole
from annotation.services import annotation_save, assignment_claim_next
from review.models import CaseEvent
from review.services import reading_submit
from tests.annotation.conftest import chest_values

pytestmark = pytest.mark.django_db


def raw_sql(statement: str, pk: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, [pk])


def submit_first_reading(project: Project, reader: User) -> Case:
    assignment = assignment_claim_next(project=project, user=reader, role=ReadingRole.FIRST_READER)
    assert assignment is not None
    case = assignment.case
    revision = annotation_save(
        case=case, reader=reader, role=ReadingRole.FIRST_READER, base_revision=0, values=chest_values(case)
    )
    reading_submit(case=case, reader=reader, role=ReadingRole.FIRST_READER, base_revision=1, values=chest_values(case))
    assert revision.number == 1
    case.refresh_from_db()
    return case


def test_case_events_and_revisions_refuse_update_and_delete_in_the_database(
    reading_project: Project, users: dict[str, User]
) -> None:
    case = submit_first_reading(reading_project, users["annotator"])
    assert case.status == CaseStatus.AWAITING_CROSS_VERIFICATION
    event = CaseEvent.objects.get(case=case)
    revision = AnnotationRevision.objects.filter(annotation__case=case).first()
    assert revision is not None
    for attempt in (
        lambda: CaseEvent.objects.filter(pk=event.pk).update(reason="rewritten"),
        lambda: CaseEvent.objects.filter(pk=event.pk).delete(),
        lambda: AnnotationRevision.objects.filter(pk=revision.pk).update(items=[]),
        # Raw SQL: the database itself refuses, whatever the ORM would have checked first.
        lambda: raw_sql("DELETE FROM annotation_annotationrevision WHERE id = %s", revision.pk),
        lambda: raw_sql("UPDATE review_caseevent SET to_status = 'agreed' WHERE id = %s", event.pk),
    ):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            attempt()
    event.refresh_from_db()
    revision.refresh_from_db()
    assert event.reason.startswith("first reading submitted")
    assert revision.items != []


def test_export_audit_writes_every_transition_and_revision_as_csv(
    reading_project: Project, users: dict[str, User], tmp_path: Path
) -> None:
    case = submit_first_reading(reading_project, users["annotator"])
    out = tmp_path / "audit.csv"
    call_command("export_audit", project=reading_project.slug, output=str(out), stderr=io.StringIO())
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    kinds = [row["kind"] for row in rows]
    assert kinds.count("annotation_revision") == 2
    assert kinds.count("case_transition") == 1
    transition = next(row for row in rows if row["kind"] == "case_transition")
    assert (transition["case"], transition["actor"]) == (str(case.pk), users["annotator"].username)
    assert (transition["from_status"], transition["to_status"]) == (
        "awaiting_first_read",
        "awaiting_cross_verification",
    )
    assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)

    with pytest.raises(CommandError, match="No project 'nope'"):
        call_command("export_audit", project="nope")
