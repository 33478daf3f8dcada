from django.urls import path

from annotation.api import import_views, share_views

urlpatterns = [
    path("projects/<slug:slug>/imports/", import_views.ProjectImportView.as_view(), name="project-import"),
    path("projects/<slug:slug>/shares/", share_views.ProjectShareView.as_view(), name="project-shares"),
]
