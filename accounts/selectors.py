from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import ApiToken, Profile, api_token_hash
from annotation.models import Membership
from config.errors import NotFoundError
from config.types import AnyUser, User, user_pk
from imaging.ohif.services import project_viewer_url


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
            membership.project.slug,
            {
                "slug": membership.project.slug,
                "name": membership.project.name,
                "roles": [],
                "ohif_url": project_viewer_url(membership.project.slug),
            },
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


def api_tokens_for(user: User) -> QuerySet[ApiToken]:
    """The user's tokens, newest first, revoked and expired ones included."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def active_api_tokens_for(user: User, *, now: datetime | None = None) -> QuerySet[ApiToken]:
    now = now or timezone.now()
    return (
        api_tokens_for(user).filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    )


def api_token_of(user: User, token_id: int) -> ApiToken:
    """One of the user's own tokens; another user's token is 404, the same answer as an unknown id."""
    token = api_tokens_for(user).filter(pk=token_id).first()
    if token is None:
        raise NotFoundError(_("You have no API token %(id)s.") % {"id": token_id})
    return token


def api_token_by_secret(secret: str) -> ApiToken | None:
    """The token whose secret this is, with its user, found by the secret's SHA-256 (a unique index):
    comparing hashes leaks nothing useful about the secret through timing."""
    return ApiToken.objects.select_related("user").filter(key_hash=api_token_hash(secret)).first()


def manages_a_project(user: AnyUser) -> bool:
    return Membership.objects.filter(user__pk=user_pk(user), role="manager").exists()


def user_search(text: str) -> QuerySet[User]:
    """Active users whose user name or name contains ``text``, by user name."""
    users = User.objects.filter(is_active=True).order_by("username")
    text = text.strip()
    if text:
        users = users.filter(Q(username__icontains=text) | Q(first_name__icontains=text) | Q(last_name__icontains=text))
    return users
