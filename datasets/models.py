"""Dataset snapshots: what was selected (fixed when the export is requested) and what the build produced."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ProjectKey(models.Model):
    """The project's pseudonymisation secret: the same patient gets the same pseudonym (and date shift) in
    every snapshot of the project, and nobody without the key can compute it from the original identifier."""

    project = models.OneToOneField("annotation.Project", on_delete=models.CASCADE, related_name="pseudonym_key")
    secret = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"pseudonymisation key of project {self.project_id}"


class LabelImport(models.Model):
    """Where an imported reading came from (a DICOM SEG or RTSTRUCT): who brought it in, when, from where,
    and which object it was (SOP Instance UID, SHA-256 of its bytes, manufacturer, content label). Written
    once with the revision it produced, never changed."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="label_imports")
    case = models.ForeignKey("annotation.Case", on_delete=models.CASCADE, related_name="+")
    revision = models.OneToOneField(
        "annotation.AnnotationRevision", on_delete=models.CASCADE, related_name="label_import"
    )
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField(auto_now_add=True)
    provenance = models.JSONField(default=dict)

    class Meta:
        ordering = ["project_id", "-imported_at", "-pk"]

    def __str__(self) -> str:
        return f"label import {self.pk} of case {self.case_id}"


class Export(models.Model):
    """One immutable, versioned snapshot of a project. The selection (cases and the revision of each label)
    is fixed when it is requested; the build only fills in the result fields, once, in one transaction."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="exports")
    version = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What was asked: filters, formats, split options, de-identification.
    filters = models.JSONField(default=dict)
    formats = models.JSONField(default=list)
    split = models.JSONField(default=dict, help_text="fractions, seed, stratify_by")
    deidentify = models.BooleanField(default=True)
    # What was chosen: one row per case (case id, revision id of its final label, QA level), and the schema.
    selection = models.JSONField(default=list)
    schema_version = models.PositiveIntegerField()
    # Salt of this snapshot's UID remapping: fixed here so that a rebuild gives the same bytes.
    uid_salt = models.CharField(max_length=64)
    # Filled by the build.
    file = models.CharField(max_length=512, blank=True)
    file_size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(default=dict, blank=True, help_text="path -> {sha256, bytes}")
    left_out = models.JSONField(default=list, blank=True, help_text="[{case, format, reason}]")
    deid_report = models.JSONField(default=dict, blank=True)
    split_counts = models.JSONField(default=dict, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="unique_export_version")]
        ordering = ["project_id", "-version"]

    def __str__(self) -> str:
        return f"export v{self.version} of project {self.project_id}"
