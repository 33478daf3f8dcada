from django.urls import path

from annotation.api import import_views

urlpatterns = [
    path("projects/<slug:slug>/imports/", import_views.ProjectImportView.as_view(), name="project-import"),
]
