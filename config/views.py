from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.selectors import projects_for_user
from config.readiness import run_checks
from imaging.selectors import study_list


def _app_index() -> str | None:
    """The browser app's index.html (frontend/dist, built by scripts/build-frontend.sh), or None."""
    index = Path(settings.FRONTEND_DIST_DIR) / "index.html"
    try:
        return index.read_text(encoding="utf-8")
    except OSError:
        return None


@login_required
@never_cache
def home(request: HttpRequest, **kwargs: object) -> HttpResponse:
    """The browser app for "/" and its client routes (APP_ROUTE in config/urls.py); anonymous users go to
    the sign-in page. Without a frontend build: a server-rendered list of the user's projects and studies."""
    html = _app_index()
    if html is not None:
        get_token(request)  # the app's writes send the CSRF cookie back as X-CSRFToken
        return HttpResponse(html, content_type="text/html; charset=utf-8")
    projects = projects_for_user(request.user).order_by("name")
    studies = study_list(request.user)[:50]
    return render(request, "home.html", {"projects": projects, "studies": studies})


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, broker, storage and PACS reachable, each with its latency; 503 if a required one is not."""
    ready, report = run_checks()
    return JsonResponse(report, status=200 if ready else 503)


# The API docs load only from this server (issue 16, item 10): the scripts and styles are our static files
# (drf-spectacular-sidecar), and this policy stops the browser from fetching anything elsewhere, such as the
# Redocly logo that Redoc's sidebar loads from its CDN. Inline script and style: drf-spectacular's templates
# start the UIs inline; Redoc runs its search in a blob: worker.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:"
)


class SwaggerDocsView(SpectacularSwaggerView):
    @extend_schema(exclude=True)
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response


class RedocDocsView(SpectacularRedocView):
    template_name = "api_docs/redoc.html"  # without the Google Fonts links of drf-spectacular's template

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response
