from django.contrib import admin

from review.models import (
    AgreementResult,
    CaseEvent,
    CaseSummary,
    Correction,
    GoldCase,
    GoldScore,
    PanelVote,
    ReviewPolicy,
)


@admin.register(CaseEvent)
class CaseEventAdmin(admin.ModelAdmin[CaseEvent]):
    list_display = ["case", "from_status", "to_status", "actor", "created_at"]
    list_filter = ["to_status"]
    readonly_fields = [f.name for f in CaseEvent._meta.fields]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(ReviewPolicy)
class ReviewPolicyAdmin(admin.ModelAdmin[ReviewPolicy]):
    list_display = ["project", "mode", "second_read_share", "mask_dice", "box_iou", "panel_size", "quorum", "chair"]
    raw_id_fields = ["chair"]


@admin.register(AgreementResult)
class AgreementResultAdmin(admin.ModelAdmin[AgreementResult]):
    list_display = ["case", "agreed", "created_at"]
    list_filter = ["agreed"]
    readonly_fields = ["case", "agreed", "labels", "reasons", "created_at"]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(PanelVote)
class PanelVoteAdmin(admin.ModelAdmin[PanelVote]):
    list_display = ["case", "expert", "voted_for", "corrected", "created_at"]
    readonly_fields = ["case", "expert", "voted_for", "corrected", "rationale", "created_at"]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(CaseSummary)
class CaseSummaryAdmin(admin.ModelAdmin[CaseSummary]):
    """Derived data (rebuild with manage.py rebuild_dashboards): readable, never edited by hand."""

    list_display = ["case", "project", "updated_at"]
    readonly_fields = ["case", "project", "data", "updated_at"]
    raw_id_fields = ["case", "project"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the review services only (corrections, gold cases and their scores): readable, never edited here."""

    def get_readonly_fields(self, request: object, obj: object = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Correction)
class CorrectionAdmin(_ReadOnlyAdmin):
    list_display = ["case", "expert", "seed", "submitted_revision", "created_at", "submitted_at"]
    raw_id_fields = ["case", "expert", "annotation", "seed", "submitted_revision"]


@admin.register(GoldCase)
class GoldCaseAdmin(_ReadOnlyAdmin):
    list_display = ["case", "source", "marked_by", "created_at"]
    raw_id_fields = ["case", "reference", "marked_by"]


@admin.register(GoldScore)
class GoldScoreAdmin(_ReadOnlyAdmin):
    list_display = ["gold_case", "reader", "dice", "created_at"]
    raw_id_fields = ["gold_case", "reader", "revision"]
