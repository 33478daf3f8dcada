from django.contrib import admin

from datasets.models import Export, LabelImport, ProjectKey


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin[Export]):
    list_display = ["id", "project", "version", "created_by", "created_at", "built_at", "file_size"]
    readonly_fields = [f.name for f in Export._meta.fields]


@admin.register(ProjectKey)
class ProjectKeyAdmin(admin.ModelAdmin[ProjectKey]):
    list_display = ["id", "project", "created_at"]
    # The secret is never shown: whoever reads it can re-identify pseudonyms by trying patient ids.
    exclude = ["secret"]
    readonly_fields = ["project", "created_at"]


@admin.register(LabelImport)
class LabelImportAdmin(admin.ModelAdmin[LabelImport]):
    list_display = ["id", "project", "case", "revision", "imported_by", "imported_at"]
    readonly_fields = [f.name for f in LabelImport._meta.fields]
