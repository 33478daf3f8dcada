"""Reads about projects and memberships that other code reuses."""

from __future__ import annotations

from django.db.models import QuerySet

from annotation.models import Membership, Project
from config.types import AnyUser


def projects_for_user(user: AnyUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if getattr(user, "is_superuser", False):
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def user_roles(user: AnyUser, project: Project) -> set[str]:
    if not user.is_authenticated:
        return set()
    return set(Membership.objects.filter(project=project, user_id=user.pk).values_list("role", flat=True))
