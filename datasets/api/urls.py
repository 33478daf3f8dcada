from django.urls import path

from datasets.api import views

urlpatterns = [
    path("projects/<slug:slug>/exports/", views.ExportListView.as_view(), name="export-list"),
    path("projects/<slug:slug>/exports/<int:export_id>/", views.ExportDetailView.as_view(), name="export-detail"),
    path("projects/<slug:slug>/label-imports/", views.LabelImportView.as_view(), name="label-import"),
    path("projects/<slug:slug>/label-imports/pacs/", views.LabelImportFromPacsView.as_view(), name="label-import-pacs"),
    path(
        "projects/<slug:slug>/exports/<int:export_id>/download/",
        views.ExportDownloadView.as_view(),
        name="export-download",
    ),
]
