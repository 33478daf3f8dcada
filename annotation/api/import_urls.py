from django.urls import path

from annotation.api import import_views, share_views

urlpatterns = [
    path("projects/<slug:slug>/imports/", import_views.ProjectImportView.as_view(), name="project-import"),
    path("projects/<slug:slug>/uploads/", import_views.ProjectUploadView.as_view(), name="project-upload"),
    path("projects/<slug:slug>/pacs/", import_views.PacsSourcesView.as_view(), name="project-pacs"),
    path("projects/<slug:slug>/pacs/studies/", import_views.PacsSearchView.as_view(), name="project-pacs-search"),
    path("projects/<slug:slug>/shares/", share_views.ProjectShareView.as_view(), name="project-shares"),
]
