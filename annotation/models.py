"""Projects and who works in them. The annotation issue adds schemas, cases and annotations here."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from imaging.models import DicomSource, Study


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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


class ProjectStudy(models.Model):
    """A study that belongs to a project's data; DICOMweb shows a member exactly these studies."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="project_studies")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="project_links")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "study"], name="unique_project_study")]
        verbose_name_plural = "project studies"

    def __str__(self) -> str:
        return f"{self.study} in {self.project}"
