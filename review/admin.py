from django.contrib import admin

from review.models import CaseEvent


@admin.register(CaseEvent)
class CaseEventAdmin(admin.ModelAdmin[CaseEvent]):
    list_display = ["case", "from_status", "to_status", "actor", "created_at"]
    list_filter = ["to_status"]
    readonly_fields = [f.name for f in CaseEvent._meta.fields]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
