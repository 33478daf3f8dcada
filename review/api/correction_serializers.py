"""Input and output of the expert-correction endpoints (review.corrections)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from review.api.serializers import VotedReadingOutput
from review.models import Correction
from review.selectors import readings_of_revisions


class CorrectionStartInput(serializers.Serializer[dict[str, Any]]):
    seed_annotation = serializers.IntegerField(
        help_text="The reading to start from (its annotation id): the first or second reading, the AI proposal, "
        "or another expert's submitted corrected label"
    )


class CorrectionCopyInput(serializers.Serializer[dict[str, Any]]):
    from_annotation = serializers.IntegerField(help_text="The reading the lesion is copied from (annotation id)")
    lesion = serializers.CharField(max_length=128, help_text="The lesion's region id in that reading")
    base_revision = serializers.IntegerField(min_value=0, help_text="The revision number of your label you are on")


class CorrectionSaveInput(serializers.Serializer[dict[str, Any]]):
    base_revision = serializers.IntegerField(min_value=0, help_text="The revision number you started from")
    values = serializers.JSONField(help_text='{"items": [...]}: every label value of the corrected label')
    submit = serializers.BooleanField(default=False, help_text="Finalise it and cast it as your vote")
    rationale = serializers.CharField(required=False, allow_blank=True, default="", help_text="Needed to submit")


class EndorseInput(serializers.Serializer[dict[str, Any]]):
    rationale = serializers.CharField()


class ProvenanceItemOutput(serializers.Serializer[dict[str, Any]]):
    index = serializers.IntegerField(required=False, help_text="The item's position in the label (items only)")
    id = serializers.CharField(required=False, help_text="A region's id")
    region = serializers.CharField(required=False, help_text="The region an attribute describes")
    # "from" is a Python keyword and "label" a Field attribute: both declared in __init__ below.
    modified = serializers.BooleanField(help_text="The expert changed it from the reading it came from")
    by = serializers.CharField(help_text="Whose it is as it stands: the reader it came from, or the expert")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["label"] = serializers.CharField(help_text="The label's key")
        self.fields["from"] = VotedReadingOutput(
            allow_null=True, help_text="The reading it came from (with the region's id there); null: the expert's"
        )


class ProvenanceOutput(serializers.Serializer[dict[str, Any]]):
    expert = serializers.CharField()
    seed = VotedReadingOutput(allow_null=True, help_text="The reading the label was started from")
    items = ProvenanceItemOutput(many=True)
    lesions = ProvenanceItemOutput(many=True, help_text="Per lesion: where it came from, and whether it was changed")


class CorrectionOutput(serializers.ModelSerializer[Correction]):
    expert = serializers.CharField(source="expert.username", read_only=True)
    status = serializers.SerializerMethodField(help_text="draft, or submitted (the expert's vote)")
    revision = serializers.SerializerMethodField(help_text="The current revision number of the expert's reading")
    seed = serializers.SerializerMethodField()
    endorsed_by = serializers.ListField(
        child=serializers.CharField(), read_only=True, default=list, help_text="Experts whose vote is for it"
    )
    provenance = serializers.SerializerMethodField()

    class Meta:
        model = Correction
        fields = [
            "id",
            "expert",
            "annotation",
            "status",
            "revision",
            "seed",
            "origins",
            "provenance",
            "endorsed_by",
            "created_at",
            "submitted_at",
        ]

    def get_status(self, correction: Correction) -> str:
        return "submitted" if correction.submitted_revision_id is not None else "draft"

    def get_revision(self, correction: Correction) -> int:
        current = getattr(correction, "current", None)
        return int(current.number) if current is not None else int(correction.annotation.revision_count)

    @extend_schema_field(VotedReadingOutput(allow_null=True))
    def get_seed(self, correction: Correction) -> dict[str, Any] | None:
        if correction.seed_id is None:
            return None
        return readings_of_revisions([correction.seed_id]).get(correction.seed_id)

    @extend_schema_field(ProvenanceOutput)
    def get_provenance(self, correction: Correction) -> dict[str, Any]:
        return dict(getattr(correction, "live_provenance", None) or correction.provenance or {})
