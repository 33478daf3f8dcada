"""The review workflow's append-only event log. (Agreement, panel votes and policies: the review issue.)"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models import Case


class CaseEvent(models.Model):
    """One transition of a case's status: who, from, to, why, with what numbers, when. Never updated."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    from_status = models.CharField(max_length=32)
    to_status = models.CharField(max_length=32)
    reason = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["case_id", "created_at", "pk"]

    def __str__(self) -> str:
        return f"case {self.case_id}: {self.from_status} -> {self.to_status}"
