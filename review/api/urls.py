from django.urls import path

from review.api import dashboard_views, views

urlpatterns = [
    path("projects/<slug:slug>/review-policy/", views.ReviewPolicyView.as_view(), name="review-policy"),
    # Saving a reading (a draft, or the submission that moves the case on) is review's: see reading_submit.
    path("cases/<int:case_id>/revisions/", views.CaseRevisionCreateView.as_view(), name="case-revision-create"),
    path("cases/<int:case_id>/events/", views.CaseEventsView.as_view(), name="case-events"),
    path("cases/<int:case_id>/agreement/", views.CaseAgreementView.as_view(), name="case-agreement"),
    path("cases/<int:case_id>/verification/", views.VerificationView.as_view(), name="case-verification"),
    path("cases/<int:case_id>/votes/", views.PanelVotesView.as_view(), name="case-votes"),
]

urlpatterns += [
    path("projects/<slug:slug>/dashboard/", dashboard_views.ProjectDashboardView.as_view(), name="project-dashboard"),
    path("projects/<slug:slug>/readers/", dashboard_views.ReaderStatsView.as_view(), name="project-readers"),
    path("projects/<slug:slug>/reader-pairs/", dashboard_views.ReaderPairsView.as_view(), name="project-reader-pairs"),
]
