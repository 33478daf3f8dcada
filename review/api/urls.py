from django.urls import path

from review.api import audit_views, correction_views, dashboard_views, gold_views, views

urlpatterns = [
    path("projects/<slug:slug>/review-policy/", views.ReviewPolicyView.as_view(), name="review-policy"),
    # Saving a reading (a draft, or the submission that moves the case on) is review's: see reading_submit.
    path("cases/<int:case_id>/revisions/", views.CaseRevisionCreateView.as_view(), name="case-revision-create"),
    path("cases/<int:case_id>/events/", views.CaseEventsView.as_view(), name="case-events"),
    path("cases/<int:case_id>/agreement/", views.CaseAgreementView.as_view(), name="case-agreement"),
    path("cases/<int:case_id>/verification/", views.VerificationView.as_view(), name="case-verification"),
    path("cases/<int:case_id>/votes/", views.PanelVotesView.as_view(), name="case-votes"),
    path("cases/<int:case_id>/corrections/", correction_views.CorrectionListView.as_view(), name="case-corrections"),
    path(
        "cases/<int:case_id>/corrections/mine/copy/",
        correction_views.CorrectionCopyView.as_view(),
        name="case-correction-copy",
    ),
    path(
        "cases/<int:case_id>/corrections/mine/revisions/",
        correction_views.CorrectionRevisionView.as_view(),
        name="case-correction-revisions",
    ),
    path(
        "cases/<int:case_id>/corrections/<int:correction_id>/endorse/",
        correction_views.CorrectionEndorseView.as_view(),
        name="case-correction-endorse",
    ),
]

urlpatterns += [
    path("projects/<slug:slug>/dashboard/", dashboard_views.ProjectDashboardView.as_view(), name="project-dashboard"),
    path("projects/<slug:slug>/readers/", dashboard_views.ReaderStatsView.as_view(), name="project-readers"),
    path("projects/<slug:slug>/reader-pairs/", dashboard_views.ReaderPairsView.as_view(), name="project-reader-pairs"),
]

urlpatterns += [
    path("projects/<slug:slug>/audit/", audit_views.AuditLogView.as_view(), name="project-audit"),
    path("projects/<slug:slug>/audit.csv", audit_views.AuditCsvView.as_view(), name="project-audit-csv"),
    path("cases/<int:case_id>/gold/", gold_views.GoldCaseView.as_view(), name="case-gold"),
    path("cases/<int:case_id>/reading-feedback/", gold_views.ReadingFeedbackView.as_view(), name="case-feedback"),
    path("projects/<slug:slug>/gold-scores/", gold_views.GoldScoresView.as_view(), name="project-gold-scores"),
    path("projects/<slug:slug>/reading-routes/", gold_views.ReadingRoutesView.as_view(), name="project-reading-routes"),
]
