from __future__ import annotations

from django.conf import settings

from accounts.models import Profile
from config.errors import ApplicationError
from config.types import User


def language_codes() -> list[str]:
    return [code for code, _ in settings.LANGUAGES]


def profile_set_language(*, user: User, language: str) -> Profile:
    """Save the user's language; 400 naming the accepted codes when it is not one of them."""
    if language not in language_codes():
        raise ApplicationError(
            f"language: unknown language {language!r} (expected one of {', '.join(language_codes())})",
            code="bad_language",
        )
    profile, _ = Profile.objects.get_or_create(user=user)
    profile.language = language
    profile.save(update_fields=["language", "updated_at"])
    return profile
