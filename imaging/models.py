"""The DICOM index: image stores, and the studies, series and instances in each, where each file lives, and
what was checked at ingest."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class DicomSource(models.Model):
    """Where a study's pixels come from: the local store, or an upstream DICOMweb PACS.

    The upstream URL and credentials are configuration set by an administrator; requests never
    name a URL, so the proxy cannot be pointed at an arbitrary host.
    """

    class Kind(models.TextChoices):
        LOCAL = "local", "Local store"
        DICOMWEB = "dicomweb", "Upstream DICOMweb PACS"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LOCAL)
    base_url = models.URLField(
        blank=True, help_text="DICOMweb root of the upstream PACS, e.g. http://pacs:8042/dicom-web"
    )
    username = models.CharField(max_length=128, blank=True)
    password = models.CharField(max_length=256, blank=True)
    timeout_seconds = models.FloatField(default=30.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_upstream(self) -> bool:
        return self.kind == self.Kind.DICOMWEB


class ImageStore(models.Model):
    """A DICOM store: the unit of isolation, as a DICOM store of a cloud healthcare API or an archive AE.

    Every study lives in exactly one store, and every ingest writes into one store only. The same Study,
    Series and SOP Instance UIDs may exist in two stores as two separate index entries (the bytes of an
    identical file are shared on disk): what one store holds never decides what happens in another, so an
    ingest can neither reach, change nor reveal another store's study. Each project has its own store; the
    platform store holds what an administrator stores outside any project.
    """

    class Kind(models.TextChoices):
        PROJECT = "project", "A project's store"
        PLATFORM = "platform", "Stored by an administrator outside any project"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PROJECT)
    name = models.CharField(max_length=128, help_text="For people; the project's slug when it was created")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=models.Q(kind="platform"), name="one_platform_store")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class Study(models.Model):
    store = models.ForeignKey(ImageStore, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    # Null source: the files are in the local store. Otherwise the index rows mirror an upstream PACS.
    source = models.ForeignKey(DicomSource, null=True, blank=True, on_delete=models.PROTECT, related_name="studies")
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    patient_name = models.CharField(max_length=324, blank=True, db_index=True)
    patient_birth_date = models.CharField(max_length=8, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    study_date = models.CharField(max_length=8, blank=True, db_index=True, help_text="DICOM DA, YYYYMMDD")
    study_time = models.CharField(max_length=16, blank=True)
    accession_number = models.CharField(max_length=16, blank=True, db_index=True)
    study_id = models.CharField(max_length=16, blank=True)
    study_description = models.CharField(max_length=64, blank=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    modalities_in_study = models.CharField(max_length=128, blank=True, help_text="Backslash-separated, as in DICOM")
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)
    # Upstream studies only: when the proxy cache (imaging.services.framecache) last fetched this study's
    # instances from the PACS; null when none of them is cached. The least recently prefetched goes first.
    cache_prefetched_at = models.DateTimeField(null=True, blank=True, db_index=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-study_date", "study_instance_uid"]
        verbose_name_plural = "studies"
        constraints = [models.UniqueConstraint(fields=["store", "study_instance_uid"], name="unique_study_per_store")]

    def __str__(self) -> str:
        return self.study_instance_uid


class Series(models.Model):
    class Quality(models.TextChoices):
        PENDING = "pending", "Not checked yet"
        OK = "ok", "Passed"
        WARNING = "warning", "Passed with warnings"
        FAILED = "failed", "Failed: not used until resolved"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    # The study's store, kept here so that a Series Instance UID is unique within a store at the database level.
    store = models.ForeignKey(ImageStore, on_delete=models.PROTECT, related_name="+")
    series_instance_uid = models.CharField(max_length=64, db_index=True)
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=64, blank=True)
    body_part_examined = models.CharField(max_length=16, blank=True)
    frame_of_reference_uid = models.CharField(max_length=64, blank=True)
    number_of_instances = models.PositiveIntegerField(default=0)
    # Geometry, derived from the instances at ingest. Spacing and positions are in millimetres.
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_slices = models.PositiveIntegerField(default=0, help_text="Instances times frames")
    pixel_spacing = models.JSONField(null=True, blank=True, help_text="[row spacing, column spacing] in mm")
    slice_thickness = models.FloatField(null=True, blank=True)
    slice_spacing = models.FloatField(null=True, blank=True, help_text="Median distance between slices, mm")
    image_orientation = models.JSONField(null=True, blank=True, help_text="ImageOrientationPatient, 6 cosines")
    slice_positions = models.JSONField(default=list, blank=True, help_text="Sorted positions along the normal, mm")
    is_multiframe = models.BooleanField(default=False)
    quality = models.CharField(max_length=16, choices=Quality.choices, default=Quality.PENDING, db_index=True)
    quality_checks = models.JSONField(default=list, blank=True)
    quality_checked_at = models.DateTimeField(null=True, blank=True)
    # What the checks need of the instances counted so far (imaging.quality.summary_add), so that adding a file
    # updates the series without reading its other instances; empty until first summarised.
    quality_summary = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "series_number", "series_instance_uid"]
        verbose_name_plural = "series"
        constraints = [models.UniqueConstraint(fields=["store", "series_instance_uid"], name="unique_series_per_store")]

    def __str__(self) -> str:
        return self.series_instance_uid

    @property
    def is_flagged(self) -> bool:
        return self.quality == self.Quality.FAILED


class Instance(models.Model):
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    # The series' store: a SOP Instance UID is unique within a store, so ingest is idempotent per store.
    store = models.ForeignKey(ImageStore, on_delete=models.PROTECT, related_name="+")
    sop_instance_uid = models.CharField(max_length=64, db_index=True)
    sop_class_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    samples_per_pixel = models.PositiveSmallIntegerField(null=True, blank=True)
    bits_allocated = models.PositiveSmallIntegerField(null=True, blank=True)
    image_position = models.JSONField(null=True, blank=True)
    image_orientation = models.JSONField(null=True, blank=True)
    pixel_spacing = models.JSONField(null=True, blank=True)
    has_pixel_data = models.BooleanField(default=False)
    is_decodable = models.BooleanField(default=True, help_text="False when no installed codec reads the pixel data")
    is_encapsulated = models.BooleanField(default=False)
    # Byte offset and length of the Pixel Data value in the stored file, so that frames of
    # uncompressed instances are served with one seek and no DICOM parsing.
    pixel_data_offset = models.BigIntegerField(null=True, blank=True)
    pixel_data_length = models.BigIntegerField(null=True, blank=True)
    # Blank for an upstream study's instance, unless the proxy cache holds a copy (imaging.services.framecache).
    file = models.CharField(max_length=512, blank=True, help_text="Path in the default storage; blank when upstream")
    file_size = models.BigIntegerField(default=0)
    # Indexed: an identical file already on disk (in any store) is referenced, not written again.
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="DICOM JSON of the header, without bulk data")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["series_id", "instance_number", "sop_instance_uid"]
        constraints = [models.UniqueConstraint(fields=["store", "sop_instance_uid"], name="unique_instance_per_store")]

    def __str__(self) -> str:
        return self.sop_instance_uid

    @property
    def frame_length(self) -> int:
        """Bytes of one uncompressed frame."""
        bits = self.bits_allocated or 8
        return int((self.rows or 0) * (self.columns or 0) * (self.samples_per_pixel or 1) * bits // 8)


class StudyShare(models.Model):
    """Append-only (a database trigger refuses changes): a study copied from one store into another by an
    explicit share, the only way a study comes to be in two projects. The copy is a separate index entry
    that references the same files."""

    study_instance_uid = models.CharField(max_length=64)
    from_store = models.ForeignKey(ImageStore, on_delete=models.PROTECT, related_name="shares_out")
    to_store = models.ForeignKey(ImageStore, on_delete=models.PROTECT, related_name="shares_in")
    copy = models.ForeignKey(Study, null=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    instances = models.PositiveIntegerField(default=0)
    shared_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.study_instance_uid}: store {self.from_store_id} -> {self.to_store_id}"
