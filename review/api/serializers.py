from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.messages import is_message, render
from review.evaluation import AGREED, DISAGREED, NOT_COMPARED, NOTHING_COMPARED, result_status
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
            "adaptive_ai_consensus",
            "second_read_cap",
            "adaptive_adjudicate",
            "adaptive_mask_dice",
            "adaptive_number_tolerance",
            "adjudicator_corrects",
        ]
        extra_kwargs = {
            "second_read_share": {"min_value": 0.0, "max_value": 1.0},
            "gold_rate": {"min_value": 0.0, "max_value": 1.0},
            "adaptive_min_agreement": {"min_value": 0.0, "max_value": 1.0},
            "second_read_target": {"min_value": 0.0, "max_value": 1.0},
            "mask_dice": {"min_value": 0.0, "max_value": 1.0},
            "adaptive_mask_dice": {"min_value": 0.0, "max_value": 1.0},
            "adaptive_number_tolerance": {"min_value": 0.0},
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
    reason = serializers.SerializerMethodField(help_text="Why, for people, in the request's language")
    metrics = serializers.SerializerMethodField()

    class Meta:
        model = CaseEvent
        fields = ["id", "from_status", "to_status", "actor", "reason", "metrics", "created_at"]

    def get_reason(self, event: CaseEvent) -> str:
        said = event.metrics.get("reason_message") if isinstance(event.metrics, dict) else None
        # Events written before reasons were messages have only their English text.
        return render(said) if is_message(said) else event.reason

    @extend_schema_field(serializers.DictField())
    def get_metrics(self, event: CaseEvent) -> dict[str, Any]:
        if not isinstance(event.metrics, dict):
            return {}
        return {key: value for key, value in event.metrics.items() if key != "reason_message"}


def rendered_reasons(entry: dict[str, Any]) -> list[str]:
    """A label entry's reasons in the request's language (stored English text for results stored before)."""
    said = entry.get("messages")
    if isinstance(said, list) and all(is_message(m) for m in said):
        return [render(m) for m in said]
    reasons = entry.get("reasons")
    return [str(r) for r in reasons] if isinstance(reasons, list) else []


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
    numbers = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        required=False,
        help_text='Per reader and region id: the lesion\'s number in the reasons ("Nodule bounding box 2"); a matched '
        "pair shares its number",
    )


class AgreementOutput(serializers.ModelSerializer[AgreementResult]):
    labels = serializers.SerializerMethodField()
    reasons = serializers.SerializerMethodField(help_text="Why the case is disputed, in the request's language")
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

    @extend_schema_field(
        serializers.ListField(
            child=serializers.DictField(),
            help_text="Per label: key, kind, status (agreed, disagreed or not_compared), agreed (true only when the "
            "status is agreed), metrics, reasons (in the request's language), reader_pairs (per pair of readers "
            '"a~b": agreed or disagreed; a pair absent had nothing to compare), and matching for lesion labels',
        )
    )
    def get_labels(self, result: AgreementResult) -> list[Any]:
        entries = result.labels if isinstance(result.labels, list) else []
        return [
            {**{k: v for k, v in entry.items() if k != "messages"}, "reasons": rendered_reasons(entry)}
            if isinstance(entry, dict)
            else entry
            for entry in entries
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_reasons(self, result: AgreementResult) -> list[str]:
        entries = [e for e in (result.labels if isinstance(result.labels, list) else []) if isinstance(e, dict)]
        if not entries or not all(isinstance(e.get("messages"), list) for e in entries):
            return [str(r) for r in result.reasons] if isinstance(result.reasons, list) else []
        reasons = [reason for entry in entries for reason in rendered_reasons(entry)]
        if self.get_status(result) == NOT_COMPARED:
            reasons.append(render({"msgid": NOTHING_COMPARED, "params": {}}))
        return reasons

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
    description = serializers.SerializerMethodField(
        help_text='In words, in the request\'s language: "first reading", "AI proposal", "expert correction by expert1"'
    )

    def get_description(self, reading: dict[str, Any]) -> str:
        said = reading.get("description_message")
        return render(said) if is_message(said) else str(reading.get("description", ""))


class VoteOutput(serializers.ModelSerializer[PanelVote]):
    expert = serializers.CharField(source="expert.username", read_only=True)
    reading = VotedReadingOutput(read_only=True, allow_null=True, help_text="What the vote is for")

    class Meta:
        model = PanelVote
        fields = ["id", "expert", "voted_for", "corrected", "reading", "rationale", "created_at"]
