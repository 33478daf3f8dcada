from __future__ import annotations

from typing import Any

from rest_framework import serializers

from datasets.models import Export
from datasets.services import FORMATS


class ExportFiltersInput(serializers.Serializer[Any]):
    min_qa_level = serializers.ChoiceField(choices=["single_read", "agreed", "adjudicated"], required=False)
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    modalities = serializers.ListField(child=serializers.CharField(), required=False)
    study_date_from = serializers.CharField(required=False, allow_blank=True)
    study_date_to = serializers.CharField(required=False, allow_blank=True)
    exclude_quality_warnings = serializers.BooleanField(required=False)
    include_gold = serializers.BooleanField(
        required=False,
        help_text="Also export the gold-standard cases, with their reference label (left out by default)",
    )
    mask_label = serializers.CharField(required=False, allow_blank=True)


class ExportSplitInput(serializers.Serializer[Any]):
    train = serializers.FloatField(required=False)
    validation = serializers.FloatField(required=False)
    test = serializers.FloatField(required=False)
    seed = serializers.IntegerField(required=False, min_value=0)
    stratify_by = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class ExportCreateInput(serializers.Serializer[Any]):
    formats = serializers.ListField(child=serializers.ChoiceField(choices=list(FORMATS)), allow_empty=False)
    filters = ExportFiltersInput(required=False)
    split = ExportSplitInput(required=False)
    deidentify = serializers.BooleanField(default=True)


class ExportOutput(serializers.ModelSerializer[Export]):
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    job_status = serializers.CharField(source="job.status", read_only=True, default=None)
    cases = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id", "version", "created_by", "created_at", "job", "job_status", "filters", "formats", "split",
            "deidentify", "schema_version", "cases", "file_size", "sha256", "split_counts", "built_at", "download_url",
        ]  # fmt: skip

    def get_cases(self, export: Export) -> int:
        return len(export.selection)

    def get_download_url(self, export: Export) -> str | None:
        if not export.file:
            return None
        return f"/api/v1/projects/{export.project.slug}/exports/{export.pk}/download/"


class ExportDetailOutput(ExportOutput):
    class Meta(ExportOutput.Meta):
        fields = [*ExportOutput.Meta.fields, "selection", "manifest", "left_out", "deid_report"]
