from django.urls import path

from imaging.ohif import views

urlpatterns = [
    path("projects/<slug:slug>/", views.project_viewer, name="ohif-project"),
    path("projects/<slug:slug>/<path:path>", views.project_viewer),
    path("", views.viewer, name="ohif"),
    path("<path:path>", views.viewer),
]
