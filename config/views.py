from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from annotation.selectors import projects_for_user
from imaging.selectors import study_list


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Landing page until the browser app (frontend/) is built: the user's projects and studies."""
    projects = projects_for_user(request.user).order_by("name")
    studies = study_list(request.user)[:50]
    return render(request, "home.html", {"projects": projects, "studies": studies})


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
