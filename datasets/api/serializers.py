from __future__ import annotations

from typing import Any

from rest_framework import serializers

from config.messages import is_message, render
from datasets.models import Export, LabelImport
from datasets.services import FORMATS, left_out_cases
from imaging.models import DicomSource
from review.models import GoldCase


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
    left_out_cases = serializers.SerializerMethodField(
        help_text="Cases missing from at least one format; the job then ends 'partial', not 'succeeded'"
    )
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id", "version", "created_by", "created_at", "job", "job_status", "filters", "formats", "split",
            "deidentify", "schema_version", "cases", "left_out_cases", "file_size", "sha256", "split_counts",
            "built_at", "download_url",
        ]  # fmt: skip

    def get_cases(self, export: Export) -> int:
        return len(export.selection)

    def get_left_out_cases(self, export: Export) -> int:
        return left_out_cases(export.left_out)

    def get_download_url(self, export: Export) -> str | None:
        if not export.file:
            return None
        return f"/api/v1/projects/{export.project.slug}/exports/{export.pk}/download/"


class ExportDetailOutput(ExportOutput):
    class Meta(ExportOutput.Meta):
        fields = [*ExportOutput.Meta.fields, "selection", "manifest", "left_out", "deid_report"]

    def to_representation(self, instance: Export) -> dict[str, Any]:
        """``left_out`` as stored ([{case, case_id, format, reason}]), each reason in the request's language: the
        rows keep it as a message (English template and parameters) beside the English text; rows written
        before that keep their English reason."""
        data: dict[str, Any] = super().to_representation(instance)
        data["left_out"] = [
            {
                **{k: v for k, v in row.items() if k != "message"},
                "reason": render(row["message"]) if is_message(row.get("message")) else row.get("reason", ""),
            }
            for row in instance.left_out
        ]
        return data


class LabelImportInput(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="One DICOM SEG, RTSTRUCT or SR measurement report (TID 1500) (Part 10)")
    mask_label = serializers.CharField(required=False, allow_blank=True)
    use = serializers.ChoiceField(
        choices=["reading", "gold_reference"],
        default="reading",
        help_text='"reading": an imported reading (default); "gold_reference": the case\'s gold-standard reference',
    )


class LabelImportFromPacsInput(serializers.Serializer[Any]):
    source: serializers.SlugRelatedField[DicomSource] = serializers.SlugRelatedField(  # type: ignore[assignment]
        slug_field="name", queryset=DicomSource.objects.all(), help_text="The PACS, by name"
    )
    study_instance_uid = serializers.CharField(max_length=64)
    series_instance_uid = serializers.CharField(max_length=64)
    sop_instance_uid = serializers.CharField(max_length=64)
    mask_label = serializers.CharField(required=False, allow_blank=True)
    use = serializers.ChoiceField(
        choices=["reading", "gold_reference"],
        default="reading",
        help_text='"reading": an imported reading (default); "gold_reference": the case\'s gold-standard reference',
    )


class LabelImportOutput(serializers.ModelSerializer[LabelImport]):
    imported_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    role = serializers.CharField(source="revision.annotation.role", read_only=True)
    origin = serializers.CharField(source="revision.origin", read_only=True)
    revision_number = serializers.IntegerField(source="revision.number", read_only=True)
    gold_case = serializers.SerializerMethodField(
        help_text="The case's id when the label was imported as its gold reference, else null"
    )

    def get_gold_case(self, record: LabelImport) -> int | None:
        return record.case_id if GoldCase.objects.filter(reference_id=record.revision_id).exists() else None

    class Meta:
        model = LabelImport
        fields = [
            "id",
            "case",
            "revision",
            "revision_number",
            "role",
            "origin",
            "imported_by",
            "imported_at",
            "provenance",
            "gold_case",
        ]
