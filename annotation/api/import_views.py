"""Start an import of studies from an upstream PACS into a project; the job reports progress."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for, require_manager
from annotation.imports import import_job_create, pacs_search, pacs_sources
from annotation.selectors import is_manager
from annotation.uploads import upload_job_create
from config.errors import PayloadTooLargeError
from config.types import User
from imaging.models import DicomSource
from jobs.api.serializers import JobOutput


class ImportInput(serializers.Serializer[dict[str, Any]]):
    source: serializers.SlugRelatedField[DicomSource] = serializers.SlugRelatedField(  # type: ignore[assignment]
        slug_field="name", queryset=DicomSource.objects.all()
    )
    study_uids = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False)
    mode = serializers.ChoiceField(choices=["copy", "index"], default="copy")


class ProjectImportView(APIView):
    @extend_schema(request=ImportInput, responses={202: JobOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        if not is_manager(request.user, project):
            raise PermissionDenied(
                _("Only a manager of project %(project)s may import studies.") % {"project": project.slug}
            )
        data = ImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = import_job_create(
            project=project,
            source=data.validated_data["source"],
            study_uids=data.validated_data["study_uids"],
            mode=data.validated_data["mode"],
            created_by=cast(User, request.user),
        )
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class ProjectUploadInput(serializers.Serializer[dict[str, Any]]):
    files = serializers.ListField(
        child=serializers.FileField(), help_text="DICOM files and zip archives of them (a folder: its files)"
    )


class ProjectUploadView(APIView):
    """Upload DICOM files, folders or zips into the project's own store as an ingest job (managers). The files
    are checked (zips whole, before anything is kept) and staged; the job's result reports each file: stored,
    duplicate or rejected with the reason. Follow it at jobs/<id>/."""

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": ProjectUploadInput}, responses={202: JobOutput})
    def post(self, request: Request, slug: str) -> Response:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.IMAGING_MAX_UPLOAD_BYTES:
            raise PayloadTooLargeError(
                _("The upload of %(size)s bytes is over the limit of %(limit)s bytes: upload it in parts.")
                % {"size": length, "limit": settings.IMAGING_MAX_UPLOAD_BYTES}
            )
        project = project_for(request, slug)  # members only (404), then managers only (403)
        require_manager(request, project)
        job = upload_job_create(
            project=project, uploads=request.FILES.getlist("files"), created_by=cast(User, request.user)
        )
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class PacsSourcesOutput(serializers.Serializer[dict[str, Any]]):
    sources = serializers.ListField(child=serializers.CharField(), help_text="Searchable PACS, the project's first")


class PacsSourcesView(APIView):
    """The PACS this project may search and import from (managers)."""

    @extend_schema(responses=PacsSourcesOutput)
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        return Response({"sources": [source.name for source in pacs_sources(project)]})


class PacsStudyOutput(serializers.Serializer[dict[str, Any]]):
    study_instance_uid = serializers.CharField()
    patient_id = serializers.CharField()
    patient_name = serializers.CharField()
    study_date = serializers.CharField()
    modalities = serializers.ListField(child=serializers.CharField())
    accession_number = serializers.CharField()
    study_description = serializers.CharField()
    series_count = serializers.IntegerField()
    instance_count = serializers.IntegerField()
    in_project = serializers.BooleanField(help_text="The project has this study already")


class PacsSearchOutput(serializers.Serializer[dict[str, Any]]):
    source = serializers.CharField()  # type: ignore[assignment]
    studies = PacsStudyOutput(many=True)


class PacsSearchInput(serializers.Serializer[dict[str, Any]]):
    source = serializers.SlugRelatedField(  # type: ignore[assignment]
        slug_field="name", queryset=DicomSource.objects.all(), required=False
    )
    patient = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    date_from = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)
    date_to = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)
    modality = serializers.CharField(required=False, allow_blank=True, default="", max_length=16)
    accession = serializers.CharField(required=False, allow_blank=True, default="", max_length=16)


class PacsSearchView(APIView):
    """Search the project's PACS (QIDO-RS) by patient (ID, or part of the name), study date range (YYYYMMDD),
    modality and accession number; import the studies picked with imports/ (managers)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(name, str, required=False)
            for name in ("source", "patient", "date_from", "date_to", "modality", "accession")
        ],
        responses=PacsSearchOutput,
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        data = PacsSearchInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        source, studies = pacs_search(project=project, user=cast(User, request.user), **data.validated_data)
        return Response(PacsSearchOutput({"source": source.name, "studies": studies}).data)
