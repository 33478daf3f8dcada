"""Reads about projects, cases, assignments and annotations that other code reuses.

Visibility rules live here, in one place: the API and other apps call these, never filter by hand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils.module_loading import import_string

from annotation.labels import SeriesGeometry, StudyGeometry
from annotation.models import Annotation, AnnotationRevision, Assignment, Case, Membership, Project, Role
from config.types import AnyUser, user_pk
from imaging.models import Instance, Series


def projects_for_user(user: AnyUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if getattr(user, "is_superuser", False):
        return Project.objects.all()
    return Project.objects.filter(pk__in=Membership.objects.filter(user__pk=user_pk(user)).values("project_id"))


def user_roles(user: AnyUser, project: Project) -> set[str]:
    if not user.is_authenticated:
        return set()
    roles = set(Membership.objects.filter(project=project, user__pk=user_pk(user)).values_list("role", flat=True))
    if getattr(user, "is_superuser", False):
        roles.add(Role.MANAGER)
    return roles


def is_manager(user: AnyUser, project: Project) -> bool:
    return Role.MANAGER in user_roles(user, project)


def cases_visible_to(user: AnyUser, project: Project) -> QuerySet[Case]:
    """Managers see every case; readers the cases they are assigned to."""
    cases = Case.objects.filter(project=project)
    if is_manager(user, project):
        return cases
    return cases.filter(pk__in=Assignment.objects.filter(user__pk=user_pk(user)).values("case_id"))


def case_list(user: AnyUser, project: Project) -> QuerySet[Case]:
    cases = cases_visible_to(user, project).select_related("study", "series").order_by("-priority", "created_at", "pk")
    if is_manager(user, project):
        return cases.annotate(
            readers_assigned=Count("assignments", distinct=True),
            readings_submitted=Count(
                "annotations", filter=Q(annotations__status=Annotation.Status.SUBMITTED), distinct=True
            ),
        )
    # A reader's counts cover their own work only: how many others have read a case is itself a hint
    # during blind reading.
    return cases.annotate(
        readers_assigned=Count("assignments", filter=Q(assignments__user__pk=user_pk(user)), distinct=True),
        readings_submitted=Count(
            "annotations",
            filter=Q(annotations__status=Annotation.Status.SUBMITTED, annotations__reader__pk=user_pk(user)),
            distinct=True,
        ),
    )


def annotations_visible_to(user: AnyUser, case: Case) -> QuerySet[Annotation]:
    """A reader sees their own readings; a manager sees all. The review workflow widens this (through
    settings.ANNOTATION_VISIBILITY_EXTENSION) for AI proposals, verification and panel reading, never
    for another reader's blind reading."""
    annotations = Annotation.objects.filter(case=case)
    if is_manager(user, case.project):
        return annotations
    return annotations.filter(Q(reader__pk=user_pk(user)) | visibility_extension()(user, case))


@cache
def visibility_extension() -> Callable[[AnyUser, Case], Q]:
    return import_string(settings.ANNOTATION_VISIBILITY_EXTENSION)


def annotation_list(user: AnyUser, case: Case) -> QuerySet[Annotation]:
    return annotations_visible_to(user, case).select_related("reader", "current_revision__schema")


def revisions_of(annotation: Annotation) -> QuerySet[AnnotationRevision]:
    return (
        annotation.revisions.select_related("author", "schema", "parent")
        .prefetch_related(Prefetch("masks"))
        .order_by("number")
    )


def worklist(user: AnyUser, project: Project, role: str) -> QuerySet[Assignment]:
    return (
        Assignment.objects.filter(case__project=project, user__pk=user_pk(user), role=role)
        .select_related("user", "case__study", "case__series")
        .order_by("status", "-case__priority", "case__created_at", "pk")
    )


def worklist_counts(user: AnyUser, project: Project, role: str) -> dict[str, int]:
    rows = (
        Assignment.objects.filter(case__project=project, user__pk=user_pk(user), role=role)
        .values("status")
        .annotate(n=Count("pk"))
    )
    counts = {status: 0 for status in Assignment.Status.values}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def study_geometry(case: Case) -> StudyGeometry:
    """Rows, columns, slices and frames of the series a case's labels may refer to."""
    series_qs = Series.objects.filter(study_id=case.study_id)
    if case.series_id is not None:
        series_qs = series_qs.filter(pk=case.series_id)
    frames: dict[int, dict[str, int]] = defaultdict(dict)
    for series_id, sop, count in Instance.objects.filter(series__in=series_qs, has_pixel_data=True).values_list(
        "series_id", "sop_instance_uid", "number_of_frames"
    ):
        frames[series_id][sop] = count
    series = {
        s.series_instance_uid: SeriesGeometry(
            series_instance_uid=s.series_instance_uid,
            rows=s.rows or 0,
            columns=s.columns or 0,
            number_of_slices=s.number_of_slices,
            frames=frames.get(s.pk, {}),
        )
        for s in series_qs
    }
    return StudyGeometry(study_instance_uid=case.study.study_instance_uid, series=series)
