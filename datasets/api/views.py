"""Thin views over the export services: managers of the project only."""

from __future__ import annotations

from typing import cast

from django.core.files.storage import default_storage
from django.http import FileResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for
from annotation.models import Project
from annotation.selectors import is_manager
from config.errors import ConflictError, NotFoundError, PermissionDeniedError
from config.types import User
from datasets import services
from datasets.api import serializers as s
from datasets.label_import import labels_import_dicom, labels_import_from_pacs
from datasets.models import Export
from datasets.selectors import export_for, exports_of


def _managed_project(request: Request, slug: str) -> Project:
    project = project_for(request, slug)
    if not is_manager(request.user, project):
        raise PermissionDeniedError(
            _("Only a manager of project %(project)s may export its data") % {"project": repr(project.slug)}
        )
    return project


def _export(request: Request, slug: str, export_id: int) -> Export:
    export = export_for(_managed_project(request, slug), export_id)
    if export is None:
        raise NotFoundError(
            _("Project %(project)s has no export %(export)s") % {"project": repr(slug), "export": export_id}
        )
    return export


class ExportListView(APIView):
    @extend_schema(responses=s.ExportOutput(many=True))
    def get(self, request: Request, slug: str) -> Response:
        exports = exports_of(_managed_project(request, slug))
        return Response(s.ExportOutput(exports, many=True).data)

    @extend_schema(request=s.ExportCreateInput, responses={202: s.ExportDetailOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = _managed_project(request, slug)
        serializer = s.ExportCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        export = services.export_create(
            project=project,
            created_by=cast(User, request.user),
            formats=list(data["formats"]),
            filters=dict(data.get("filters") or {}),
            split=dict(data.get("split") or {}),
            deidentify=data["deidentify"],
        )
        return Response(s.ExportDetailOutput(export).data, status=status.HTTP_202_ACCEPTED)


class LabelImportView(APIView):
    """Upload one DICOM SEG, RTSTRUCT or SR (TID 1500) as the "imported" reading of the case whose series it
    references, or ("use": "gold_reference") as that case's gold reference."""

    parser_classes = [MultiPartParser]

    @extend_schema(request=s.LabelImportInput, responses={201: s.LabelImportOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        if not is_manager(request.user, project):
            raise PermissionDeniedError(
                _("Only a manager of project %(project)s may import labels") % {"project": repr(project.slug)}
            )
        serializer = s.LabelImportInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        revision = labels_import_dicom(
            project=project,
            data=upload.read(),
            imported_by=cast(User, request.user),
            mask_label=serializer.validated_data.get("mask_label", ""),
            use=serializer.validated_data["use"],
        )
        return Response(s.LabelImportOutput(revision.label_import).data, status=status.HTTP_201_CREATED)


class LabelImportFromPacsView(APIView):
    """Import one DICOM SEG, RTSTRUCT or SR (TID 1500) from a PACS the project may take data from, by its UIDs."""

    @extend_schema(request=s.LabelImportFromPacsInput, responses={201: s.LabelImportOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        if not is_manager(request.user, project):
            raise PermissionDeniedError(
                _("Only a manager of project %(project)s may import labels") % {"project": repr(project.slug)}
            )
        serializer = s.LabelImportFromPacsInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        revision = labels_import_from_pacs(
            project=project,
            source=data["source"],
            study_instance_uid=data["study_instance_uid"],
            series_instance_uid=data["series_instance_uid"],
            sop_instance_uid=data["sop_instance_uid"],
            imported_by=cast(User, request.user),
            mask_label=data.get("mask_label", ""),
            use=data["use"],
        )
        return Response(s.LabelImportOutput(revision.label_import).data, status=status.HTTP_201_CREATED)


class ExportDetailView(APIView):
    @extend_schema(responses=s.ExportDetailOutput)
    def get(self, request: Request, slug: str, export_id: int) -> Response:
        return Response(s.ExportDetailOutput(_export(request, slug, export_id)).data)


class ExportDownloadView(APIView):
    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request: Request, slug: str, export_id: int) -> FileResponse:
        export = _export(request, slug, export_id)
        if not export.file:
            raise ConflictError(
                _("Export %(export)s is not built yet (job %(job)s)") % {"export": export_id, "job": export.job_id}
            )
        response = FileResponse(
            default_storage.open(export.file, "rb"),
            as_attachment=True,
            filename=f"{export.project.slug}-v{export.version}.zip",
            content_type="application/zip",
        )
        response["X-Content-SHA256"] = export.sha256
        return response
