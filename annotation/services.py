"""Writes for projects, schemas, cases, assignments and annotations. Every write is one of these."""

from __future__ import annotations

import base64
import gzip
from typing import Any, cast

import numpy as np
from django.core.exceptions import ObjectDoesNotExist
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from annotation.labels import (
    MASK_ENCODING,
    MASK_ENCODING_RLE,
    CheckedMask,
    StudyGeometry,
    expand_mask,
    mask_digest,
    validate_schema,
    validate_values,
)
from annotation.models import (
    READING_ROLE_MEMBERSHIP,
    Annotation,
    AnnotationRevision,
    Assignment,
    AssignmentEvent,
    Case,
    CaseStatus,
    LabelSchema,
    MaskFile,
    Membership,
    Project,
    ReadingRole,
    Role,
)
from annotation.selectors import is_manager, study_geometry
from config.compiled import CompiledQuery
from config.errors import ApplicationError, ConflictError, NotFoundError, PermissionDeniedError
from config.types import User
from imaging.models import DicomSource, Series, Study, StudyShare
from imaging.services.framecache import prefetch_on_commit
from imaging.services.ingest import platform_store
from imaging.services.share import study_share


class StaleRevisionError(ConflictError):
    """The revision a save was based on is no longer the current one: someone saved in between."""

    code = "stale_revision"


class InvalidStateError(ApplicationError):
    status_code = 409
    code = "invalid_state"


# --- Projects and members ----------------------------------------------------------------------


@transaction.atomic
def project_share_studies(
    *, from_project: Project | None, to_project: Project, study_uids: list[str], actor: User, reason: str = ""
) -> list[StudyShare]:
    """Share studies of ``from_project`` (the platform store when None) with ``to_project``: an explicit act of
    someone who manages both projects, or of an administrator, recorded in the share log. All or nothing."""
    if not actor.is_superuser:
        if from_project is None:
            raise PermissionDeniedError("Only an administrator may share studies stored outside any project")
        for project in (from_project, to_project):
            if not is_manager(actor, project):
                raise PermissionDeniedError(
                    f"Sharing a study needs a manager of both projects; you do not manage {project.slug!r}"
                )
    uids = list(dict.fromkeys(uid.strip() for uid in study_uids if uid.strip()))
    if not uids:
        raise ApplicationError("Name at least one Study Instance UID to share", code="no_studies")
    store = from_project.image_store if from_project is not None else platform_store()
    studies = {s.study_instance_uid: s for s in Study.objects.filter(store=store, study_instance_uid__in=uids)}
    missing = [uid for uid in uids if uid not in studies]
    if missing:
        where = f"project {from_project.slug!r}" if from_project is not None else "the platform store"
        raise NotFoundError(f"Not studies of {where}: {', '.join(missing[:10])}", code="unknown_study")
    return [
        study_share(study=studies[uid], to_store=to_project.image_store, shared_by=actor, reason=reason) for uid in uids
    ]


@transaction.atomic
def project_create(
    *,
    creator: User,
    slug: str,
    name: str,
    description: str = "",
    modality: str = "",
    dicom_source: DicomSource | None = None,
    readers_per_case: int = 2,
) -> Project:
    """A new project with its own image store; its creator becomes its first manager (someone must be able to
    add the members). Only administrators (staff) create projects: the view checks, this says why again."""
    if not (creator.is_staff or creator.is_superuser):
        raise PermissionDeniedError(_("Only an administrator may create a project."), code="not_admin")
    if Project.objects.filter(slug=slug).exists():
        raise ApplicationError(
            _("slug: a project with the short name “%(slug)s” exists already; choose another.") % {"slug": slug},
            code="slug_taken",
        )
    project = Project.objects.create(
        slug=slug,
        name=name.strip(),
        description=description,
        modality=modality.strip().upper(),
        dicom_source=dicom_source,
        readers_per_case=readers_per_case,
        created_by=creator,
    )
    Membership.objects.create(project=project, user=creator, role=Role.MANAGER)
    return project


@transaction.atomic
def project_set_archived(*, project: Project, archived: bool) -> Project:
    """Archive (or bring back) a project. Nothing is deleted; archiving twice keeps the first time."""
    if archived and project.archived_at is None:
        project.archived_at = timezone.now()
    elif not archived:
        project.archived_at = None
    project.save(update_fields=["archived_at"])
    return project


def _check_not_last_manager(membership: Membership) -> None:
    """A project keeps at least one manager: without one nobody could add members or change roles again."""
    if membership.role != Role.MANAGER:
        return
    others = Membership.objects.filter(project_id=membership.project_id, role=Role.MANAGER).exclude(pk=membership.pk)
    if not others.exists():
        raise ApplicationError(
            _("%(user)s is the project's only manager: make someone else a manager first.")
            % {"user": membership.user.username},
            code="last_manager",
        )


@transaction.atomic
def membership_grant(*, project: Project, user: User, role: str) -> Membership:
    membership, _created = Membership.objects.get_or_create(project=project, user=user, role=role)
    return membership


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str) -> Membership:
    """Give a member another role in place of this one (a user may hold several roles, one row each)."""
    membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    if membership.role == role:
        return membership
    if Membership.objects.filter(project_id=membership.project_id, user_id=membership.user_id, role=role).exists():
        raise ApplicationError(
            _("%(user)s already has the role %(role)s in this project.")
            % {"user": membership.user.username, "role": role_display(role)},
            code="role_held",
        )
    _check_not_last_manager(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_revoke(*, project: Project, user: User, role: str) -> None:
    membership = Membership.objects.select_for_update().filter(project=project, user=user, role=role).first()
    if membership is None:
        raise NotFoundError(
            _("%(user)s has no role %(role)s in project %(project)s.")
            % {"user": user.username, "role": role_display(role), "project": project.slug}
        )
    _check_not_last_manager(membership)
    membership.delete()


# The roles' names in messages, in the reader's language (Role's own labels are the admin's English ones).
ROLE_NAMES = {
    Role.ANNOTATOR: gettext_lazy("annotator"),
    Role.REVIEWER: gettext_lazy("reviewer"),
    Role.EXPERT: gettext_lazy("expert"),
    Role.MANAGER: gettext_lazy("manager"),
}


def role_display(role: str) -> str:
    return str(ROLE_NAMES.get(role, role))  # type: ignore[call-overload]


# --- Label schemas -----------------------------------------------------------------------------


@transaction.atomic
def schema_create_version(*, project: Project, definition: Any, created_by: User | None) -> LabelSchema:
    """Validate and store a new schema version; earlier versions stay as they were."""
    normalised = validate_schema(definition)
    # Lock the project row so two managers saving at once get consecutive versions.
    Project.objects.select_for_update().get(pk=project.pk)
    latest = LabelSchema.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
    return LabelSchema.objects.create(project=project, version=latest + 1, definition=normalised, created_by=created_by)


def current_schema(project: Project, *, latest_pk: int | None = None) -> LabelSchema:
    """The project's latest schema version. ``latest_pk``: its id, when the caller read it already (the revision
    endpoint does, with the reader's assignment): a schema version never changes once stored, so the row is kept
    in this process and read once (issue 19: a query and the parsing of the definition on every save)."""
    if latest_pk is not None:
        cached = _schemas.get(latest_pk)
        if cached is not None:
            return cached
        schema = LabelSchema.objects.filter(pk=latest_pk).first()
    else:
        schema = LabelSchema.objects.filter(project=project).order_by("-version").first()
    if schema is None:
        raise ApplicationError(f"Project {project.slug!r} has no label schema yet", code="no_schema")
    if len(_schemas) >= 256:  # a few projects' versions; never grows without bound
        _schemas.clear()
    _schemas[schema.pk] = schema
    return schema


# Schema versions by id (LabelSchema rows are written once, never updated: schema_create_version adds a version).
_schemas: dict[int, LabelSchema] = {}
_CHECKED = "_checked_definition"


def checked_definition(schema: LabelSchema) -> dict[str, Any]:
    """The schema's definition as validate_schema gives it, worked out once per schema row read (a cached version's
    is kept with it): every save validated the stored definition again (issue 19)."""
    checked = schema.__dict__.get(_CHECKED)
    if checked is None:
        checked = validate_schema(schema.definition)
        schema.__dict__[_CHECKED] = checked
    return cast(dict[str, Any], checked)


# --- Cases ---------------------------------------------------------------------------------------


def _flagged_series_message(series: list[Series]) -> str:
    parts = []
    for item in series:
        failed = [c["message"] for c in item.quality_checks if c.get("status") == "failed"]
        parts.append(f"{item.series_instance_uid} ({'; '.join(failed) or 'failed quality checks'})")
    return ", ".join(parts)


@transaction.atomic
def cases_create(
    *, project: Project, study_uids: list[str], series_uids: list[str] | None = None, priority: float = 0.0
) -> list[Case]:
    """Cases for studies of the project (or for the given series of them). Idempotent: an existing case
    is returned, not duplicated. A series that failed its quality checks is refused, not silently read."""
    studies = {
        s.study_instance_uid: s
        for s in Study.objects.filter(study_instance_uid__in=study_uids, store_id=project.image_store_id)
    }
    missing = sorted(set(study_uids) - set(studies))
    if missing:
        raise ApplicationError(
            f"Not studies of project {project.slug!r}: {', '.join(missing[:10])}", code="unknown_study"
        )
    cases: list[Case] = []
    if series_uids:
        series = list(
            Series.objects.filter(series_instance_uid__in=series_uids, study__in=studies.values()).select_related(
                "study"
            )
        )
        unknown = sorted(set(series_uids) - {s.series_instance_uid for s in series})
        if unknown:
            raise ApplicationError(f"Series not in those studies: {', '.join(unknown[:10])}", code="unknown_series")
        flagged = [s for s in series if s.is_flagged]
        if flagged:
            raise ApplicationError(
                f"Series failed data-quality checks: {_flagged_series_message(flagged)}", code="series_flagged"
            )
        for item in series:
            case, _ = Case.objects.get_or_create(
                project=project, study=item.study, series=item, defaults={"priority": priority}
            )
            cases.append(case)
        cases_created_handler()(project=project, cases=cases)
        return cases
    flagged = list(Series.objects.filter(study__in=studies.values(), quality=Series.Quality.FAILED))
    if flagged:
        raise ApplicationError(
            f"Series failed data-quality checks: {_flagged_series_message(flagged)}; "
            "create cases for the good series instead",
            code="series_flagged",
        )
    for uid in study_uids:
        case, _ = Case.objects.get_or_create(
            project=project, study=studies[uid], series=None, defaults={"priority": priority}
        )
        cases.append(case)
    cases_created_handler()(project=project, cases=cases)
    return cases


@transaction.atomic
def case_set_priority(*, case: Case, priority: float, source: str = "manager") -> Case:
    case.priority = priority
    case.priority_source = source
    case.save(update_fields=["priority", "priority_source", "updated_at"])
    return case


# --- Assignments and worklists -----------------------------------------------------------------

# Which case states have open slots for which reading role.
OPEN_FOR_ROLE = {
    ReadingRole.FIRST_READER: [CaseStatus.AWAITING_FIRST_READ],
    ReadingRole.SECOND_READER: [CaseStatus.AWAITING_FIRST_READ, CaseStatus.AWAITING_CROSS_VERIFICATION],
    ReadingRole.PANEL_MEMBER: [CaseStatus.IN_PANEL],
}


def open_statuses(project: Project, role: str) -> list[str]:
    """The case states in which a role's slots are open. In verification mode the second reader verifies the
    first reading, so their slot opens only once that reading is in (the case awaits cross-verification);
    claiming earlier would leave them nothing to verify. Blind double reading lets both readers start at once.
    (The mode is read through the reverse relation, so annotation need not import review.)"""
    statuses: list[str] = list(OPEN_FOR_ROLE[ReadingRole(role)])
    if role == ReadingRole.SECOND_READER:
        try:
            mode = project.review_policy.mode
        except ObjectDoesNotExist:
            mode = ""
        # Adaptive second reading decides after the first reading whether a second is needed: the slot opens then.
        if mode == "verification" or _adaptive(project):
            statuses = [CaseStatus.AWAITING_CROSS_VERIFICATION]
    return statuses


def _adaptive(project: Project) -> bool:
    try:
        return bool(project.review_policy.adaptive_second_read)
    except ObjectDoesNotExist:
        return False


def slots_for_role(project: Project, role: str) -> int:
    if role == ReadingRole.FIRST_READER:
        return 1
    if role == ReadingRole.SECOND_READER:
        return max(project.readers_per_case - 1, 0)
    return project_panel_size(project)


def project_panel_size(project: Project) -> int:
    """Seats on a case's panel: the review policy's panel size (read through the reverse relation, so
    annotation need not import review), at most the number of experts."""
    experts = Membership.objects.filter(project=project, role=READING_ROLE_MEMBERSHIP[ReadingRole.PANEL_MEMBER]).count()
    try:
        size = int(project.review_policy.panel_size)
    except ObjectDoesNotExist:
        return experts
    return min(size, experts)


def check_reader_role(project: Project, user: User, role: str) -> None:
    if role not in ReadingRole.values:
        raise ApplicationError(f"Unknown reading role {role!r}", code="bad_role")
    needed = READING_ROLE_MEMBERSHIP[ReadingRole(role)]
    if not Membership.objects.filter(project=project, user=user, role=needed).exists():
        raise PermissionDeniedError(f"Reading as {role} needs the {needed} role in project {project.slug!r}")


def gold_rate(project: Project) -> float:
    """The review policy's gold rate (read through the reverse relation, so annotation need not import review)."""
    try:
        return float(project.review_policy.gold_rate)
    except ObjectDoesNotExist:
        return 0.0


def _gold_due(project: Project, user: User) -> bool:
    """Whether the reader's next case should be a gold case: serving one keeps the share of gold cases among the
    cases served to them (in any reading role, released ones not counted) at or under the policy's gold rate."""
    rate = gold_rate(project)
    if rate <= 0:
        return False
    served = Assignment.objects.filter(
        case__project=project, user=user, role__in=[ReadingRole.FIRST_READER, ReadingRole.SECOND_READER]
    ).exclude(status=Assignment.Status.RELEASED)
    counts = served.aggregate(n=Count("pk"), gold=Count("pk", filter=Q(case__gold__isnull=False)))
    return counts["gold"] + 1 <= rate * (counts["n"] + 1) + 1e-9


def _open_gold_cases(project: Project, user: User, role: str) -> Any:
    """Gold cases the reader has not read: each is read by every reader who is served it, so it has no slot limit
    (review.gold; the reverse relation ``gold`` keeps annotation free of review imports)."""
    if CaseStatus.AWAITING_FIRST_READ not in open_statuses(project, role):
        # Panel seats; and second readers who only ever get cases with a first reading (verification, adaptive):
        # a case without one would stand out as gold.
        return Case.objects.none()
    return (
        Case.objects.filter(project=project, status=CaseStatus.AWAITING_FIRST_READ, gold__isnull=False)
        .exclude(Exists(Assignment.objects.filter(case=OuterRef("pk"), user=user)))
        .order_by("-priority", "created_at", "pk")
    )


# First key of the advisory locks taken while claiming (one per reading role): an arbitrary constant that no
# other advisory lock of the project uses.
CLAIM_LOCK_NAMESPACE = 730_100


def assignment_claim_next(*, project: Project, user: User, role: str) -> Assignment | None:
    """Claim the highest-priority open slot. Returns the reader's unfinished assignment first, so pressing
    "next" twice does not hoard cases. Two readers claiming at once never get the same slot: the insert of
    (case, role, slot) is unique, and the loser moves on to the next candidate."""
    if role not in ReadingRole.values:
        check_reader_role(project, user, role)  # refuses the unknown role
    with transaction.atomic():
        # One claim at a time per reader and role (a double click, two tabs): the second waits for the
        # first, then finds its assignment instead of claiming another case. The locked row is also the check
        # that the reader holds the role (one query where an existence check and the lock made two, issue 19).
        membership = Membership.objects.filter(
            project=project, user=user, role=READING_ROLE_MEMBERSHIP[ReadingRole(role)]
        )
        if not list(membership.select_for_update().values_list("pk", flat=True)):
            check_reader_role(project, user, role)  # raises, saying which role is needed
        return _claim_next_locked(project, user, role)


def _claim_next_locked(project: Project, user: User, role: str) -> Assignment | None:
    # Both queries compiled once (config.compiled): they are most of the CPU of "next" (issue 19).
    active = _ACTIVE_ASSIGNMENT.first(project_id=project.pk, user_id=user.pk, role=role)
    if active is not None:
        return active
    if role != ReadingRole.PANEL_MEMBER and _gold_due(project, user):
        for case in _open_gold_cases(project, user, role).select_related("study", "series")[:10]:
            taken = Assignment.objects.filter(case=case, role=role).count()
            if (claimed := _claim_slot(case, user, role, taken + 1)) is not None:
                return claimed
    slots = slots_for_role(project, role)
    for _attempt in range(20):
        # With the study and series the answer shows: two queries fewer than reading them for the claimed case.
        candidates = _OPEN_CASES.objects(
            tuple(open_statuses(project, role)), project_id=project.pk, user_id=user.pk, role=role, slots=slots
        )
        if not candidates:
            return None
        busy: list[Case] = []
        for case in candidates:
            if not _claim_lock(case.pk, role):
                busy.append(case)  # another reader is claiming this case right now: try the next one first
                continue
            if (claimed := _claim_slot(case, user, role, slots)) is not None:
                return claimed
        # Every other open case is taken: try the busy ones after all (the insert may then wait for the other
        # claim to commit; no advisory lock is awaited, so two claims can never deadlock).
        for case in busy:
            if (claimed := _claim_slot(case, user, role, slots)) is not None:
                return claimed
    return None


def _active_assignment_query(*, project_id: int, user_id: int, role: str) -> QuerySet[Assignment]:
    return (
        Assignment.objects.filter(
            case__project_id=project_id, user_id=user_id, role=role, status=Assignment.Status.ACTIVE
        )
        .select_related("case__study", "case__series")  # the answer shows the case's study and series
        .order_by("-case__priority", "case__created_at", "pk")[:1]  # the worklist's order
    )


def _open_cases_query(
    statuses: tuple[str, ...], *, project_id: int, user_id: int, role: str, slots: int
) -> QuerySet[Case]:
    """The first ten cases open to this reader in the role (given its open statuses and slots), with the study
    and series the answer shows.

    Correlated subqueries rather than a join with GROUP BY: PostgreSQL then walks the worklist index in
    priority order and stops at the first open cases, instead of counting every case of the project."""
    taken = (
        Assignment.objects.filter(case=OuterRef("pk"), role=role)
        .order_by()
        .values("case")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Case.objects.filter(project_id=project_id, status__in=statuses, gold__isnull=True)
        .exclude(Exists(Assignment.objects.filter(case=OuterRef("pk"), user_id=user_id)))
        .alias(taken=Coalesce(Subquery(taken, output_field=IntegerField()), Value(0)))
        .filter(taken__lt=slots)
        .order_by("-priority", "created_at", "pk")
        .select_related("study", "series")[:10]
    )


_ACTIVE_ASSIGNMENT = CompiledQuery(_active_assignment_query, project_id=int, user_id=int, role=str)
_OPEN_CASES = CompiledQuery(_open_cases_query, project_id=int, user_id=int, role=str, slots=int)


def _claim_slot(case: Case, user: User, role: str, slots: int) -> Assignment | None:
    taken = set(Assignment.objects.filter(case=case, role=role).values_list("slot", flat=True))
    free = [slot for slot in range(slots) if slot not in taken]
    if not free:
        return None
    try:
        with transaction.atomic():
            claimed = Assignment.objects.create(case=case, user=user, role=role, slot=free[0], how="claimed")
    except IntegrityError:
        return None  # someone took that slot (or this reader is already on the case) a moment ago
    # A study kept on a PACS is copied into the proxy cache once the claim commits, so that the reader's frames
    # are served from disk (issue 19). The study came with the case: no query here.
    prefetch_on_commit(case.study)
    return claimed


def _claim_lock(case_id: int, role: str) -> bool:
    """On PostgreSQL, a transaction-scoped advisory lock on (case, role) if it is free now (never waits).

    Without it, fifty readers pressing "next" at once all insert into the same top case's first free slot and
    queue behind each other's uncommitted inserts (the unique index makes each wait for the previous one to
    commit); under load such convoys held requests for tens of seconds. SQLite has one writer at a time anyway."""
    if connection.vendor != "postgresql":
        return True
    namespace = CLAIM_LOCK_NAMESPACE + list(ReadingRole.values).index(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [namespace, case_id])
        row = cursor.fetchone()
    return bool(row and row[0])


@transaction.atomic
def assignment_create(
    *, case: Case, user: User, role: str, assigned_by: User | None, how: str = "manual"
) -> Assignment:
    check_reader_role(case.project, user, role)
    if Assignment.objects.filter(case=case, user=user).exists():
        raise ConflictError(f"{user.username} already reads case {case.pk}: one person reads a case once")
    slots = slots_for_role(case.project, role)
    taken = set(Assignment.objects.filter(case=case, role=role).values_list("slot", flat=True))
    free = [slot for slot in range(slots) if slot not in taken]
    if not free:
        raise ConflictError(f"Case {case.pk} has no free {role} slot ({slots} in all)")
    try:
        with transaction.atomic():
            assignment = Assignment.objects.create(
                case=case, user=user, role=role, slot=free[0], assigned_by=assigned_by, how=how
            )
    except IntegrityError as exc:
        raise ConflictError(f"The {role} slot of case {case.pk} was taken a moment ago; try again") from exc
    _record_assignments([assignment], actor=assigned_by)
    return assignment


def assignments_distribute(
    *, project: Project, role: str, assigned_by: User | None, cases: list[Case] | None = None
) -> list[Assignment]:
    """Fill every open slot for the role, each time with the eligible reader who has the fewest active
    assignments in the project (balanced), never the same person twice on a case."""
    needed = READING_ROLE_MEMBERSHIP[ReadingRole(role)]
    readers = list(User.objects.filter(memberships__project=project, memberships__role=needed).distinct())
    if not readers:
        raise ApplicationError(f"Project {project.slug!r} has no member with the {needed} role", code="no_readers")
    load = {
        row["user"]: row["n"]
        for row in Assignment.objects.filter(case__project=project, status=Assignment.Status.ACTIVE)
        .values("user")
        .annotate(n=Count("pk"))
    }
    created: list[Assignment] = []
    slots = slots_for_role(project, role)
    candidates = Case.objects.filter(project=project, status__in=open_statuses(project, role))
    if cases is not None:
        candidates = candidates.filter(pk__in=[c.pk for c in cases])
    for case in candidates.prefetch_related("assignments").order_by("-priority", "created_at", "pk"):
        on_case = {a.user_id for a in case.assignments.all()}
        taken = {a.slot for a in case.assignments.all() if a.role == role}
        for slot in range(slots):
            if slot in taken:
                continue
            eligible = sorted((r for r in readers if r.pk not in on_case), key=lambda r: (load.get(r.pk, 0), r.pk))
            if not eligible:
                break
            reader = eligible[0]
            try:
                with transaction.atomic():
                    assignment = Assignment.objects.create(
                        case=case, user=reader, role=role, slot=slot, assigned_by=assigned_by, how="automatic"
                    )
            except IntegrityError:
                continue  # claimed by a reader meanwhile
            created.append(assignment)
            on_case.add(reader.pk)
            load[reader.pk] = load.get(reader.pk, 0) + 1
    _record_assignments(created, actor=assigned_by)
    return created


def _record_assignments(
    assignments: list[Assignment], *, actor: User | None, previous: dict[int, int] | None = None
) -> None:
    """One AssignmentEvent per assignment made or moved (``previous``: assignment pk -> the reader it had)."""
    AssignmentEvent.objects.bulk_create(
        AssignmentEvent(
            case_id=a.case_id,
            role=a.role,
            slot=a.slot,
            action=AssignmentEvent.Action.REASSIGNED if previous else AssignmentEvent.Action.ASSIGNED,
            from_user_id=previous[a.pk] if previous else None,
            to_user_id=a.user_id,
            actor=actor,
            how=a.how,
        )
        for a in assignments
    )


@transaction.atomic
def assignments_reassign(
    *, project: Project, case_ids: list[int], from_user: User, to_user: User, reassigned_by: User | None
) -> list[Assignment]:
    """Hand ``from_user``'s unfinished readings of these cases to ``to_user`` (a reader who is away, or
    overloaded), all or nothing: one case that cannot move refuses the whole request and nothing changes.

    Only active assignments move: a submitted reading is its reader's work and stays theirs. The slot and role
    stay; the new reader starts their own reading (the previous reader's draft stays in its revision chain, out
    of the new reader's sight: they never see another reader's blind reading). The new reader must hold the
    role's project role and must not be on the case already (one person reads a case once)."""
    if from_user.pk == to_user.pk:
        raise ApplicationError("Choose another reader to hand the cases to", code="same_reader")
    ids = sorted(set(case_ids))
    if not ids:
        raise ApplicationError("Choose at least one case", code="no_cases")
    # Locked in a fixed order (case, then pk) so two reassignments of overlapping cases cannot deadlock.
    found = list(
        Assignment.objects.select_for_update(of=("self",))
        .select_related("case")
        .filter(case__project=project, case_id__in=ids, user=from_user)
        .order_by("case_id", "pk")
    )
    by_case = {a.case_id: a for a in found}
    missing = [case_id for case_id in ids if case_id not in by_case]
    if missing:
        raise ConflictError(
            f"{from_user.username} holds no reading of case(s) {', '.join(map(str, missing))} in this project"
        )
    done = [a.case_id for a in found if a.status != Assignment.Status.ACTIVE]
    if done:
        raise ConflictError(
            f"{from_user.username} already submitted case(s) {', '.join(map(str, done))}: a submitted reading "
            "stays with its reader"
        )
    taken = set(Assignment.objects.filter(case_id__in=ids, user=to_user).values_list("case_id", flat=True))
    if taken:
        raise ConflictError(
            f"{to_user.username} already reads case(s) {', '.join(map(str, sorted(taken)))}: one person reads a "
            "case once"
        )
    for role in {a.role for a in found}:
        check_reader_role(project, to_user, role)
    previous = {a.pk: a.user_id for a in found}
    for assignment in found:
        assignment.user = to_user
        assignment.assigned_by = reassigned_by
        assignment.how = "manual"
        # The time it was handed over: the reading time of the new reader starts now.
        assignment.created_at = timezone.now()
        assignment.save(update_fields=["user", "assigned_by", "how", "created_at"])
    _record_assignments(found, actor=reassigned_by, previous=previous)
    return found


@transaction.atomic
def assignment_release(*, assignment: Assignment) -> Assignment:
    """Give a slot back (a reader cannot finish). Their draft stays, as every revision does."""
    if assignment.status != Assignment.Status.ACTIVE:
        raise InvalidStateError(f"Assignment {assignment.pk} is {assignment.status}, not active")
    assignment.delete()
    return assignment


# --- Annotations -------------------------------------------------------------------------------


class _PreparedMask:
    """A mask named by its SHA-256, with the bytes to store unless that content is stored already: the CPU
    work of storing it, done before the annotation is locked; ``_store_mask`` then writes the file and the
    row. A mask checked from a client's payload (``CheckedMask``) is stored as the client sent it (its gzip
    stream or its runs), never decompressed again or recompressed; an array (machine revisions, consensus)
    is compressed here."""

    def __init__(self, mask: np.ndarray | CheckedMask) -> None:
        self.shape = [int(n) for n in mask.shape]
        self.dtype = mask.dtype if isinstance(mask, CheckedMask) else str(mask.dtype)
        self.encoding = mask.encoding if isinstance(mask, CheckedMask) else MASK_ENCODING
        self.stored: bytes | None = None
        if isinstance(mask, CheckedMask):
            self.digest = mask.digest
            self.stored = mask.stored
            self._raw = b""
        else:
            self._raw = np.ascontiguousarray(mask).tobytes()
            self.digest = mask_digest(self._raw, mask.shape, self.dtype)
            if not MaskFile.objects.filter(sha256=self.digest).exists():
                self.stored = self.compressed()

    def compressed(self) -> bytes:
        if self.stored is None:
            self.stored = gzip.compress(self._raw, compresslevel=1, mtime=0)  # nibabel's level: 5x faster than 6
        return self.stored

    @property
    def suffix(self) -> str:
        return ".rle" if self.encoding == MASK_ENCODING_RLE else ".raw.gz"


def _store_mask(array: np.ndarray | CheckedMask | _PreparedMask) -> MaskFile:
    prepared = array if isinstance(array, _PreparedMask) else _PreparedMask(array)
    digest = prepared.digest
    existing = MaskFile.objects.filter(sha256=digest).first()
    if existing is not None:
        return existing
    compressed = prepared.compressed()
    name = default_storage.save(f"masks/{digest[:2]}/{digest}{prepared.suffix}", ContentFile(compressed))
    try:
        with transaction.atomic():
            return MaskFile.objects.create(
                sha256=digest, file=name, shape=prepared.shape, dtype=prepared.dtype, stored_bytes=len(compressed)
            )
    except IntegrityError:
        default_storage.delete(name)
        return MaskFile.objects.get(sha256=digest)


def mask_encoding(mask: MaskFile) -> str:
    """How a stored mask file is encoded: canonical runs (``.rle``) or a gzip stream of the raw array."""
    return MASK_ENCODING_RLE if mask.file.endswith(".rle") else MASK_ENCODING


def load_mask(mask: MaskFile) -> np.ndarray:
    with default_storage.open(mask.file, "rb") as handle:
        stored = handle.read()
    return expand_mask(mask_encoding(mask), stored, mask.shape, mask.dtype)


def mask_payload(mask: MaskFile) -> dict[str, Any]:
    """The API's encoded mask, from the stored bytes as they are (both encodings are the API's own)."""
    with default_storage.open(mask.file, "rb") as handle:
        stored = handle.read()
    return {
        "encoding": mask_encoding(mask),
        "shape": list(mask.shape),
        "dtype": mask.dtype,
        "data": base64.b64encode(stored).decode("ascii"),
    }


def _locked_annotation(case: Case, reader: User | None, role: str) -> Annotation:
    """The annotation row, created if new, locked until the transaction ends: one query for an existing one (the
    lookup is the lock), where a lookup and then a locking read made two on every save (issue 19)."""
    if reader is None:
        annotation, _ = Annotation.objects.select_for_update().get_or_create(case=case, reader=reader, role=role)
        return annotation
    # A reader's own: get_or_create's steps with the lookup compiled once (config.compiled), on every save.
    values = {"case_id": case.pk, "reader_id": reader.pk, "role": role}
    found = _LOCKED_ANNOTATION.first(**values)
    if found is None:
        try:
            with transaction.atomic():  # a new row is this transaction's until it commits: as good as locked
                return Annotation.objects.create(case=case, reader=reader, role=role)
        except IntegrityError:  # another save of the same reading created it a moment ago: lock theirs
            found = _LOCKED_ANNOTATION.first(**values)
            if found is None:
                raise
    return cast(Annotation, found)


def _locked_annotation_query(*, case_id: int, reader_id: int, role: str) -> QuerySet[Annotation]:
    return Annotation.objects.select_for_update().filter(case_id=case_id, reader_id=reader_id, role=role)[:1]


_LOCKED_ANNOTATION = CompiledQuery(_locked_annotation_query, case_id=int, reader_id=int, role=str)


def annotation_save(
    *,
    case: Case,
    reader: User,
    role: str,
    base_revision: int,
    values: Any,
    submit: bool = False,
    geometry: StudyGeometry | None = None,
    assignment: Assignment | None = None,
) -> AnnotationRevision:
    """Save a new revision of the reader's annotation of the case.

    ``base_revision`` is the revision number the reader started from (0 for none). If someone saved in
    between, nothing is written and StaleRevisionError carries the current revision: no lost update and
    no silent last-writer-wins. ``submit`` also requires every required label and finalises the reading; it
    does not move the case: a reader submits through review.services.reading_submit, which calls this and hands
    the case over in the same transaction.

    ``assignment``: the reader's assignment to the case in ``role`` when the caller has read it
    (selectors.reading_assignment, with the id of the project's latest schema).
    """
    if assignment is None or (assignment.case_id, assignment.user_id, assignment.role) != (case.pk, reader.pk, role):
        assignment = Assignment.objects.filter(case=case, user=reader, role=role).first()
    if assignment is None:
        raise PermissionDeniedError(f"Case {case.pk} is not assigned to you as {role}")
    if assignment.status != Assignment.Status.ACTIVE:
        raise InvalidStateError(f"Your {role} reading of case {case.pk} is already submitted")
    schema = current_schema(case.project, latest_pk=getattr(assignment, "latest_schema_id", None))
    validated = validate_values(
        checked_definition(schema),
        values,
        geometry or study_geometry(case),
        complete=submit,
        draft=not submit,
        schema_checked=True,
    )  # before any lock or write: invalid input stores nothing; a draft's rule-breaking answers are kept, flagged
    # Hashing and compressing before the lock; the masks are stored only once the base is known to be
    # current, so that a refused (stale) save leaves no mask behind.
    prepared = {index: _PreparedMask(array) for index, array in validated.masks.items()}
    items = []
    for index, item in enumerate(validated.items):
        if index in prepared:
            item = {**item, "mask": {**item["mask"], "sha256": prepared[index].digest}}
        items.append(item)

    # A submission has no savepoint of its own: it is always part of its caller's transaction (reading_submit,
    # verification_decide, the panel's corrections: each atomic, none goes on after an error here), whose own
    # savepoint or rollback undoes it, so SAVEPOINT and RELEASE were two round trips for nothing on every submit
    # (issue 19). A draft keeps it: it may be saved inside a transaction that goes on after a refused save.
    with transaction.atomic(savepoint=not submit):
        # The row lock serialises saves of one annotation; the number check then rejects stale bases.
        annotation = _locked_annotation(case, reader, role)
        if annotation.status == Annotation.Status.SUBMITTED:
            raise InvalidStateError(f"Your {role} reading of case {case.pk} is already submitted")
        if base_revision != annotation.revision_count:
            raise StaleRevisionError(
                f"Changed elsewhere: you started from revision {base_revision}, the current one is "
                f"{annotation.revision_count}. Reload it and apply your change again.",
                extra={"current_revision": annotation.revision_count, "annotation": annotation.pk},
            )
        stored_masks = {index: _store_mask(mask) for index, mask in prepared.items()}
        revision = AnnotationRevision.objects.create(
            annotation=annotation,
            number=annotation.revision_count + 1,
            parent_id=annotation.current_revision_id,
            author=reader,
            origin=Annotation.Origin.HUMAN,
            schema=schema,
            items=items,
            problems=validated.problems,
            is_submission=submit,
        )
        if stored_masks:  # a new revision links nothing yet: add() inserts, where set() read the links first
            revision.masks.add(*stored_masks.values())
        annotation.current_revision = revision
        annotation.revision_count = revision.number
        fields = ["current_revision", "revision_count"]
        if submit:
            annotation.status = Annotation.Status.SUBMITTED
            annotation.submitted_at = timezone.now()
            fields += ["status", "submitted_at"]
            Assignment.objects.filter(pk=assignment.pk).update(
                status=Assignment.Status.SUBMITTED, submitted_at=timezone.now()
            )
        annotation.save(update_fields=fields)
    return revision


def _append_system_revision(
    *,
    case: Case,
    role: str,
    schema: LabelSchema,
    items: list[dict[str, Any]],
    masks: dict[int, np.ndarray] | dict[int, CheckedMask],
    origin: str,
    model_version: str = "",
    reuse_masks: list[MaskFile] | None = None,
) -> AnnotationRevision:
    """A revision of an annotation that no reader owns (AI proposal, consensus, adjudicated label)."""
    stored = {index: _store_mask(array) for index, array in masks.items()}
    items = [
        {**item, "mask": {**item["mask"], "sha256": stored[i].sha256}} if i in stored else item
        for i, item in enumerate(items)
    ]
    with transaction.atomic():
        annotation = _locked_annotation(case, None, role)
        revision = AnnotationRevision.objects.create(
            annotation=annotation,
            number=annotation.revision_count + 1,
            parent_id=annotation.current_revision_id,
            origin=origin,
            model_version=model_version,
            schema=schema,
            items=items,
            is_submission=role != "ai",
        )
        mask_rows = list(stored.values()) + list(reuse_masks or [])
        if mask_rows:
            revision.masks.add(*mask_rows)
        annotation.current_revision = revision
        annotation.revision_count = revision.number
        fields = ["current_revision", "revision_count"]
        if role != "ai":
            annotation.status = Annotation.Status.SUBMITTED
            annotation.submitted_at = timezone.now()
            fields += ["status", "submitted_at"]
        annotation.save(update_fields=fields)
    return revision


def annotation_save_machine(
    *, case: Case, model_version: str, values: Any, geometry: StudyGeometry | None = None
) -> AnnotationRevision:
    """Store an AI proposal as a revision of the case's machine annotation, tagged with the model version."""
    schema = current_schema(case.project)
    validated = validate_values(schema.definition, values, geometry or study_geometry(case), complete=False)
    return _append_system_revision(
        case=case,
        role="ai",
        schema=schema,
        items=validated.items,
        masks=validated.masks,
        origin=Annotation.Origin.AI,
        model_version=model_version,
    )


def annotation_save_imported(
    *,
    case: Case,
    role: str,
    schema: LabelSchema,
    items: list[dict[str, Any]],
    masks: dict[int, np.ndarray] | dict[int, CheckedMask],
    model_version: str,
) -> AnnotationRevision:
    """Store a label imported from a DICOM object (already validated) as a submitted revision of the case's
    annotation in ``role``, origin "imported"; ``model_version`` names the object it came from."""
    return _append_system_revision(
        case=case,
        role=role,
        schema=schema,
        items=items,
        masks=masks,
        origin=Annotation.Origin.IMPORTED,
        model_version=model_version,
    )


def annotation_save_derived(
    *,
    case: Case,
    role: str,
    items: list[dict[str, Any]],
    masks: dict[int, np.ndarray] | dict[int, CheckedMask] | None,
    schema: LabelSchema,
    copy_masks_from: AnnotationRevision | None = None,
) -> AnnotationRevision:
    """Store a label derived by the review workflow (role "consensus" or "adjudicated").

    ``items`` are already validated (they come from submitted readings or from their consensus); masks
    either arrive as arrays, or are shared with the revision they were copied from (stored once).
    """
    reuse = list(copy_masks_from.masks.all()) if copy_masks_from is not None else None
    return _append_system_revision(
        case=case,
        role=role,
        schema=schema,
        items=items,
        masks=masks or {},
        origin=Annotation.Origin.HUMAN,
        reuse_masks=reuse,
    )


def revision_items_for_output(revision: AnnotationRevision, *, include_masks: bool) -> list[dict[str, Any]]:
    """The revision's items as the API shows them: mask items carry the encoded array when asked."""
    # The mask rows only when their arrays are sent: a save's answer (include_masks=False) queried them for nothing.
    masks = {mask.sha256: mask for mask in revision.masks.all()} if include_masks else {}
    result = []
    for item in revision.items:
        mask_ref = item.get("mask")
        if isinstance(mask_ref, dict) and "sha256" in mask_ref:
            meta = {k: v for k, v in mask_ref.items() if k != "sha256"}
            if include_masks and mask_ref["sha256"] in masks:
                meta = {**meta, **mask_payload(masks[mask_ref["sha256"]])}
            item = {**item, "mask": meta}
        result.append(item)
    return result


def revisions_diff(*, annotation: Annotation, from_number: int, to_number: int) -> dict[str, Any]:
    from annotation.labels import diff_items

    revisions = {r.number: r for r in annotation.revisions.filter(number__in=[from_number, to_number])}
    for number in (from_number, to_number):
        if number not in revisions:
            raise NotFoundError(f"Annotation {annotation.pk} has no revision {number}")
    changes = diff_items(revisions[from_number].items, revisions[to_number].items)
    return {"annotation": annotation.pk, "from": from_number, "to": to_number, "changes": changes}


def cases_created_handler() -> Any:
    """settings.ANNOTATION_CASES_CREATED_HANDLER(project=, cases=): the inference app pre-labels new cases."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    return import_string(settings.ANNOTATION_CASES_CREATED_HANDLER)
