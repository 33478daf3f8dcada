from django.contrib import admin

from imaging.models import DicomSource, Instance, Series, Study


@admin.register(DicomSource)
class DicomSourceAdmin(admin.ModelAdmin[DicomSource]):
    list_display = ["name", "kind", "base_url", "timeout_seconds"]


class SeriesInline(admin.TabularInline[Series, Study]):
    model = Series
    fields = ["series_instance_uid", "modality", "series_number", "number_of_instances", "quality"]
    readonly_fields = ["series_instance_uid", "modality", "series_number", "number_of_instances", "quality"]
    extra = 0
    show_change_link = True


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin[Study]):
    list_display = ["study_instance_uid", "patient_id", "study_date", "modalities_in_study", "number_of_instances"]
    search_fields = ["study_instance_uid", "patient_id", "patient_name", "accession_number"]
    list_filter = ["modalities_in_study", "source"]
    inlines = [SeriesInline]


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin[Series]):
    list_display = ["series_instance_uid", "study", "modality", "number_of_slices", "quality"]
    list_filter = ["quality", "modality"]
    search_fields = ["series_instance_uid", "study__study_instance_uid"]
    raw_id_fields = ["study"]


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin[Instance]):
    list_display = ["sop_instance_uid", "series", "instance_number", "transfer_syntax_uid", "is_decodable"]
    search_fields = ["sop_instance_uid"]
    raw_id_fields = ["series"]
    # The index mirrors files: edit nothing by hand.
    readonly_fields = [f.name for f in Instance._meta.fields]
