"""Projects, members and roles, label schemas, cases, reading assignments, and annotations made of
immutable revisions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from imaging.models import DicomSource, ImageStore, Study


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator (first reader)"
    REVIEWER = "reviewer", "Reviewer (second reader)"
    EXPERT = "expert", "Expert (panel)"
    MANAGER = "manager", "Project manager"


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Where the project's images live: null means the local store; otherwise DICOMweb calls for the
    # project's studies are proxied to this upstream PACS.
    dicom_source = models.ForeignKey(
        DicomSource, null=True, blank=True, on_delete=models.PROTECT, related_name="projects"
    )
    # Other PACS this project's managers may pull and import studies from (its own dicom_source always). Set by
    # an administrator: a PACS may hold another project's studies, so reaching it is a grant, not a default.
    import_sources = models.ManyToManyField(
        DicomSource,
        blank=True,
        related_name="importing_projects",
        help_text="PACS whose studies this project's managers may pull or import (besides its own source)",
    )
    # The project's own DICOM store: its studies are exactly the studies of this store (see ImageStore).
    image_store = models.OneToOneField(ImageStore, on_delete=models.PROTECT, related_name="project", editable=False)
    # Readers per case: one first reader plus (readers_per_case - 1) second readers.
    readers_per_case = models.PositiveSmallIntegerField(default=2)
    # The imaging modality the project reads (CT, MR, ...): a description for people and the PACS search's
    # default filter, not a constraint on what may be stored.
    modality = models.CharField(max_length=16, blank=True, default="")
    # Archived projects stay whole (cases, labels, exports) but leave the members' project list; set and
    # cleared by annotation.services.project_set_archived.
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Every project has its store from the start, however it is created (API, admin, factories, seed).
        if self.image_store_id is None:
            self.image_store = ImageStore.objects.create(kind=ImageStore.Kind.PROJECT, name=self.slug)
        super().save(*args, **kwargs)


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user", "role"], name="unique_membership_role")]
        ordering = ["project_id", "user_id", "role"]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} in {self.project}"


class LabelSchema(models.Model):
    """One version of a project's label schema. Versions are never edited: a change is a new version,
    and every annotation revision records the version it was made under."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="schemas")
    version = models.PositiveIntegerField()
    definition = models.JSONField(help_text="Normalised schema: name, description, labels")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="unique_schema_version")]
        ordering = ["project_id", "-version"]

    def __str__(self) -> str:
        return f"{self.project.slug} schema v{self.version}"


class CaseStatus(models.TextChoices):
    """Owned by the review workflow (review app); the annotation app only reads it."""

    AWAITING_FIRST_READ = "awaiting_first_read", "Awaiting first read"
    SINGLE_READ = "single_read", "Final after a single reading (not sampled for a second)"
    AWAITING_CROSS_VERIFICATION = "awaiting_cross_verification", "Awaiting cross-verification"
    CHECKING_AGREEMENT = "checking_agreement", "Agreement being computed"
    AGREED = "agreed", "Agreed"
    DISPUTED = "disputed", "Disputed"
    IN_PANEL = "in_panel", "In panel"
    ADJUDICATED = "adjudicated", "Adjudicated"


class Case(models.Model):
    """A study (or one series of it) to be read in a project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="cases")
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="cases")
    series = models.ForeignKey("imaging.Series", null=True, blank=True, on_delete=models.PROTECT, related_name="cases")
    # Higher first. Set by managers or by active learning; priority_source says which.
    priority = models.FloatField(default=0.0, db_index=True)
    priority_source = models.CharField(max_length=32, default="default")
    status = models.CharField(
        max_length=32, choices=CaseStatus.choices, default=CaseStatus.AWAITING_FIRST_READ, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "study"], condition=models.Q(series__isnull=True), name="unique_study_case"
            ),
            models.UniqueConstraint(fields=["project", "study", "series"], name="unique_series_case"),
        ]
        indexes = [models.Index(fields=["project", "status", "-priority", "created_at"], name="case_worklist_idx")]
        ordering = ["-priority", "created_at", "pk"]

    def __str__(self) -> str:
        return f"case {self.pk} ({self.study.study_instance_uid})"


class ReadingRole(models.TextChoices):
    FIRST_READER = "first_reader", "First reader"
    SECOND_READER = "second_reader", "Second reader"
    PANEL_MEMBER = "panel_member", "Panel member"


# Which project role may take which reading role.
READING_ROLE_MEMBERSHIP = {
    ReadingRole.FIRST_READER: Role.ANNOTATOR,
    ReadingRole.SECOND_READER: Role.REVIEWER,
    ReadingRole.PANEL_MEMBER: Role.EXPERT,
}


class Assignment(models.Model):
    """A reader bound to one slot of a case in a reading role. The unique slot makes claiming atomic:
    two readers pressing "next" at once cannot both insert the same (case, role, slot)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUBMITTED = "submitted", "Submitted"
        RELEASED = "released", "Released"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments")
    role = models.CharField(max_length=16, choices=ReadingRole.choices)
    slot = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    how = models.CharField(max_length=16, default="claimed", help_text="claimed, automatic or manual")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "role", "slot"], name="unique_assignment_slot"),
            # Never the same person twice on one case, so never an author as their own reviewer.
            models.UniqueConstraint(fields=["case", "user"], name="unique_reader_per_case"),
        ]
        ordering = ["case_id", "role", "slot"]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} on {self.case_id}"


class AssignmentEvent(models.Model):
    """Who put a reader on a case's reading slot, or moved it to another reader, and when: the assignment row
    holds only its present reader, so without this a reassignment left no trace of who read before. Never
    updated (a database trigger refuses it)."""

    class Action(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        REASSIGNED = "reassigned", "Reassigned"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="assignment_events")
    role = models.CharField(max_length=16, choices=ReadingRole.choices)
    slot = models.PositiveSmallIntegerField()
    action = models.CharField(max_length=16, choices=Action.choices)
    from_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    how = models.CharField(max_length=16, help_text="manual or automatic, as the assignment's own field")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["case_id", "created_at", "pk"]

    def __str__(self) -> str:
        return f"case {self.case_id} {self.role}[{self.slot}]: {self.from_user_id} -> {self.to_user_id}"


class Annotation(models.Model):
    """One reader's reading of a case in one role: a chain of immutable revisions."""

    class Origin(models.TextChoices):
        HUMAN = "human", "Human reader"
        AI = "ai", "AI model"
        # Brought in from a DICOM SEG or RTSTRUCT made elsewhere (datasets.label_import; provenance there).
        IMPORTED = "imported", "Imported from DICOM"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="annotations")
    # Null for an AI proposal; role "ai" then, and model_version says which model.
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    role = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    current_revision = models.ForeignKey(
        "AnnotationRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revision_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "reader", "role"], name="unique_annotation_per_reader_role"),
            models.UniqueConstraint(
                fields=["case", "role"], condition=models.Q(reader__isnull=True), name="unique_machine_annotation"
            ),
        ]
        ordering = ["case_id", "role", "pk"]

    def __str__(self) -> str:
        return f"annotation {self.pk} of case {self.case_id} ({self.role})"


class MaskFile(models.Model):
    """A label mask, stored once per content (gzip of the C-order array) and shared by revisions."""

    sha256 = models.CharField(max_length=64, unique=True, help_text="Of the raw array bytes")
    file = models.CharField(max_length=512)
    shape = models.JSONField()
    dtype = models.CharField(max_length=8)
    stored_bytes = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"mask {self.sha256[:12]} {self.shape} {self.dtype}"


class AnnotationRevision(models.Model):
    """Every label value of a reading at one point in time. Never updated after it is written."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    origin = models.CharField(max_length=8, choices=Annotation.Origin.choices, default=Annotation.Origin.HUMAN)
    model_version = models.CharField(max_length=128, blank=True)
    schema = models.ForeignKey(LabelSchema, on_delete=models.PROTECT, related_name="revisions")
    items = models.JSONField(default=list, help_text="Validated label items; masks reference MaskFile by sha256")
    masks = models.ManyToManyField(MaskFile, blank=True, related_name="revisions")
    problems = models.JSONField(
        default=list,
        blank=True,
        help_text="A draft's answers that break the schema's rules, kept as typed: [{field, label, region, reason}]",
    )
    is_submission = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["annotation", "number"], name="unique_revision_number")]
        ordering = ["annotation_id", "number"]

    def __str__(self) -> str:
        return f"revision {self.number} of annotation {self.annotation_id}"
