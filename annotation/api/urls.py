from django.urls import path

from annotation.api import views

urlpatterns = [
    path("projects/", views.ProjectListView.as_view(), name="project-list"),
    path("projects/<slug:slug>/", views.ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<slug:slug>/archive/", views.ProjectArchiveView.as_view(), name="project-archive"),
    path("projects/<slug:slug>/members/", views.MemberListView.as_view(), name="member-list"),
    path("projects/<slug:slug>/members/<int:membership_id>/", views.MemberDetailView.as_view(), name="member-detail"),
    path("projects/<slug:slug>/schemas/", views.SchemaListView.as_view(), name="schema-list"),
    path("projects/<slug:slug>/schemas/<int:version>/", views.SchemaDetailView.as_view(), name="schema-detail"),
    path("projects/<slug:slug>/cases/", views.CaseListView.as_view(), name="case-list"),
    path("projects/<slug:slug>/assignments/distribute/", views.DistributeView.as_view(), name="distribute"),
    path("projects/<slug:slug>/assignments/reassign/", views.ReassignView.as_view(), name="reassign"),
    path("projects/<slug:slug>/worklist/", views.WorklistView.as_view(), name="worklist"),
    path("projects/<slug:slug>/worklist/next/", views.WorklistNextView.as_view(), name="worklist-next"),
    path("cases/<int:case_id>/", views.CaseDetailView.as_view(), name="case-detail"),
    path("cases/<int:case_id>/assignments/", views.CaseAssignmentsView.as_view(), name="case-assignments"),
    path("cases/<int:case_id>/annotations/", views.CaseAnnotationsView.as_view(), name="case-annotations"),
    path("annotations/<int:annotation_id>/", views.AnnotationDetailView.as_view(), name="annotation-detail"),
    path("annotations/<int:annotation_id>/revisions/", views.RevisionListView.as_view(), name="revision-list"),
    path(
        "annotations/<int:annotation_id>/revisions/<int:number>/",
        views.RevisionDetailView.as_view(),
        name="revision-detail",
    ),
    path("annotations/<int:annotation_id>/diff/", views.RevisionDiffView.as_view(), name="revision-diff"),
]
