"""Output shapes of the manager dashboards (documentation for the OpenAPI schema; the data are plain dicts)."""

from __future__ import annotations

from rest_framework import serializers


class KappaOutput(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    weights = serializers.CharField(help_text="none or linear (ordinal labels)")
    n = serializers.IntegerField()
    note = serializers.CharField(allow_blank=True, help_text="Why the value is null, when it is")


class HistogramOutput(serializers.Serializer):
    edges = serializers.ListField(
        child=serializers.FloatField(), help_text="Bin edges over [0, 1]: one more than counts; the last bin holds 1.0"
    )
    counts = serializers.ListField(child=serializers.IntegerField(), help_text="Scores per bin")


class DiceDistributionOutput(serializers.Serializer):
    """Dice scores of every reader pair, series and segment of the evaluated cases, summarised (not listed)."""

    n = serializers.IntegerField(help_text="Dice scores counted")
    median = serializers.FloatField(allow_null=True)
    q1 = serializers.FloatField(allow_null=True)
    q3 = serializers.FloatField(allow_null=True)
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    histogram = HistogramOutput()
    note = serializers.CharField(allow_blank=True)


class LabelFiguresOutput(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField()
    level = serializers.CharField(allow_blank=True)
    n_cases = serializers.IntegerField(help_text="Evaluated cases with this label in their agreement result")
    n_compared = serializers.IntegerField(help_text="Of those, the cases where the label was compared")
    n_agreed = serializers.IntegerField(help_text="Of those compared, the cases where it agreed")
    n_not_compared = serializers.IntegerField(
        help_text="Cases where it could not be compared (unanswered, no lesion): counted apart, never as agreed"
    )
    percent_agreement = serializers.FloatField(
        allow_null=True, help_text="n_agreed / n_compared; an attribute of a lesion one reader missed is disagreed"
    )
    note = serializers.CharField(allow_blank=True)
    kappa = KappaOutput(allow_null=True, help_text="Categorical study-level labels: first vs second reader")
    dice = DiceDistributionOutput(allow_null=True, help_text="Mask labels")


class ProjectDashboardOutput(serializers.Serializer):
    project = serializers.CharField()
    cases = serializers.IntegerField()
    evaluated = serializers.IntegerField()
    disputed = serializers.IntegerField()
    dispute_rate = serializers.FloatField(allow_null=True)
    adjudicated = serializers.IntegerField()
    overturned = serializers.IntegerField()
    panel_overturn_rate = serializers.FloatField(allow_null=True)
    status_counts = serializers.DictField(child=serializers.IntegerField())
    labels = LabelFiguresOutput(many=True)


class PeerAgreementOutput(serializers.Serializer):
    rate = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(help_text="Label comparisons counted")


class TruthAgreementOutput(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField()
    n = serializers.IntegerField()
    percent_agreement = serializers.FloatField(allow_null=True)
    kappa = KappaOutput()
    positive = serializers.CharField(allow_null=True)
    sensitivity = serializers.FloatField(allow_null=True)
    specificity = serializers.FloatField(allow_null=True)
    note = serializers.CharField(allow_blank=True)


class WeekOutput(serializers.Serializer):
    week = serializers.CharField(help_text="ISO week, e.g. 2026-W47")
    cases_read = serializers.IntegerField()
    agreement_rate = serializers.FloatField(allow_null=True)


class ReaderStatsOutput(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    cases_read = serializers.IntegerField()
    median_minutes = serializers.FloatField(allow_null=True)
    peer_agreement = PeerAgreementOutput()
    truth = TruthAgreementOutput(many=True)
    weekly = WeekOutput(many=True)


class PairLabelOutput(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField()
    categories = serializers.ListField(child=serializers.CharField())
    matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="Rows: reader_a's answers, columns: reader_b's, in the order of categories",
    )
    n = serializers.IntegerField()
    kappa = serializers.FloatField(allow_null=True)
    weights = serializers.CharField()
    note = serializers.CharField(allow_blank=True)


class ReaderPairOutput(serializers.Serializer):
    reader_a = serializers.CharField()
    reader_b = serializers.CharField()
    cases = serializers.IntegerField()
    labels = PairLabelOutput(many=True)
