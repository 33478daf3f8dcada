from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from review.evaluation import AGREED, DISAGREED, NOT_COMPARED, result_status
from review.models import AgreementResult, CaseEvent, PanelVote, ReviewPolicy


class ReviewPolicySerializer(serializers.ModelSerializer[ReviewPolicy]):
    chair: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    chair_username = serializers.CharField(write_only=True, required=False, allow_null=True)

    class Meta:
        model = ReviewPolicy
        fields = [
            "mode",
            "second_read_share",
            "mask_dice",
            "box_iou",
            "ordinal_distance",
            "number_tolerance",
            "point_distance",
            "mask_rule",
            "ai_third_opinion",
            "panel_size",
            "quorum",
            "chair",
            "chair_username",
            "panel_deadline_hours",
            "sampling_seed",
            "gold_rate",
            "gold_feedback",
            "adaptive_second_read",
            "adaptive_min_agreement",
            "adaptive_min_record_cases",
            "second_read_target",
        ]
        extra_kwargs = {
            "second_read_share": {"min_value": 0.0, "max_value": 1.0},
            "gold_rate": {"min_value": 0.0, "max_value": 1.0},
            "adaptive_min_agreement": {"min_value": 0.0, "max_value": 1.0},
            "second_read_target": {"min_value": 0.0, "max_value": 1.0},
            "mask_dice": {"min_value": 0.0, "max_value": 1.0},
            "box_iou": {"min_value": 0.0, "max_value": 1.0},
            "panel_size": {"min_value": 1, "max_value": 15},
            "quorum": {"min_value": 1, "max_value": 15},
            "panel_deadline_hours": {
                "min_value": 1,
                "max_value": 24 * 365,
                "help_text": "Hours after a case goes to the panel when a tie stops waiting for the seated experts "
                "who have not voted (the casting vote decides among the votes cast); null: no deadline",
            },
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        size = attrs.get("panel_size", getattr(self.instance, "panel_size", 3))
        quorum = attrs.get("quorum", getattr(self.instance, "quorum", 2))
        if quorum > size:
            raise serializers.ValidationError({"quorum": f"A quorum of {quorum} cannot be reached by {size} experts"})
        return attrs


class CaseEventOutput(serializers.ModelSerializer[CaseEvent]):
    actor = serializers.CharField(source="actor.username", default=None, read_only=True)

    class Meta:
        model = CaseEvent
        fields = ["id", "from_status", "to_status", "actor", "reason", "metrics", "created_at"]


class LesionPairOutput(serializers.Serializer[dict[str, Any]]):
    readers = serializers.ListField(child=serializers.CharField(), help_text="The two readers, in reading order")
    ids = serializers.ListField(child=serializers.CharField(), help_text="Their region ids, in the same order")
    score = serializers.FloatField(help_text="IoU (boxes, polygons), distance in pixels (points) or Dice (masks)")


class LesionMatchingOutput(serializers.Serializer[dict[str, Any]]):
    key = serializers.CharField(help_text="The lesion label (box, polygon, point or region mask)")
    method = serializers.CharField(help_text="hungarian: one-to-one, for every pair of readers")
    reference = serializers.CharField(help_text="The first reader (the pairs cover every pair of readers)")
    score = serializers.ChoiceField(choices=["iou", "distance_px", "dice"])
    pairs = LesionPairOutput(many=True)
    unmatched = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per reader: the ids of their regions no other reader's matched (found by that reader only)",
    )


class AgreementOutput(serializers.ModelSerializer[AgreementResult]):
    status = serializers.SerializerMethodField(
        help_text="agreed; disagreed (some label disagreed); not_compared (no label could be compared, so "
        "agreement was not shown and the case went to the panel)"
    )
    lesions = serializers.SerializerMethodField(
        help_text="The lesion matching of every lesion label: matched pairs and unmatched ids per reader"
    )

    class Meta:
        model = AgreementResult
        fields = ["id", "status", "agreed", "labels", "lesions", "reasons", "created_at"]
        extra_kwargs = {
            "labels": {
                "help_text": "Per label: key, kind, status (agreed, disagreed or not_compared), agreed (true only "
                'when the status is agreed), metrics, reasons, reader_pairs (per pair of readers "a~b": agreed or '
                "disagreed; a pair absent had nothing to compare), and matching for lesion labels"
            }
        }

    @extend_schema_field(serializers.ChoiceField(choices=[AGREED, DISAGREED, NOT_COMPARED]))
    def get_status(self, result: AgreementResult) -> str:
        return result_status(result.agreed, result.labels if isinstance(result.labels, list) else [])

    @extend_schema_field(LesionMatchingOutput(many=True))
    def get_lesions(self, result: AgreementResult) -> list[dict[str, Any]]:
        entries = result.labels if isinstance(result.labels, list) else []
        return [
            {"key": entry.get("key"), **entry["matching"]}
            for entry in entries
            if isinstance(entry, dict) and isinstance(entry.get("matching"), dict)
        ]


class VerificationInput(serializers.Serializer[dict[str, Any]]):
    outcome = serializers.ChoiceField(choices=["accept", "correct", "reject"])
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    base_revision = serializers.IntegerField(min_value=0, default=0)
    values = serializers.JSONField(required=False, help_text="The corrected reading, with outcome 'correct'")


class VoteInput(serializers.Serializer[dict[str, Any]]):
    voted_for_annotation = serializers.IntegerField(
        required=False, help_text="Vote for this reading (its current revision)"
    )
    values = serializers.JSONField(required=False, help_text="Or submit a corrected label instead")
    seed_annotation = serializers.IntegerField(
        required=False, help_text="With values: the reading the corrected label was made from (for its provenance)"
    )
    rationale = serializers.CharField()


class VotedReadingOutput(serializers.Serializer[dict[str, Any]]):
    """The reading a vote is for."""

    revision = serializers.IntegerField()
    annotation = serializers.IntegerField()
    role = serializers.CharField(help_text="first_reader, second_reader, ai or panel_member (an expert's correction)")
    reader = serializers.CharField(allow_null=True, help_text="Who read it; null for the AI proposal")
    description = serializers.CharField(
        help_text='In words: "first reading", "AI proposal", "expert correction by expert1"'
    )


class VoteOutput(serializers.ModelSerializer[PanelVote]):
    expert = serializers.CharField(source="expert.username", read_only=True)
    reading = VotedReadingOutput(read_only=True, allow_null=True, help_text="What the vote is for")

    class Meta:
        model = PanelVote
        fields = ["id", "expert", "voted_for", "corrected", "reading", "rationale", "created_at"]
