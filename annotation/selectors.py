"""Reads about projects, cases, assignments and annotations that other code reuses.

Visibility rules live here, in one place: the API and other apps call these, never filter by hand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import cache
from typing import cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Case as SqlCase
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When
from django.utils.module_loading import import_string

from annotation.labels import SeriesGeometry, StudyGeometry
from annotation.models import (
    READING_ROLE_MEMBERSHIP,
    Annotation,
    AnnotationRevision,
    Assignment,
    Case,
    CaseStatus,
    LabelSchema,
    Membership,
    Project,
    ReadingRole,
    Role,
)
from config.compiled import CompiledQuery
from config.errors import PermissionDeniedError
from config.types import AnyUser, user_pk
from imaging.models import DicomSource, Instance, Series


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


def check_import_source(user: AnyUser, project: Project, source: DicomSource) -> None:
    """A project takes studies from its own PACS, or from one an administrator opened to it; any other PACS may
    hold other projects' studies, so pulling from it would be access gained, not data sent. Administrators,
    who may open any PACS to any project, may also pull from any."""
    if getattr(user, "is_superuser", False):
        return
    if source.pk == project.dicom_source_id or project.import_sources.filter(pk=source.pk).exists():
        return
    raise PermissionDeniedError(
        f"Project {project.slug!r} may not take studies from PACS {source.name!r}: an administrator opens a PACS "
        "to a project (its import sources)"
    )


def is_manager(user: AnyUser, project: Project) -> bool:
    # A project read by project_for_reading knows already whether its reader manages it (one query less, issue 19).
    known = project.__dict__.get(_MANAGER_OF)
    if known is not None and known[0] == user_pk(user):
        return bool(known[1]) or bool(getattr(user, "is_superuser", False))
    return Role.MANAGER in user_roles(user, project)


# Set on a Project by project_for_reading: (user id, whether that user holds the manager role in it).
_MANAGER_OF = "_manager_of_user"


def with_reader_context(projects: QuerySet[Project], user: AnyUser) -> QuerySet[Project]:
    """The projects with their review policy (read by the claim, the gold rate and the reader's view) and whether
    ``user`` manages each, in the same query: worklist next read them in two more (issue 19)."""
    manager = Membership.objects.filter(project=OuterRef("pk"), user__pk=user_pk(user), role=Role.MANAGER)
    return projects.select_related("review_policy").annotate(user_is_manager=Exists(manager))


def reading_project(user: AnyUser, slug: str) -> Project | None:
    """``with_reader_context(projects_for_user(user)).filter(slug=slug)``'s project, None when the user is no member
    of a project of that slug. For a member (not an administrator) the query is compiled once per process
    (config.compiled): building and compiling it was a third of the CPU of worklist next (issue 19)."""
    if not user.is_authenticated or getattr(user, "is_superuser", False):
        return with_reader_context(projects_for_user(user), user).filter(slug=slug).first()
    return cast(Project | None, _READING_PROJECT.first(user_id=user_pk(user), slug=slug))


def _reading_project_query(*, user_id: int, slug: str) -> QuerySet[Project]:
    member = get_user_model()(pk=user_id)  # a member who is no administrator: the shape reading_project compiles
    return with_reader_context(projects_for_user(member), member).filter(slug=slug)[:1]


_READING_PROJECT = CompiledQuery(_reading_project_query, user_id=int, slug=str)


def remember_manager(project: Project, user: AnyUser) -> Project:
    """Keep the ``user_is_manager`` that with_reader_context read, for is_manager."""
    project.__dict__[_MANAGER_OF] = (user_pk(user), bool(getattr(project, "user_is_manager", False)))
    return project


def reading_assignment(user: AnyUser, case_id: int, role: object) -> Assignment | None:
    """The user's assignment to read the case in ``role``, with the case, its project, study and series and the
    project's latest schema id (``latest_schema_id``), in one query; None when there is none.

    An assignment makes its case visible to its reader (cases_visible_to), so a save that finds one needs no
    other visibility check: the revision endpoint made four queries (the case, the user's roles, the visibility
    check, the assignment) where this makes one (issue 19)."""
    if not isinstance(role, str) or not user.is_authenticated:
        return None
    return cast(Assignment | None, _READING_ASSIGNMENT.first(case_id=case_id, user_id=user_pk(user), role=role))


def _reading_assignment_query(*, case_id: int, user_id: int, role: str) -> QuerySet[Assignment]:
    latest_schema = LabelSchema.objects.filter(project_id=OuterRef("case__project_id")).order_by("-version")
    return (
        Assignment.objects.select_related("case__project", "case__study", "case__series")
        .filter(case_id=case_id, user_id=user_id, role=role)
        .annotate(latest_schema_id=Subquery(latest_schema.values("pk")[:1]))[:1]
    )


_READING_ASSIGNMENT = CompiledQuery(_reading_assignment_query, case_id=int, user_id=int, role=str)


def cases_visible_to(user: AnyUser, project: Project) -> QuerySet[Case]:
    """Managers see every case; readers the cases they are assigned to."""
    cases = Case.objects.filter(project=project)
    if is_manager(user, project):
        return cases
    return cases.filter(pk__in=Assignment.objects.filter(user__pk=user_pk(user)).values("case_id"))


# --- What a reader is told of a case's status ---------------------------------------------------------------
#
# During blind double reading the workflow status tells a reader more than their own work: "awaiting cross-
# verification" while they have not submitted means the other reader has. Readers are shown instead:
READER_IN_PROGRESS = "in_progress"  # the reading phase, and your reading is not submitted
READER_SUBMITTED = "submitted"  # the reading phase, and your reading is submitted
READER_CLOSED = "closed"  # the reading phase is over (agreed, disputed, in panel, adjudicated, single read)
READER_STATUSES = (READER_IN_PROGRESS, READER_SUBMITTED, READER_CLOSED)
READING_PHASE = (CaseStatus.AWAITING_FIRST_READ, CaseStatus.AWAITING_CROSS_VERIFICATION)
READER_ROLES = (ReadingRole.FIRST_READER, ReadingRole.SECOND_READER)


def blind_reading(project: Project) -> bool:
    """Whether the project reads blind (the review policy's mode; blind double reading is its default).
    Read through the reverse relation so that annotation need not import review."""
    try:
        return str(project.review_policy.mode) == "blind_double"
    except ObjectDoesNotExist:
        return True


def reader_view(user: AnyUser, project: Project) -> bool:
    """Whether case statuses are shown to this user as reader-facing statuses: a non-manager on a blind project
    (and then only on the cases they hold a reading assignment for: a panel member sees the real status)."""
    return not is_manager(user, project) and blind_reading(project)


def gold_shows_closed(project: Project) -> bool:
    """Whether a gold case (review.gold) shows as closed to a reader once they submitted it.

    A gold case stays in the reading phase for the next gold reader, so by its workflow status it would stay
    "submitted" to those who read it. Where cases may be final after one reading (sampled or adaptive second
    reading) that would set it apart from the others, which close when their reading is accepted: there it shows
    closed. Where every case is read twice it shows "submitted", as a case awaiting its other reader does.
    (The policy is read through the reverse relation, so annotation need not import review.)"""
    try:
        policy = project.review_policy
    except ObjectDoesNotExist:
        return False
    return bool(policy.adaptive_second_read) or float(policy.second_read_share) < 1.0


def reader_status(status: str, submitted_by_you: bool, *, gold_closed: bool = False) -> str:
    if submitted_by_you and gold_closed:
        return READER_CLOSED
    if status in READING_PHASE:
        return READER_SUBMITTED if submitted_by_you else READER_IN_PROGRESS
    return READER_CLOSED


def with_reader_status(user: AnyUser, cases: QuerySet[Case], project: Project | None = None) -> QuerySet[Case]:
    """Annotate ``shown_status``: the reader-facing status on cases the user reads, the real one elsewhere."""
    mine = Assignment.objects.filter(case=OuterRef("pk"), user__pk=user_pk(user), role__in=READER_ROLES)
    closed = ~Q(status__in=READING_PHASE)
    if project is not None and gold_shows_closed(project):
        closed |= Q(Exists(mine.filter(status=Assignment.Status.SUBMITTED)), gold__isnull=False)
    return cases.annotate(
        shown_status=SqlCase(
            When(~Exists(mine), then=F("status")),
            When(closed, then=Value(READER_CLOSED)),
            When(Exists(mine.filter(status=Assignment.Status.SUBMITTED)), then=Value(READER_SUBMITTED)),
            default=Value(READER_IN_PROGRESS),
        )
    )


def hide_case_statuses(user: AnyUser, project: Project, assignments: list[Assignment]) -> list[Assignment]:
    """Set ``shown_status`` on the cases of the user's own assignments (worklist, claim, a case's assignments)."""
    if reader_view(user, project):
        gold: set[int] = set()
        if gold_shows_closed(project):
            ids = [a.case_id for a in assignments if a.status == Assignment.Status.SUBMITTED]
            gold = (
                set(Case.objects.filter(pk__in=ids, gold__isnull=False).values_list("pk", flat=True)) if ids else set()
            )
        for assignment in assignments:
            if assignment.role in READER_ROLES and assignment.user_id == user_pk(user):
                submitted = assignment.status == Assignment.Status.SUBMITTED
                assignment.case.shown_status = reader_status(  # type: ignore[attr-defined]
                    assignment.case.status, submitted, gold_closed=assignment.case_id in gold
                )
    return assignments


def hide_case_status(user: AnyUser, case: Case) -> Case:
    """Set ``shown_status`` on one case (case detail) when the user reads it blind."""
    if reader_view(user, case.project):
        mine = Assignment.objects.filter(case=case, user__pk=user_pk(user), role__in=READER_ROLES)
        statuses = list(mine.values_list("status", flat=True))
        if statuses:
            submitted = Assignment.Status.SUBMITTED in statuses
            gold = (
                submitted
                and gold_shows_closed(case.project)
                and Case.objects.filter(pk=case.pk, gold__isnull=False).exists()
            )
            case.shown_status = reader_status(case.status, submitted, gold_closed=gold)  # type: ignore[attr-defined]
    return case


def case_list(user: AnyUser, project: Project, *, manager: bool | None = None) -> QuerySet[Case]:
    """The cases the user may see with their counts. ``manager``: whether the user manages the project, when the
    caller knows it already (the role is then read once per request, not three times)."""
    if manager is None:
        manager = is_manager(user, project)
    visible = (
        Case.objects.filter(project=project)
        if manager
        else Case.objects.filter(
            project=project, pk__in=Assignment.objects.filter(user__pk=user_pk(user)).values("case_id")
        )
    )
    cases = visible.select_related("study", "series").order_by("-priority", "created_at", "pk")
    if not manager and blind_reading(project):  # reader_view, with the role already known
        cases = with_reader_status(user, cases, project)
    if manager:
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


def with_manager_columns(cases: QuerySet[Case]) -> QuerySet[Case]:
    """The case browser's extra columns for managers: whether a case is gold, its latest AI score and its readers
    (prefetched: two queries for a page, whatever its size). Never for readers (a gold case looks like any other).

    The AI score is read through the reverse relation ``scores`` (inference.CaseScore), so annotation need not
    import inference."""
    score_model = Case._meta.get_field("scores").related_model
    latest = score_model._default_manager.filter(case=OuterRef("pk")).order_by("-created_at", "-pk").values("score")[:1]
    return cases.annotate(
        is_gold=Exists(Case.objects.filter(pk=OuterRef("pk"), gold__isnull=False)), ai_score=Subquery(latest)
    ).prefetch_related(Prefetch("assignments", queryset=Assignment.objects.select_related("user")))


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


def _spacing(value: object) -> tuple[float, float] | None:
    """A series' PixelSpacing as (row, column) mm, or None when it is missing or not two positive numbers."""
    if isinstance(value, list | tuple) and len(value) == 2:
        try:
            row, column = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            return None
        if row > 0 and column > 0:
            return (row, column)
    return None


def study_geometry(case: Case) -> StudyGeometry:
    """Rows, columns, slices and frames of the series a case's labels may refer to."""
    # Compiled once (config.compiled): every save of a reading validates against this (issue 19).
    one = case.series_id is not None
    values = {"study_id": case.study_id, "series_id": case.series_id if one else 0}
    frames: dict[int, dict[str, int]] = defaultdict(dict)
    for series_id, sop, count in _GEOMETRY_FRAMES.rows(one, **values):
        frames[series_id][sop] = count
    series_qs = _GEOMETRY_SERIES.objects(one, **values)
    series = {
        s.series_instance_uid: SeriesGeometry(
            series_instance_uid=s.series_instance_uid,
            rows=s.rows or 0,
            columns=s.columns or 0,
            number_of_slices=s.number_of_slices,
            frames=frames.get(s.pk, {}),
            pixel_spacing=_spacing(s.pixel_spacing),
        )
        for s in series_qs
    }
    return StudyGeometry(study_instance_uid=case.study.study_instance_uid, series=series)


def _geometry_series_query(one: bool, *, study_id: int, series_id: int) -> QuerySet[Series]:
    series = Series.objects.filter(study_id=study_id)
    return series.filter(pk=series_id) if one else series


def _geometry_frames_query(one: bool, *, study_id: int, series_id: int) -> QuerySet[Instance, tuple[int, str, int]]:
    series = _geometry_series_query(one, study_id=study_id, series_id=series_id)
    return Instance.objects.filter(series__in=series, has_pixel_data=True).values_list(
        "series_id", "sop_instance_uid", "number_of_frames"
    )


# The whole study's variant (a case without a series) does not use the series id.
_GEOMETRY_SERIES = CompiledQuery(_geometry_series_query, study_id=int, series_id=int, optional=("series_id",))
_GEOMETRY_FRAMES = CompiledQuery(_geometry_frames_query, study_id=int, series_id=int, optional=("series_id",))


# --- Members' workload ---------------------------------------------------------------------------------------

# The reading role each project role reads in (managers read in none).
MEMBERSHIP_READING_ROLE = {member_role: reading for reading, member_role in READING_ROLE_MEMBERSHIP.items()}


def member_workloads(project: Project) -> dict[tuple[int, str], dict[str, int]]:
    """Per (user id, reading role): cases assigned (not released), done (submitted) and in progress (an active
    assignment whose reading has at least one saved revision). One query for the whole project."""
    started = Annotation.objects.filter(
        case_id=OuterRef("case_id"), reader_id=OuterRef("user_id"), role=OuterRef("role"), revision_count__gt=0
    )
    rows = (
        Assignment.objects.filter(case__project=project)
        .exclude(status=Assignment.Status.RELEASED)
        .values("user_id", "role")
        .annotate(
            assigned=Count("pk"),
            done=Count("pk", filter=Q(status=Assignment.Status.SUBMITTED)),
            in_progress=Count("pk", filter=Q(status=Assignment.Status.ACTIVE) & Q(Exists(started))),
        )
    )
    return {(row["user_id"], row["role"]): {k: row[k] for k in ("assigned", "done", "in_progress")} for row in rows}
