"""Start an import of studies from an upstream PACS into a project; the job reports progress."""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for
from annotation.imports import import_job_create
from annotation.selectors import is_manager
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
            raise PermissionDenied(f"Only a manager of project {project.slug!r} may import studies")
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
