"""The project's audit log for its managers: the append-only trail filtered by who, what, case and date,
as JSON pages for the screen and as CSV (review/audit.py reads it)."""

from __future__ import annotations

import io
import json
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for
from annotation.models import Project
from annotation.selectors import is_manager
from config.errors import PermissionDeniedError
from review import audit


class AuditQueryInput(serializers.Serializer[dict[str, Any]]):
    actor = serializers.CharField(required=False, allow_blank=True, max_length=150, help_text="A username")
    kind = serializers.ChoiceField(choices=audit.KINDS, required=False, allow_blank=True)
    case = serializers.IntegerField(required=False, min_value=1, allow_null=True)
    since = serializers.DateField(required=False, allow_null=True, help_text="First day (YYYY-MM-DD), inclusive")
    until = serializers.DateField(required=False, allow_null=True, help_text="Last day (YYYY-MM-DD), inclusive")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
    offset = serializers.IntegerField(required=False, min_value=0, default=0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since > until:
            raise serializers.ValidationError({"until": _("The last day is before the first day.")})
        return attrs

    def filters(self) -> audit.AuditFilters:
        data = self.validated_data
        kind = data.get("kind") or ""
        return audit.AuditFilters(
            actor=(data.get("actor") or "").strip(),
            kinds=(kind,) if kind else (),
            case_id=data.get("case"),
            since=data.get("since"),
            until=data.get("until"),
        )


class AuditRowOutput(serializers.Serializer[dict[str, Any]]):
    time = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=audit.KINDS)
    project = serializers.CharField()
    case = serializers.IntegerField(allow_null=True, help_text="None for project-wide events (model changes)")
    actor = serializers.CharField(help_text="Username; the model for AI revisions; empty for server computations")
    from_status = serializers.CharField(allow_blank=True)
    to_status = serializers.CharField(allow_blank=True)
    detail = serializers.JSONField()


class AuditPageOutput(serializers.Serializer[dict[str, Any]]):
    count = serializers.IntegerField()
    results = AuditRowOutput(many=True)


QUERY = [
    OpenApiParameter("actor", str, description="Username"),
    OpenApiParameter("kind", str, enum=list(audit.KINDS)),
    OpenApiParameter("case", int),
    OpenApiParameter("since", OpenApiTypes.DATE, description="First day, inclusive"),
    OpenApiParameter("until", OpenApiTypes.DATE, description="Last day, inclusive"),
]


def _managed_project(request: Request, slug: str) -> Project:
    project = project_for(request, slug)  # 404 for non-members
    if not is_manager(request.user, project):
        raise PermissionDeniedError(
            _("Only a manager of project %(project)s may read its audit log.") % {"project": project.slug}
        )
    return project


def _query(request: Request) -> AuditQueryInput:
    query = AuditQueryInput(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query


class AuditLogView(APIView):
    """The project's audit trail, newest first: case transitions, annotation revisions, panel votes, agreement
    results and model version changes. Managers only."""

    @extend_schema(
        parameters=[*QUERY, OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=AuditPageOutput,
    )
    def get(self, request: Request, slug: str) -> Response:
        project = _managed_project(request, slug)
        query = _query(request)
        page = audit.audit_page(
            project, query.filters(), offset=query.validated_data["offset"], limit=query.validated_data["limit"]
        )
        return Response(AuditPageOutput({"count": page.count, "results": page.rows}).data)


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        # Only errors reach the renderer (the CSV itself is written by the view): say them in words.
        return (data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)).encode("utf-8")


class AuditCsvView(APIView):
    """The same rows as the audit log with the same filters, all of them, as CSV (newest first)."""

    renderer_classes = [CsvRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        # Always CSV (errors too, as text): a download link or a script asking for JSON is not refused with 406.
        return CsvRenderer(), CsvRenderer.media_type

    @extend_schema(parameters=QUERY, responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request, slug: str) -> HttpResponse:
        project = _managed_project(request, slug)
        rows = audit.audit_page(project, _query(request).filters()).rows
        out = io.StringIO()
        audit.write_csv(out, rows)
        stamp = timezone.localdate().isoformat()
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{project.slug}-{stamp}.csv"'
        return response
