"""Manager-only quality dashboards: agreement per label, reader performance, reader pairs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for
from annotation.models import Project
from annotation.selectors import is_manager
from review import dashboards
from review.api import dashboard_serializers as s
from review.notes import render_notes


def _managed_project(request: Request, slug: str) -> Project:
    project = project_for(request, slug)  # 404 for non-members
    if not is_manager(request.user, project):
        raise PermissionDenied(f"Only a manager of project {project.slug!r} may see its dashboards")
    return project


class ProjectDashboardView(APIView):
    """Agreement per label (percent agreement, kappa with a bootstrap CI, Dice), dispute and overturn rates."""

    @extend_schema(responses=s.ProjectDashboardOutput)
    def get(self, request: Request, slug: str) -> Response:
        project = _managed_project(request, slug)
        return Response(s.ProjectDashboardOutput(render_notes(dashboards.dashboard_figures(project, "dashboard"))).data)


class ReaderStatsView(APIView):
    """Per reader: cases read, time per case, agreement with peers and with the truth, weekly trend."""

    @extend_schema(responses=s.ReaderStatsOutput(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = _managed_project(request, slug)
        return Response(
            s.ReaderStatsOutput(render_notes(dashboards.dashboard_figures(project, "readers")), many=True).data
        )


class ReaderPairsView(APIView):
    """Per pair of readers who read the same cases: confusion matrix and kappa per categorical label."""

    @extend_schema(responses=s.ReaderPairOutput(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = _managed_project(request, slug)
        return Response(
            s.ReaderPairOutput(render_notes(dashboards.dashboard_figures(project, "reader-pairs")), many=True).data
        )
