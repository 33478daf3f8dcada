from __future__ import annotations

from typing import Any

from django.utils import translation

from accounts.models import Profile
from annotation.models import Membership
from config.types import AnyUser, User, user_pk


def saved_language(user: AnyUser) -> str:
    """The user's saved language, or "" when none is saved (or the user is anonymous)."""
    if not user.is_authenticated:
        return ""
    profile = Profile.objects.filter(user__pk=user_pk(user)).only("language").first()
    return profile.language if profile is not None else ""


def me_for(user: User, *, current_language: str | None = None) -> dict[str, Any]:
    """Who the user is, their language and their projects with their role(s) in each."""
    projects: dict[str, dict[str, Any]] = {}
    memberships = Membership.objects.filter(user=user).select_related("project").order_by("project__name", "role")
    for membership in memberships:
        entry = projects.setdefault(
            membership.project.slug, {"slug": membership.project.slug, "name": membership.project.name, "roles": []}
        )
        entry["roles"].append(membership.role)
    language = saved_language(user) or current_language or translation.get_language() or "en"
    return {
        "username": user.get_username(),
        "is_staff": bool(user.is_staff),
        "language": language,
        "language_saved": bool(saved_language(user)),
        "projects": list(projects.values()),
    }
