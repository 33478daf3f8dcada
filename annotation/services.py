"""Writes for projects and memberships."""

from __future__ import annotations

from django.db import transaction

from annotation.models import Membership, Project, ProjectStudy
from config.types import User
from imaging.models import Study


@transaction.atomic
def project_link_studies(*, project: Project, study_uids: list[str]) -> int:
    """Add studies to a project's data set; already linked ones are left as they are. Returns how many were new."""
    studies = list(Study.objects.filter(study_instance_uid__in=study_uids).values_list("pk", flat=True))
    existing = set(
        ProjectStudy.objects.filter(project=project, study_id__in=studies).values_list("study_id", flat=True)
    )
    new = [ProjectStudy(project=project, study_id=pk) for pk in studies if pk not in existing]
    ProjectStudy.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


@transaction.atomic
def membership_grant(*, project: Project, user: User, role: str) -> Membership:
    membership, _ = Membership.objects.get_or_create(project=project, user=user, role=role)
    return membership
