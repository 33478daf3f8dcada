"""Reads of the imaging index that other code reuses."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from config.types import AnyUser
from imaging.access import access_policy
from imaging.models import Series, Study


def studies_visible_to(user: AnyUser, project: str | None = None) -> QuerySet[Study]:
    return access_policy().visible_studies(user, project)


def study_list(user: AnyUser, project: str | None = None) -> QuerySet[Study]:
    return studies_visible_to(user, project).order_by("-study_date", "study_instance_uid")


def with_series(studies: QuerySet[Study]) -> QuerySet[Study]:
    series = Series.objects.order_by("series_number", "series_instance_uid")
    return studies.prefetch_related(Prefetch("series", queryset=series))


def study_detail_queryset(user: AnyUser, project: str | None = None) -> QuerySet[Study]:
    return with_series(studies_visible_to(user, project))


def series_visible_to(user: AnyUser, project: str | None = None) -> QuerySet[Series]:
    # Oldest first: a series UID in two of the caller's stores answers with one row (the oldest store's).
    return Series.objects.filter(study__in=studies_visible_to(user, project)).select_related("study").order_by("pk")
