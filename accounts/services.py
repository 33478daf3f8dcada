from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import API_TOKEN_PREFIX, ApiToken, Profile, api_token_hash
from accounts.selectors import active_api_tokens_for
from config.errors import ApplicationError, PermissionDeniedError
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


# --- Personal API tokens ---------------------------------------------------------------------------------

# Enough for a laptop, a workstation, a few scripts and an OHIF or two; more usually means tokens that
# were forgotten rather than revoked.
MAX_ACTIVE_API_TOKENS = 20
MAX_API_TOKEN_DAYS = 3650
# last_used_at is a hint for the user ("used 3 days ago"), not an audit trail: one write a minute at most
# keeps a DICOMweb viewer that fires hundreds of requests per study from writing a row each time.
API_TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@transaction.atomic
def api_token_create(*, user: User, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Issue a token; returns it with its secret, which exists only in this return value (the database
    keeps its SHA-256). 400 when the user already holds MAX_ACTIVE_API_TOKENS active tokens."""
    name = name.strip()
    if not name:
        raise ApplicationError(_("name: give the token a name, e.g. where it will be used."), code="bad_name")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_API_TOKEN_DAYS:
        raise ApplicationError(
            _("expires_in_days: must be between 1 and %(max)d.") % {"max": MAX_API_TOKEN_DAYS}, code="bad_expiry"
        )
    # Lock the user's row so that two concurrent requests cannot both pass the cap.
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
    now = timezone.now()
    if active_api_tokens_for(user, now=now).count() >= MAX_ACTIVE_API_TOKENS:
        raise ApplicationError(
            _("You already have %(max)d active API tokens; revoke one you no longer use first.")
            % {"max": MAX_ACTIVE_API_TOKENS},
            code="too_many_tokens",
        )
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=secret[: len(API_TOKEN_PREFIX) + 8],
        key_hash=api_token_hash(secret),
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days is not None else None,
    )
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke the token (kept, never deleted). Revoking a revoked token changes nothing: the first
    revocation time stays."""
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_token_touch(*, token: ApiToken, now: datetime | None = None) -> None:
    """Record that the token was used, at most once per API_TOKEN_TOUCH_INTERVAL: no query at all when
    the loaded value is recent, and a conditional update otherwise (concurrent requests write once)."""
    now = now or timezone.now()
    cutoff = now - API_TOKEN_TOUCH_INTERVAL
    if token.last_used_at is not None and token.last_used_at > cutoff:
        return
    ApiToken.objects.filter(pk=token.pk).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff)).update(
        last_used_at=now
    )
    token.last_used_at = now


# --- Users (created by administrators in the app) -----------------------------------------------------------


@transaction.atomic
def user_create(
    *,
    actor: User,
    username: str,
    password: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> User:
    """A new, ordinary (non-staff) user. Only administrators create users: a project manager adds existing
    people to a project but does not mint accounts, which would reach every project that later adds them."""
    if not (actor.is_staff or actor.is_superuser):
        raise PermissionDeniedError(_("Only an administrator may create users."), code="not_admin")
    username = username.strip()
    if User.objects.filter(username__iexact=username).exists():
        raise ApplicationError(
            _("username: the user name “%(username)s” is taken.") % {"username": username}, code="username_taken"
        )
    user = User(username=username, email=email.strip(), first_name=first_name.strip(), last_name=last_name.strip())
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(
            _("password: %(problems)s") % {"problems": " ".join(exc.messages)}, code="bad_password"
        ) from exc
    user.set_password(password)
    user.save()
    return user
