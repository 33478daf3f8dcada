"""Jobs for the Jobs screen: list with filters, one job with its history, cancel and retry."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApplicationError, NotFoundError
from config.types import User
from jobs import services
from jobs.api.serializers import JobDetailOutput, JobOutput
from jobs.models import Job, JobKind, JobStatus
from jobs.selectors import job_can_manage, jobs_visible_to


class JobPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def _job_for(request: Request, job_id: int) -> Job:
    job = jobs_visible_to(request.user).filter(pk=job_id).first()
    if job is None:
        raise NotFoundError(f"No job {job_id} that you can see")
    return job


@extend_schema(
    parameters=[
        OpenApiParameter("project", str, description="Project slug"),
        OpenApiParameter("kind", str, enum=JobKind.values),
        OpenApiParameter("status", str, enum=JobStatus.values),
    ]
)
class JobListView(generics.ListAPIView[Job]):
    serializer_class = JobOutput
    pagination_class = JobPagination

    def get_queryset(self):  # type: ignore[no-untyped-def]
        jobs = jobs_visible_to(self.request.user).select_related("project", "created_by")
        params = self.request.query_params
        if project := params.get("project"):
            jobs = jobs.filter(project__slug=project)
        for name, allowed in (("kind", JobKind.values), ("status", JobStatus.values)):
            if value := params.get(name):
                if value not in allowed:
                    raise ApplicationError(f"Unknown {name} {value!r}; expected one of {', '.join(allowed)}")
                jobs = jobs.filter(**{name: value})
        return jobs


class JobDetailView(APIView):
    @extend_schema(responses=JobDetailOutput)
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobDetailOutput(_job_for(request, job_id)).data)


def _require_job_manager(request: Request, job: Job) -> None:
    if not job_can_manage(request.user, job):
        raise PermissionDenied("Only a manager of the job's project may do this")


class JobCancelView(APIView):
    @extend_schema(request=None, responses=JobDetailOutput)
    def post(self, request: Request, job_id: int) -> Response:
        job = _job_for(request, job_id)
        _require_job_manager(request, job)
        return Response(JobDetailOutput(services.job_cancel(job, actor=cast(User, request.user))).data)


class JobRetryView(APIView):
    @extend_schema(request=None, responses=JobDetailOutput)
    def post(self, request: Request, job_id: int) -> Response:
        job = _job_for(request, job_id)
        _require_job_manager(request, job)
        return Response(JobDetailOutput(services.job_retry(job, actor=cast(User, request.user))).data)
