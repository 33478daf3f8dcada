"""The OHIF Viewer under /ohif/ (every study the user may see) and /ohif/projects/<slug>/ (one project's),
with the user's session; 404 unless MEDLABEL_OHIF_ENABLED."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _

from annotation.selectors import projects_for_user
from imaging.ohif import services

CONFIG = "app-config.js"


def _dist() -> Path:
    if not settings.OHIF_ENABLED:
        raise Http404(_("The OHIF Viewer is not enabled on this server."))
    return Path(settings.OHIF_DIST_DIR)


def _not_installed(dist: Path) -> HttpResponse:
    message = _("The OHIF Viewer is enabled but not installed in %(dir)s: run scripts/ohif.sh.") % {"dir": dist}
    return HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")


def _config(root: str, basename: str, name: str) -> HttpResponse:
    config = services.app_config(dicomweb_root=root, router_basename=basename, friendly_name=name)
    response = HttpResponse(services.app_config_js(config), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


def _index(dist: Path, config_url: str) -> HttpResponse:
    response = HttpResponse(services.index_html(dist, config_url=config_url), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


@login_required
def viewer(request: HttpRequest, path: str = "") -> HttpResponseBase:
    dist = _dist()
    if not (dist / "index.html").is_file():
        return _not_installed(dist)
    if path == CONFIG:
        return _config("/dicomweb", services.PREFIX.rstrip("/"), _("All my studies"))
    found = services.asset(dist, path)
    if found is None:
        return _index(dist, services.PREFIX + CONFIG)
    if found.body is not None:
        return HttpResponse(found.body, content_type=found.content_type)
    return FileResponse(found.path.open("rb"), content_type=found.content_type)


@login_required
def project_viewer(request: HttpRequest, slug: str, path: str = "") -> HttpResponseBase:
    """The viewer of one project: its data source is the project's DICOMweb root, which answers with that
    project's studies only."""
    dist = _dist()
    project = projects_for_user(request.user).filter(slug=slug).first()
    if project is None:
        raise Http404(_("No such project."))
    if not (dist / "index.html").is_file():
        return _not_installed(dist)
    base = f"{services.PREFIX}projects/{project.slug}/"
    if path == CONFIG:
        return _config(f"/dicomweb/projects/{project.slug}", base.rstrip("/"), project.name)
    return _index(dist, base + CONFIG)
