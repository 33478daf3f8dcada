from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApplicationError, ConflictError, NotFoundError, PayloadTooLargeError
from imaging.access import access_policy
from imaging.api.serializers import (
    DicomSourceOutput,
    IngestReportOutput,
    PullInput,
    SeriesOutput,
    StudyDetailOutput,
    StudyOutput,
    UploadInput,
)
from imaging.models import DicomSource, Series, Study
from imaging.selectors import series_visible_to, study_detail_queryset, study_list, with_series
from imaging.services.ingest import IncomingFile, iter_zip_files, open_zip_checked
from imaging.services.pull import study_index_upstream, study_pull
from imaging.services.store import files_store


class StudyListView(generics.ListAPIView[Study]):
    """Studies you can see; ``?project=<slug>`` narrows to one project."""

    serializer_class = StudyOutput
    filterset_fields = ["patient_id", "study_date", "accession_number", "modalities_in_study"]
    ordering_fields = ["study_date", "created_at", "patient_id"]

    def get_queryset(self) -> Any:
        return study_list(self.request.user, self.request.query_params.get("project")).select_related("source")


class StudyDetailView(generics.RetrieveAPIView[Study]):
    """A study you can see; ``?project=<slug>`` reads that project's copy when it is in several of yours."""

    serializer_class = StudyDetailOutput
    lookup_field = "study_instance_uid"

    def get_queryset(self) -> Any:
        project = self.request.query_params.get("project")
        return study_detail_queryset(self.request.user, project).select_related("source")


class SeriesDetailView(generics.RetrieveAPIView[Series]):
    """A series with its geometry and the data-quality checks run at ingest; ``?project=`` as for studies."""

    serializer_class = SeriesOutput
    lookup_field = "series_instance_uid"

    def get_queryset(self) -> Any:
        return series_visible_to(self.request.user, self.request.query_params.get("project"))

    def get_object(self) -> Series:
        # A series UID may be in two of the caller's stores (under two study UIDs): the oldest answers.
        series = self.get_queryset().filter(series_instance_uid=self.kwargs["series_instance_uid"]).first()
        if series is None:
            raise NotFoundError("No series with that UID that you can access")
        return series


class UploadView(APIView):
    """Upload DICOM files or zip archives of them. Each file is reported: stored, duplicate, or rejected
    with the reason. 201 when something was stored; 400/409/413 when every file was refused."""

    parser_classes = [MultiPartParser]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=UploadInput, responses={201: IngestReportOutput, 200: IngestReportOutput})
    def post(self, request: Request) -> Response:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.IMAGING_MAX_UPLOAD_BYTES:
            raise PayloadTooLargeError(
                f"Upload of {length} bytes is over the limit of {settings.IMAGING_MAX_UPLOAD_BYTES} bytes"
            )
        target = access_policy().store_target(request.user, request.POST.get("project") or None)
        uploads = request.FILES.getlist("files")
        if not uploads:
            raise ApplicationError(
                "No files: send one or more DICOM files or zips in the 'files' field", code="no_files"
            )
        # Open and check every zip before anything is stored, so that a bad archive stores nothing.
        incoming: list[Any] = []
        for upload in uploads:
            head = upload.read(4)
            upload.seek(0)
            if head.startswith(b"PK\x03\x04") or (upload.name or "").lower().endswith(".zip"):
                incoming.append(open_zip_checked(upload))
            else:
                incoming.append(IncomingFile(name=upload.name or "file", data=upload.read()))

        def files() -> Any:
            for item in incoming:
                if isinstance(item, IncomingFile):
                    yield item
                else:
                    yield from iter_zip_files(item)

        report = files_store(files(), store=target.store, source=target.source)
        body = report.as_dict()
        status_code = report.http_status()
        if status_code >= 400:
            body["detail"] = report.rejection_summary()
        return Response(body, status=status_code)


class PullView(APIView):
    """Bring a study in from an upstream PACS configured by an administrator."""

    @extend_schema(request=PullInput, responses={201: StudyDetailOutput})
    def post(self, request: Request) -> Response:
        serializer = PullInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        target = access_policy().store_target(request.user, data.get("project") or None)
        target.check_pull_source(data["source"])
        uid = data["study_instance_uid"]
        if data["mode"] == "copy":
            report = study_pull(source=data["source"], study_instance_uid=uid, store=target.store)
            if not report.study_uids:
                reasons = "; ".join(f"{f.name}: {f.reason}" for f in report.rejected[:5])
                error = ConflictError if {f.http_status for f in report.rejected} == {409} else ApplicationError
                raise error(f"No instance of the study could be stored: {reasons}", code="rejected")
        else:
            study_index_upstream(source=data["source"], study_instance_uid=uid, store=target.store)
        study = (
            with_series(Study.objects.filter(store=target.store)).select_related("source").get(study_instance_uid=uid)
        )
        return Response(StudyDetailOutput(study).data, status=status.HTTP_201_CREATED)


class DicomSourceListView(APIView):
    """The PACS configured by administrators (names and kinds, never URLs or credentials), to choose a new
    project's source. Administrators only: only they create projects."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=DicomSourceOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(DicomSourceOutput(DicomSource.objects.order_by("name"), many=True).data)
