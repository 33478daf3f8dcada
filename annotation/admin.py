from django.contrib import admin

from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    AssignmentEvent,
    Case,
    LabelSchema,
    MaskFile,
    Membership,
    Project,
)


class MembershipInline(admin.TabularInline[Membership, Project]):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    list_display = ["slug", "name", "readers_per_case", "dicom_source", "created_at"]
    search_fields = ["slug", "name"]
    filter_horizontal = ["import_sources"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["project", "user", "role"]
    list_filter = ["role", "project"]
    raw_id_fields = ["user"]


@admin.register(LabelSchema)
class LabelSchemaAdmin(admin.ModelAdmin[LabelSchema]):
    list_display = ["project", "version", "created_by", "created_at"]
    # A schema version is immutable once saved: change it by adding a version through the API.
    readonly_fields = ["project", "version", "definition", "created_by", "created_at"]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin[Case]):
    list_display = ["pk", "project", "study", "status", "priority", "created_at"]
    list_filter = ["status", "project"]
    raw_id_fields = ["study", "series"]
    readonly_fields = ["status"]  # moved only by the review workflow


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin[Assignment]):
    list_display = ["case", "user", "role", "slot", "status", "how"]
    list_filter = ["role", "status"]
    raw_id_fields = ["case", "user", "assigned_by"]


@admin.register(AssignmentEvent)
class AssignmentEventAdmin(admin.ModelAdmin[AssignmentEvent]):
    """Read-only: the trail is append-only (a database trigger refuses changes)."""

    list_display = ["case", "role", "slot", "action", "from_user", "to_user", "actor", "created_at"]
    list_filter = ["action", "role"]
    readonly_fields = [f.name for f in AssignmentEvent._meta.fields]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin[Annotation]):
    list_display = ["pk", "case", "reader", "role", "status", "revision_count"]
    list_filter = ["role", "status"]
    readonly_fields = ["case", "reader", "role", "current_revision", "revision_count", "submitted_at"]


@admin.register(AnnotationRevision)
class AnnotationRevisionAdmin(admin.ModelAdmin[AnnotationRevision]):
    list_display = ["annotation", "number", "author", "origin", "model_version", "is_submission", "created_at"]
    # Revisions are immutable: the admin shows them and changes nothing.
    readonly_fields = [f.name for f in AnnotationRevision._meta.fields]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(MaskFile)
class MaskFileAdmin(admin.ModelAdmin[MaskFile]):
    list_display = ["sha256", "shape", "dtype", "stored_bytes", "created_at"]
    readonly_fields = [f.name for f in MaskFile._meta.fields]
