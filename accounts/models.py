from __future__ import annotations

import hashlib
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Profile(models.Model):
    """Per-user preferences of the browser app; created on first use."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    # Empty: follow the browser (Accept-Language); otherwise one of settings.LANGUAGES.
    language = models.CharField(max_length=16, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.language or 'browser language'})"


# Every personal token starts with this, so people and secret scanners can tell what a leaked string is.
API_TOKEN_PREFIX = "mlq_"


def api_token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenStatus(models.TextChoices):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ApiToken(models.Model):
    """A personal API token: the user holds the secret (shown once, at creation), the database only its
    SHA-256, so a leaked backup or row gives nobody a working token. Revoked tokens stay as a record of
    what was issued and when it was last used."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the secret ("mlq_" and 8 more), so a user can tell tokens apart in a list
    # or match one found in a log; too short to guess the rest from.
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Written at most once a minute per token (accounts.services.api_token_touch).
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def status(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return ApiTokenStatus.REVOKED
        if self.is_expired(now):
            return ApiTokenStatus.EXPIRED
        return ApiTokenStatus.ACTIVE
