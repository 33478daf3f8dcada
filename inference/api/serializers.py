from __future__ import annotations

from typing import Any

from rest_framework import serializers

from inference.models import (
    Architecture,
    CaseScore,
    InferenceSettings,
    ModelVersion,
    ModelVersionEvent,
    Prediction,
    Strategy,
    TaskType,
)


class ModelVersionEventOutput(serializers.ModelSerializer[ModelVersionEvent]):
    actor: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ModelVersionEvent
        fields = ["from_status", "to_status", "actor", "reason", "metrics", "created_at"]


class ModelVersionOutput(serializers.ModelSerializer[ModelVersion]):
    project: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    parent_number = serializers.IntegerField(source="parent.number", read_only=True, allow_null=True)
    model_label = serializers.CharField(source="label", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id", "project", "number", "model_label", "task_type", "architecture", "status", "metrics",
            "weights_sha256", "weights_bytes", "parent_number", "training_job", "device", "created_at", "trained_at",
            "demo",
        ]  # fmt: skip


class ModelVersionDetailOutput(ModelVersionOutput):
    events = ModelVersionEventOutput(many=True, read_only=True)

    class Meta(ModelVersionOutput.Meta):
        fields = [
            *ModelVersionOutput.Meta.fields, "architecture_params", "preprocessing", "label_map", "training_params",
            "training_snapshot", "history", "events",
        ]  # fmt: skip


class TrainInput(serializers.Serializer[Any]):
    task_type = serializers.ChoiceField(choices=TaskType.choices, required=False)
    architecture = serializers.ChoiceField(choices=Architecture.choices, required=False)
    architecture_params = serializers.DictField(required=False)
    preprocessing = serializers.DictField(required=False)
    training_params = serializers.DictField(required=False)
    seed = serializers.IntegerField(required=False, min_value=0)
    transfer = serializers.BooleanField(required=False, default=True)


class BundleImportInput(serializers.Serializer[Any]):
    file = serializers.FileField(
        help_text="The MONAI bundle, a zip (configs/metadata.json, configs/inference.json, models/model.pt)"
    )
    sha256 = serializers.RegexField(
        r"^\s*[0-9a-fA-F]{64}\s*$",
        help_text="The bundle's SHA-256 as its supplier published it (64 hex digits)",
        error_messages={"invalid": "The SHA-256 must be 64 hexadecimal digits"},
    )
    # The whole TaskType enum (one enum in the schema); the service takes segmentation or interactive.
    task_type = serializers.ChoiceField(choices=TaskType.choices, default=TaskType.SEGMENTATION)


class ReasonInput(serializers.Serializer[Any]):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RollbackInput(ReasonInput):
    task_type = serializers.ChoiceField(choices=TaskType.choices, default=TaskType.SEGMENTATION)


class PrelabelInput(serializers.Serializer[Any]):
    cases = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=10000)
    model_version = serializers.IntegerField(required=False, min_value=1)


class ScoreInput(serializers.Serializer[Any]):
    strategy = serializers.ChoiceField(choices=Strategy.choices, required=False)
    model_version = serializers.IntegerField(required=False, min_value=1)


class EvaluateInput(serializers.Serializer[Any]):
    cases = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=10000)


class InferenceSettingsSerializer(serializers.ModelSerializer[InferenceSettings]):
    class Meta:
        model = InferenceSettings
        fields = [
            "auto_train_every", "strategy", "prelabel_on_ingest", "task_type", "architecture", "architecture_params",
            "preprocessing", "training_params", "seed", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["updated_at"]


class PredictionOutput(serializers.ModelSerializer[Prediction]):
    model_version = serializers.IntegerField(source="model_version.number", read_only=True)
    model_label = serializers.CharField(source="model_version.label", read_only=True)
    has_saliency = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id", "case", "model_version", "model_label", "revision", "probabilities", "components", "has_saliency",
            "device", "seconds", "created_at",
        ]  # fmt: skip

    def get_has_saliency(self, obj: Prediction) -> bool:
        return bool(obj.saliency_file)


class CaseScoreOutput(serializers.ModelSerializer[CaseScore]):
    class Meta:
        model = CaseScore
        fields = [
            "case",
            "strategy",
            "score",
            "uncertainty",
            "disagreement",
            "rank",
            "model_version",
            "job",
            "created_at",
        ]
