from __future__ import annotations

from django.conf import settings
from django.db import models


class Profile(models.Model):
    """Per-user preferences of the browser app; created on first use."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    # Empty: follow the browser (Accept-Language); otherwise one of settings.LANGUAGES.
    language = models.CharField(max_length=16, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.language or 'browser language'})"
