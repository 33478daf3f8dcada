from django.urls import path

from annotation.api import views

urlpatterns = [
    path("projects/", views.ProjectListView.as_view(), name="project-list"),
]
