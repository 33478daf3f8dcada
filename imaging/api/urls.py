from django.urls import path

from imaging.api import views

urlpatterns = [
    path("studies/", views.StudyListView.as_view(), name="study-list"),
    path("studies/<str:study_instance_uid>/", views.StudyDetailView.as_view(), name="study-detail"),
    path("series/<str:series_instance_uid>/", views.SeriesDetailView.as_view(), name="series-detail"),
    path("uploads/", views.UploadView.as_view(), name="upload"),
    path("pull/", views.PullView.as_view(), name="pull"),
    path("dicom-sources/", views.DicomSourceListView.as_view(), name="dicom-source-list"),
]
