from django.contrib import admin

from inference.models import CaseScore, InferenceSettings, ModelVersion, ModelVersionEvent, Prediction


class _ReadOnly:
    """Audit rows and registry entries are written by services only."""

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(InferenceSettings)
class InferenceSettingsAdmin(admin.ModelAdmin[InferenceSettings]):
    list_display = ["project", "strategy", "auto_train_every", "prelabel_on_ingest", "architecture", "updated_at"]


@admin.register(ModelVersion)
class ModelVersionAdmin(_ReadOnly, admin.ModelAdmin[ModelVersion]):
    list_display = ["project", "number", "task_type", "architecture", "status", "weights_sha256", "created_at"]
    list_filter = ["status", "task_type", "architecture"]


@admin.register(ModelVersionEvent)
class ModelVersionEventAdmin(_ReadOnly, admin.ModelAdmin[ModelVersionEvent]):
    list_display = ["model_version", "from_status", "to_status", "actor", "created_at"]


@admin.register(Prediction)
class PredictionAdmin(_ReadOnly, admin.ModelAdmin[Prediction]):
    list_display = ["case", "model_version", "revision", "device", "seconds", "created_at"]


@admin.register(CaseScore)
class CaseScoreAdmin(_ReadOnly, admin.ModelAdmin[CaseScore]):
    list_display = ["case", "strategy", "score", "rank", "model_version", "created_at"]
    list_filter = ["strategy"]
