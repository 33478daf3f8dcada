from __future__ import annotations

from django.db.models import Q, QuerySet

from annotation.models import Membership, Role
from config.types import AnyUser, user_pk
from jobs.models import Job


def jobs_visible_to(user: AnyUser) -> QuerySet[Job]:
    """Staff see every job; a project's managers see its jobs; anyone sees the jobs they started."""
    if not user.is_authenticated:
        return Job.objects.none()
    if user.is_staff:
        return Job.objects.all()
    managed = Membership.objects.filter(user_id=user_pk(user), role=Role.MANAGER).values("project_id")
    return Job.objects.filter(Q(project_id__in=managed) | Q(created_by_id=user_pk(user)))


def job_can_manage(user: AnyUser, job: Job) -> bool:
    if user.is_staff:
        return True
    if job.project_id is None:
        return False
    return Membership.objects.filter(user_id=user_pk(user), project_id=job.project_id, role=Role.MANAGER).exists()
