"""Who may see and store which studies. The imaging app does not know about projects, so the policy is
plugged in through settings.IMAGING_ACCESS_POLICY (the annotation app scopes studies by project)."""

from __future__ import annotations

from functools import cache
from typing import Protocol

from django.conf import settings
from django.db.models import QuerySet
from django.utils.module_loading import import_string

from config.types import AnyUser
from imaging.models import DicomSource, ImageStore, Study


class StoreTarget(Protocol):
    """Where a STOW, upload or pull goes: one image store, and the PACS that keeps its pixels (if any)."""

    store: ImageStore
    source: DicomSource | None

    def check_pull_source(self, source: DicomSource) -> None:
        """PermissionDeniedError unless studies may be pulled from ``source`` into this target."""
        ...


class StudyAccessPolicy(Protocol):
    def visible_studies(self, user: AnyUser, scope: str | None) -> QuerySet[Study]:
        """Studies the user may see; ``scope`` narrows to one project. Unknown or foreign scope: NotFoundError."""
        ...

    def visible_studies_in_sql(self, user: AnyUser, scope: str | None) -> QuerySet[Study]:
        """The same studies as ``visible_studies``, built without running a query (subqueries only), for a lookup
        that checks access in its own SQL; an unknown or foreign scope gives no study instead of NotFoundError."""
        ...

    def store_target(self, user: AnyUser, scope: str | None) -> StoreTarget:
        """Where this user may store into this scope; PermissionDeniedError or NotFoundError otherwise."""
        ...


@cache
def access_policy() -> StudyAccessPolicy:
    policy_class = import_string(settings.IMAGING_ACCESS_POLICY)
    return policy_class()
