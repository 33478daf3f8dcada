"""The audit trail of a project, read from the append-only tables: case transitions, annotation revisions,
panel votes, agreement results, model version changes and who was put on or moved off a reading. One reader for
the audit API, its CSV and ``manage.py export_audit``, with the filters applied in the database (who, what, which
case, which dates)."""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

from django.db.models import QuerySet
from django.utils import timezone

from annotation.models import AnnotationRevision, AssignmentEvent, Project
from config.messages import is_message, render
from inference.messages import render_model_reason
from inference.models import ModelVersionEvent
from review.models import AgreementResult, CaseEvent, PanelVote

KINDS = ("case_transition", "annotation_revision", "panel_vote", "agreement", "model_event", "assignment")
COLUMNS = ["time", "kind", "project", "case", "actor", "from_status", "to_status", "detail"]


@dataclass(frozen=True)
class AuditFilters:
    """Empty means "any". ``actor`` is a username; the dates are whole days in the server's time zone."""

    actor: str = ""
    kinds: tuple[str, ...] = ()
    case_id: int | None = None
    since: date | None = None
    until: date | None = None

    def wants(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds


@dataclass
class AuditPage:
    count: int
    rows: list[dict[str, Any]] = field(default_factory=list)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _scoped(queryset: QuerySet[Any], filters: AuditFilters, *, case: str | None, actor: str | None) -> QuerySet[Any]:
    if filters.case_id is not None:
        if case is None:
            return queryset.none()
        queryset = queryset.filter(**{f"{case}_id": filters.case_id})
    if filters.actor:
        if actor is None:
            return queryset.none()  # agreement results have no actor: the server computed them
        queryset = queryset.filter(**{f"{actor}__username": filters.actor})
    if filters.since is not None:
        queryset = queryset.filter(created_at__gte=_day_start(filters.since))
    if filters.until is not None:
        queryset = queryset.filter(created_at__lt=_day_start(filters.until + timedelta(days=1)))
    return queryset


def _querysets(project: Project, filters: AuditFilters) -> list[tuple[str, QuerySet[Any]]]:
    sources: list[tuple[str, QuerySet[Any], str | None, str | None]] = [
        (
            "case_transition",
            CaseEvent.objects.filter(case__project=project).select_related("actor"),
            "case",
            "actor",
        ),
        (
            "annotation_revision",
            AnnotationRevision.objects.filter(annotation__case__project=project).select_related(
                "author", "annotation", "schema"
            ),
            "annotation__case",
            "author",
        ),
        ("panel_vote", PanelVote.objects.filter(case__project=project).select_related("expert"), "case", "expert"),
        ("agreement", AgreementResult.objects.filter(case__project=project), "case", None),
        (
            "model_event",
            ModelVersionEvent.objects.filter(model_version__project=project).select_related("actor", "model_version"),
            None,
            "actor",
        ),
        (
            "assignment",
            AssignmentEvent.objects.filter(case__project=project).select_related("actor", "from_user", "to_user"),
            "case",
            "actor",
        ),
    ]
    return [
        (kind, _scoped(queryset, filters, case=case, actor=actor))
        for kind, queryset, case, actor in sources
        if filters.wants(kind)
    ]


def _reason(event: CaseEvent) -> str:
    """The event's reason in the reader's language: its stored message when it has one (the English text
    otherwise, as events written before reasons were messages)."""
    said = event.metrics.get("reason_message") if isinstance(event.metrics, dict) else None
    return render(said) if is_message(said) else event.reason


def _row(kind: str, obj: Any, project: Project) -> dict[str, Any]:
    base = {"time": obj.created_at, "kind": kind, "project": project.slug, "from_status": "", "to_status": ""}
    if kind == "case_transition":
        return {
            **base,
            "case": obj.case_id,
            "actor": obj.actor.username if obj.actor else "",
            "from_status": obj.from_status,
            "to_status": obj.to_status,
            "detail": {"reason": _reason(obj), "metrics": obj.metrics},
        }
    if kind == "annotation_revision":
        annotation = obj.annotation
        return {
            **base,
            "case": annotation.case_id,
            "actor": obj.author.username if obj.author else obj.model_version or annotation.role,
            "detail": {
                "annotation": annotation.pk,
                "role": annotation.role,
                "revision": obj.number,
                "parent": obj.parent_id,
                "origin": obj.origin,
                "schema_version": obj.schema.version,
                "submission": obj.is_submission,
            },
        }
    if kind == "panel_vote":
        return {
            **base,
            "case": obj.case_id,
            "actor": obj.expert.username,
            "detail": {"voted_for": obj.voted_for_id, "corrected": obj.corrected_id, "rationale": obj.rationale},
        }
    if kind == "agreement":
        return {**base, "case": obj.case_id, "actor": "", "detail": {"agreed": obj.agreed, "reasons": obj.reasons}}
    if kind == "assignment":
        return {
            **base,
            "case": obj.case_id,
            "actor": obj.actor.username if obj.actor else "",
            "detail": {
                "action": obj.action,
                "role": obj.role,
                "slot": obj.slot,
                "from_reader": obj.from_user.username if obj.from_user else "",
                "to_reader": obj.to_user.username,
                "how": obj.how,
            },
        }
    return {
        **base,
        "case": None,
        "actor": obj.actor.username if obj.actor else "",
        "from_status": obj.from_status,
        "to_status": obj.to_status,
        "detail": {
            "model_version": obj.model_version.number,
            "reason": render_model_reason(obj.reason),
            "metrics": obj.metrics,
        },
    }


def _rows_of(kind: str, queryset: QuerySet[Any], project: Project) -> Iterator[dict[str, Any]]:
    for obj in queryset:
        yield _row(kind, obj, project)


def _sort_key(row: dict[str, Any]) -> tuple[datetime, int, int]:
    return (row["time"], KINDS.index(row["kind"]), row["case"] or 0)


def audit_page(
    project: Project, filters: AuditFilters, *, offset: int = 0, limit: int | None = None, newest_first: bool = True
) -> AuditPage:
    """The project's audit rows that match, in time order. With a limit, each table gives only the first
    offset + limit of its rows (in the same order), so a page never loads the whole trail."""
    count = 0
    streams: list[Iterable[dict[str, Any]]] = []
    order = ["-created_at", "-pk"] if newest_first else ["created_at", "pk"]
    for kind, queryset in _querysets(project, filters):
        count += queryset.count()
        ordered = queryset.order_by(*order)
        if limit is not None:
            ordered = ordered[: offset + limit]
        streams.append(_rows_of(kind, ordered, project))
    merged: Iterator[dict[str, Any]] = heapq.merge(*streams, key=_sort_key, reverse=newest_first)
    rows = list(merged)
    end = None if limit is None else offset + limit
    return AuditPage(count=count, rows=rows[offset:end])


def csv_cells(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the CSV writes it: ISO time, JSON detail, empty case for project-wide events."""
    return {
        **row,
        "time": row["time"].isoformat(),
        "case": "" if row["case"] is None else row["case"],
        "detail": json.dumps(row["detail"], sort_keys=True, ensure_ascii=False),
    }


class _Writable(Protocol):
    def write(self, text: str, /) -> object: ...


def write_csv(handle: _Writable, rows: Iterable[dict[str, Any]]) -> None:
    writer = csv.DictWriter(handle, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(csv_cells(row) for row in rows)
