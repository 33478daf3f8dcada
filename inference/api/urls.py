from django.urls import path

from inference.api import interactive_views, views

urlpatterns = [
    path("projects/<slug:slug>/models/", views.ModelVersionListView.as_view(), name="model-version-list"),
    path("projects/<slug:slug>/models/train/", views.TrainView.as_view(), name="model-train"),
    path("projects/<slug:slug>/models/rollback/", views.RollbackView.as_view(), name="model-rollback"),
    path("projects/<slug:slug>/models/import-bundle/", views.BundleImportView.as_view(), name="model-import-bundle"),
    path("projects/<slug:slug>/prelabel/", views.PrelabelView.as_view(), name="prelabel"),
    path("projects/<slug:slug>/score/", views.ScoreView.as_view(), name="score"),
    path("projects/<slug:slug>/case-scores/", views.CaseScoreListView.as_view(), name="case-scores"),
    path("projects/<slug:slug>/inference-settings/", views.InferenceSettingsView.as_view(), name="inference-settings"),
    path("models/<int:version_id>/", views.ModelVersionDetailView.as_view(), name="model-version-detail"),
    path("models/<int:version_id>/promote/", views.PromoteView.as_view(), name="model-promote"),
    path("models/<int:version_id>/evaluate/", views.EvaluateView.as_view(), name="model-evaluate"),
    path("models/<int:version_id>/export/", views.ExportView.as_view(), name="model-export"),
    path("cases/<int:case_id>/predictions/", views.CasePredictionListView.as_view(), name="case-predictions"),
    path("cases/<int:case_id>/interactive/", interactive_views.InteractiveView.as_view(), name="case-interactive"),
    path(
        "predictions/<int:prediction_id>/saliency/", views.PredictionSaliencyView.as_view(), name="prediction-saliency"
    ),
]
