"""DICOMweb under /dicomweb/ (all studies of the user's projects) and /dicomweb/projects/<slug>/ (one
project; STOW there adds the studies to that project)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from imaging.dicomweb import qido, stow, wado

UID = "<str:{}>"


@csrf_exempt
def studies_root(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
    if request.method == "POST":
        return stow.store_instances(request, **kwargs)
    return qido.search_studies(request, **kwargs)


@csrf_exempt
def study_root(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
    if request.method == "POST":
        return stow.store_instances(request, **kwargs)
    return wado.retrieve_study(request, **kwargs)


S = "studies/<str:study>"
SE = S + "/series/<str:series>"
I = SE + "/instances/<str:instance>"

routes = [
    path("studies", studies_root),
    path(S, study_root),
    path(S + "/metadata", wado.study_metadata),
    path(S + "/series", qido.search_series),
    path(S + "/instances", qido.search_instances),
    path(SE, wado.retrieve_series),
    path(SE + "/metadata", wado.series_metadata),
    path(SE + "/instances", qido.search_instances),
    path(I, wado.retrieve_instance),
    path(I + "/metadata", wado.instance_metadata),
    path(I + "/rendered", wado.instance_rendered),
    path(I + "/frames/<str:frames>", wado.retrieve_frames),
    path(I + "/frames/<str:frames>/rendered", wado.frame_rendered),
    path(I + "/bulk/<str:tag>", wado.retrieve_bulkdata),
    path("series", qido.search_series),
    path("instances", qido.search_instances),
]

urlpatterns = [
    path("projects/<slug:scope>/", include(routes)),
    path("", include(routes)),
]
