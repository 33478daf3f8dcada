from django.contrib import admin
from django.http import HttpRequest

from imaging.models import DicomSource, ImageStore, Instance, Series, Study, StudyShare


@admin.register(DicomSource)
class DicomSourceAdmin(admin.ModelAdmin[DicomSource]):
    list_display = ["name", "kind", "base_url", "timeout_seconds"]


class SeriesInline(admin.TabularInline[Series, Study]):
    model = Series
    fields = ["series_instance_uid", "modality", "series_number", "number_of_instances", "quality"]
    readonly_fields = ["series_instance_uid", "modality", "series_number", "number_of_instances", "quality"]
    extra = 0
    show_change_link = True


@admin.register(ImageStore)
class ImageStoreAdmin(admin.ModelAdmin[ImageStore]):
    """Stores are made with their project (or, once, the platform store): nothing to add or edit by hand."""

    list_display = ["pk", "name", "kind", "created_at"]
    list_filter = ["kind"]
    readonly_fields = ["name", "kind", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ImageStore | None = None) -> bool:
        return False


@admin.register(StudyShare)
class StudyShareAdmin(admin.ModelAdmin[StudyShare]):
    """The share log is append-only (a database trigger refuses changes): read it here, share through the API."""

    list_display = ["study_instance_uid", "from_store", "to_store", "instances", "shared_by", "created_at"]
    search_fields = ["study_instance_uid"]
    readonly_fields = [
        "study_instance_uid",
        "from_store",
        "to_store",
        "copy",
        "instances",
        "shared_by",
        "reason",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StudyShare | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StudyShare | None = None) -> bool:
        return False


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin[Study]):
    list_display = ["study_instance_uid", "store", "patient_id", "study_date", "modalities_in_study"]
    search_fields = ["study_instance_uid", "patient_id", "patient_name", "accession_number"]
    list_filter = ["store", "modalities_in_study", "source"]
    # A study changes store only through a share (logged), never by editing it here.
    readonly_fields = ["store", "study_instance_uid"]
    inlines = [SeriesInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # studies come in through ingest, into a store


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin[Series]):
    list_display = ["series_instance_uid", "study", "modality", "number_of_slices", "quality"]
    list_filter = ["quality", "modality"]
    search_fields = ["series_instance_uid", "study__study_instance_uid"]
    raw_id_fields = ["study"]
    readonly_fields = ["store", "study", "series_instance_uid"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin[Instance]):
    list_display = ["sop_instance_uid", "series", "instance_number", "transfer_syntax_uid", "is_decodable"]
    search_fields = ["sop_instance_uid"]
    raw_id_fields = ["series"]
    # The index mirrors files: edit nothing by hand.
    readonly_fields = [f.name for f in Instance._meta.fields]
