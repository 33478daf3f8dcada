from __future__ import annotations

from typing import Any

from rest_framework import serializers

from imaging.models import DicomSource, Series, Study


class SeriesOutput(serializers.ModelSerializer[Series]):
    is_flagged = serializers.BooleanField(read_only=True)

    class Meta:
        model = Series
        fields = [
            "series_instance_uid",
            "modality",
            "series_number",
            "series_description",
            "body_part_examined",
            "frame_of_reference_uid",
            "number_of_instances",
            "rows",
            "columns",
            "number_of_slices",
            "pixel_spacing",
            "slice_thickness",
            "slice_spacing",
            "image_orientation",
            "slice_positions",
            "is_multiframe",
            "quality",
            "is_flagged",
            "quality_checks",
            "quality_checked_at",
        ]


class StudyOutput(serializers.ModelSerializer[Study]):
    source: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(  # type: ignore[assignment]
        slug_field="name", read_only=True, allow_null=True
    )

    class Meta:
        model = Study
        fields = [
            "study_instance_uid",
            "source",
            "patient_id",
            "patient_name",
            "patient_sex",
            "patient_birth_date",
            "study_date",
            "study_time",
            "accession_number",
            "study_description",
            "modalities_in_study",
            "number_of_series",
            "number_of_instances",
            "created_at",
        ]


class StudyDetailOutput(StudyOutput):
    series = SeriesOutput(many=True, read_only=True)

    class Meta(StudyOutput.Meta):
        fields = [*StudyOutput.Meta.fields, "series"]


class UploadInput(serializers.Serializer[dict[str, object]]):
    project = serializers.SlugField(required=False, help_text="Project to add the studies to (you must manage it)")
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), help_text="DICOM files, or zip archives of them"
    )


class FileOutcomeOutput(serializers.Serializer[dict[str, object]]):
    file = serializers.CharField()
    status = serializers.ChoiceField(choices=["stored", "duplicate", "rejected"])
    sop_instance_uid = serializers.CharField(required=False)
    study_instance_uid = serializers.CharField(required=False)
    series_instance_uid = serializers.CharField(required=False)
    reason = serializers.CharField(required=False)
    code = serializers.CharField(required=False)
    warnings = serializers.ListField(child=serializers.CharField(), required=False)


class IngestReportOutput(serializers.Serializer[dict[str, object]]):
    counts = serializers.DictField(child=serializers.IntegerField())
    studies = serializers.ListField(child=serializers.CharField())
    files = FileOutcomeOutput(many=True)
    files_not_listed = serializers.DictField(
        child=serializers.IntegerField(),
        required=False,
        help_text="Present when the report lists only the first files: how many more were stored, duplicate or "
        "rejected (IMAGING_MAX_REPORTED_FILES)",
    )
    detail = serializers.CharField(required=False)


class PullInput(serializers.Serializer[dict[str, object]]):
    source = serializers.SlugRelatedField(  # type: ignore[assignment]
        slug_field="name", queryset=DicomSource.objects.filter(kind="dicomweb")
    )
    study_instance_uid = serializers.CharField(max_length=64)
    project = serializers.SlugField(required=False)
    mode = serializers.ChoiceField(
        choices=["copy", "index"],
        default="copy",
        help_text="copy: store the files locally; index: register the study and proxy its pixels from the PACS",
    )


class DicomSourceOutput(serializers.ModelSerializer[DicomSource]):
    class Meta:
        model = DicomSource
        fields = ["name", "kind"]
