"""DRF permissions backed by the membership table."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from annotation.models import Project
from annotation.selectors import is_manager, projects_for_user, reading_project, remember_manager


def project_for(request: Request, slug: str) -> Project:
    """The project if the user is a member; the same 404 otherwise, so that existence does not leak."""
    return get_object_or_404(projects_for_user(request.user), slug=slug)


def project_for_reading(request: Request, slug: str) -> Project:
    """project_for, with the review policy and whether the user manages the project read in the same query: what
    claiming the next case and showing it to its reader consult (selectors.with_reader_context)."""
    project = reading_project(request.user, slug)
    if project is None:
        raise Http404(f"No {Project._meta.object_name} matches the given query.")  # get_object_or_404's words
    return remember_manager(project, request.user)


def require_manager(request: Request, project: Project) -> None:
    """403 unless the user manages the project (the caller has already checked membership: 404 otherwise)."""
    if not is_manager(request.user, project):
        raise PermissionDenied(_("Only a manager of project %(project)s may do this.") % {"project": project.slug})


class IsProjectManagerForWrites(BasePermission):
    """Members read; only managers of the project (in the URL) write."""

    message = gettext_lazy("Only a manager of this project may do this.")

    def has_permission(self, request: Request, view: Any) -> bool:
        # Views that use this class replace the default IsAuthenticated: without this check an anonymous
        # request got 404 (no project "visible") instead of the authentication error every other view gives.
        if not request.user or not request.user.is_authenticated:
            return False
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        slug = view.kwargs.get("slug")
        if slug is None:
            return True
        return is_manager(request.user, project_for(request, slug))
