"""Quality dashboards for managers: agreement per label, reader performance and reader pairs.

One :func:`project_snapshot` loads everything a dashboard needs with a handful of bounded queries (cases,
the latest agreement result per case with its revisions, the submitted readings and the derived truth
labels, submitted assignments, adjudication events); the figures are then computed in Python.

Every figure is a finite float or ``None`` (with a ``note`` saying why); NaN never reaches JSON.

Conventions:

* "categorical" labels are study-level labels of kind single_choice, ordinal or multiple_choice (a
  multiple-choice answer counts as one category: its sorted selection joined by "+", "" when empty);
* kappa is Cohen's kappa, linearly weighted for ordinal labels, unweighted otherwise, with a percentile
  bootstrap 95% CI (:func:`review.agreement.bootstrap_ci`, fixed seed);
* readers are the people who submitted a first or second reading; the truth of a case is its adjudicated
  label when the panel decided, else its consensus label.
"""

from __future__ import annotations

import hashlib
import logging
import math
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from typing import Any, Literal

import numpy as np
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.db.models import Case as SqlCase
from django.db.models import Count, Exists, OuterRef, Subquery, Value, When

from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Case,
    CaseStatus,
    LabelSchema,
    Project,
    ReadingRole,
)
from review import notes as note_texts
from review.agreement import UndefinedMetricError, bootstrap_cohen_kappa, cohen_kappa
from review.evaluation import AGREED, NOT_COMPARED, entry_status
from review.models import AgreementResult, CaseEvent, CaseSummary, GoldScore

logger = logging.getLogger(__name__)

CATEGORICAL_KINDS = ("single_choice", "ordinal", "multiple_choice")
READING_ROLES = (ReadingRole.FIRST_READER.value, ReadingRole.SECOND_READER.value)
CONSENSUS_ROLE = "consensus"
ADJUDICATED_ROLE = "adjudicated"
BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 1000
DICE_BINS = 20
CACHE_ALIAS = "dashboards"
CACHE_SECONDS = 24 * 3600
CACHE_FORMAT = 2  # bump when the shape of the figures changes


# --- Loading ----------------------------------------------------------------------------------------------------


Items = dict[str, Any]  # a revision's study-level answers: label key -> value (the first, as study_value reads)


@dataclass
class Reading:
    """One submitted first or second reading."""

    case_id: int
    reader_id: int
    username: str
    role: str
    revision_id: int | None
    items: Items  # study-level answers: label key -> value
    submitted_at: Any


@dataclass
class ResultSummary:
    """The latest agreement result of a case, as the dashboards use it.

    ``flags``: one ``[label key, agreed (0/1), compared (0/1)]`` per label entry of the result; ``dice``: the
    Dice scores of each mask label. Plain lists, as parsed from the summary row: no object per entry."""

    agreed: bool
    flags: list[list[Any]]
    dice: dict[str, list[float]]


@dataclass
class Snapshot:
    labels: list[dict[str, Any]]
    status_of_case: dict[int, str]
    latest_result: dict[int, ResultSummary]
    # case id -> (first reading's items, second reading's items) of the revisions its latest result compared
    result_pair: dict[int, tuple[Items | None, Items | None]]
    readings: list[Reading]
    truth_items: dict[int, Items]  # case id -> adjudicated (else consensus) items
    winner_of_case: dict[int, int]  # adjudicated case id -> winning revision id
    minutes_of_user: dict[int, list[tuple[int, float]]] = field(default_factory=dict)  # user -> (case, minutes)
    # case id -> the case's updated_at as read with the rest: a summary keeps it ("seen") to tell when it is stale
    changed_of_case: dict[int, str] = field(default_factory=dict)
    refreshed: int = 0  # how many stale summaries were recomputed while loading it

    def categorical_labels(self) -> list[dict[str, Any]]:
        return [lab for lab in self.labels if lab.get("level") == "study" and lab.get("kind") in CATEGORICAL_KINDS]


def _schema_labels(project: Project) -> list[dict[str, Any]]:
    schema = LabelSchema.objects.filter(project=project).order_by("-version").first()
    return list(schema.definition.get("labels", [])) if schema is not None else []


def full_snapshot(project: Project, case_ids: Sequence[int] | None = None) -> Snapshot:
    """The dashboards' data read from the source tables (readings, revisions, agreement results, events,
    assignments) for the whole project or the given cases, in at most eight queries.

    Rows are read as tuples (``values_list``), never as model instances, and each revision's items are read
    once: the agreement results point at the readers' current revisions, whose items come with the readings.
    This is what the per-case summaries are computed from (:func:`case_summaries_refresh`).
    """
    labels = _schema_labels(project)
    cases = project.cases.all() if case_ids is None else project.cases.filter(pk__in=case_ids)
    status_of_case: dict[int, str] = {}
    changed_of_case: dict[int, str] = {}
    for pk, status, updated_at in cases.values_list("pk", "status", "updated_at"):
        status_of_case[pk] = status
        changed_of_case[pk] = updated_at.isoformat()

    def of_cases(queryset: Any, path: str) -> Any:
        queryset = queryset.filter(**{f"{path}project": project})
        return queryset if case_ids is None else queryset.filter(**{f"{path}pk__in": case_ids})

    readings: list[Reading] = []
    truth: dict[int, dict[str, Items]] = defaultdict(dict)
    items_of_revision: dict[int, Items] = {}
    annotations = (
        of_cases(Annotation.objects.filter(role__in=[*READING_ROLES, CONSENSUS_ROLE, ADJUDICATED_ROLE]), "case__")
        # A reading scored against a gold case's reference (review.gold) is no double reading: every reader served
        # the case reads it, and nobody's reading is compared with another's. It counts in the gold scores only,
        # never as a reader pair, peer agreement or agreement with the truth. (Readings made before a case became
        # gold with its final label are ordinary readings and stay.)
        .exclude(Exists(GoldScore.objects.filter(revision_id=OuterRef("current_revision_id"))))
        .order_by("case_id", "role", "submitted_at", "pk")
        .values_list(
            "case_id",
            "reader_id",
            "reader__username",
            "role",
            "status",
            "current_revision_id",
            "current_revision__items",
            "submitted_at",
        )
    )
    for case_id, reader_id, username, role, status, revision_id, items, submitted_at in annotations:
        items = _study_items(items)
        if revision_id is not None:
            items_of_revision[revision_id] = items
        if role in READING_ROLES:
            if status != Annotation.Status.SUBMITTED or reader_id is None:
                continue
            readings.append(
                Reading(
                    case_id=case_id,
                    reader_id=reader_id,
                    username=username,
                    role=role,
                    revision_id=revision_id,
                    items=items,
                    submitted_at=submitted_at,
                )
            )
        elif revision_id is not None:
            truth[case_id][role] = items
    truth_items = {
        case_id: roles.get(ADJUDICATED_ROLE, roles.get(CONSENSUS_ROLE, {})) for case_id, roles in truth.items()
    }

    results = of_cases(AgreementResult.objects.all(), "case__").order_by("case_id", "-created_at", "-pk")
    if connection.features.can_distinct_on_fields:
        results = results.distinct("case_id")  # PostgreSQL: only the latest result per case leaves the database
    latest_result: dict[int, ResultSummary] = {}
    latest_pk: dict[int, int] = {}
    for pk, case_id, agreed, result_labels in results.values_list("pk", "case_id", "agreed", "labels"):
        if case_id not in latest_result:
            entries = [entry for entry in result_labels or [] if isinstance(entry, dict)]
            latest_result[case_id] = ResultSummary(
                agreed=bool(agreed),
                flags=[_flag(e) for e in entries],
                dice={str(e.get("key")): _dice_values(e.get("metrics")) for e in entries if e.get("kind") == "mask"},
            )
            latest_pk[pk] = case_id

    compared: dict[int, dict[str, int]] = defaultdict(dict)  # case id -> role -> revision id
    through = of_cases(AgreementResult.revisions.through.objects.all(), "agreementresult__case__")
    for result_pk, revision_id, role in through.order_by("annotationrevision_id").values_list(
        "agreementresult_id", "annotationrevision_id", "annotationrevision__annotation__role"
    ):
        if result_pk in latest_pk:
            compared[latest_pk[result_pk]].setdefault(role, revision_id)
    missing = {rev for roles in compared.values() for rev in roles.values() if rev not in items_of_revision}
    if missing:  # a result that compared revisions since superseded (rare): read just those
        for revision_id, items in AnnotationRevision.objects.filter(pk__in=missing).values_list("pk", "items"):
            items_of_revision[revision_id] = _study_items(items)
    result_pair: dict[int, tuple[Items | None, Items | None]] = {}
    for case_id, roles in compared.items():
        first = roles.get(ReadingRole.FIRST_READER.value)
        second = roles.get(ReadingRole.SECOND_READER.value)
        result_pair[case_id] = (
            items_of_revision.get(first) if first is not None else None,
            items_of_revision.get(second) if second is not None else None,
        )

    winner_of_case: dict[int, int] = {}
    adjudications = of_cases(CaseEvent.objects.filter(to_status=CaseStatus.ADJUDICATED), "case__").order_by(
        "case_id", "created_at", "pk"
    )
    for case_id, metrics in adjudications.values_list("case_id", "metrics"):
        winner = (metrics or {}).get("winner_revision")
        if isinstance(winner, int):
            winner_of_case[case_id] = winner  # the last decision wins

    minutes: dict[int, list[tuple[int, float]]] = defaultdict(list)  # user -> (case, minutes)
    assignments = of_cases(
        Assignment.objects.filter(
            role__in=READING_ROLES, status=Assignment.Status.SUBMITTED, submitted_at__isnull=False
        ),
        "case__",
    ).values_list("case_id", "user_id", "created_at", "submitted_at")
    for case_id, user_id, created_at, submitted_at in assignments:
        if submitted_at is None:
            continue
        minutes[user_id].append((case_id, max((submitted_at - created_at).total_seconds(), 0.0) / 60.0))

    return Snapshot(
        labels=labels,
        status_of_case=status_of_case,
        latest_result=latest_result,
        result_pair=result_pair,
        readings=readings,
        truth_items=truth_items,
        winner_of_case=winner_of_case,
        minutes_of_user=dict(minutes),
        changed_of_case=changed_of_case,
    )


def _study_items(items: Any) -> Items:
    """The study-level answers of a revision (all the dashboards read of it): label key -> value."""
    answers: Items = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and "region" not in item and "value" in item:
                answers.setdefault(str(item.get("label")), item.get("value"))
    return answers


def _flag(entry: dict[str, Any]) -> list[Any]:
    """``[key, agreed, compared]`` of a label entry of an agreement result. A label not compared (free text,
    unanswered, attributes with no lesion) is never agreed; an attribute of a lesion found by one reader only
    is compared and disagreed (review.evaluation)."""
    status = entry_status(entry)
    return [str(entry.get("key")), int(status == AGREED), int(status != NOT_COMPARED)]


def _summaries_of(snap: Snapshot) -> dict[int, dict[str, Any]]:
    data: dict[int, dict[str, Any]] = {
        case_id: {
            "result": None,
            "pair": None,
            "readings": [],
            "truth": None,
            "winner": None,
            "minutes": [],
            "seen": snap.changed_of_case.get(case_id),
        }
        for case_id in snap.status_of_case
    }
    for case_id, result in snap.latest_result.items():
        # Compact (the dashboards parse one row per case): [agreed, [[key, agreed, compared], ...], {key: dice}]
        data[case_id]["result"] = [result.agreed, result.flags, {k: v for k, v in result.dice.items() if v}]
    for case_id, pair in snap.result_pair.items():
        data[case_id]["pair"] = list(pair)
    for reading in snap.readings:
        data[reading.case_id]["readings"].append(
            [
                reading.reader_id,
                reading.username,
                reading.role,
                reading.revision_id,
                reading.items,
                reading.submitted_at.isoformat() if reading.submitted_at is not None else None,
            ]
        )
    for case_id, items in snap.truth_items.items():
        data[case_id]["truth"] = items
    for case_id, winner in snap.winner_of_case.items():
        data[case_id]["winner"] = winner
    for user_id, spent in snap.minutes_of_user.items():
        for case_id, minutes in spent:
            data[case_id]["minutes"].append([user_id, minutes])
    return data


def case_summaries_refresh(*, project: Project, case_ids: Sequence[int] | None = None) -> int:
    """Recompute the dashboard summaries of the given cases (all the project's when None); returns how many.

    Called for the cases whose summary is stale when the dashboards are read or precomputed by a worker after a
    transition (:func:`project_snapshot`), and for a whole project by ``manage.py rebuild_dashboards`` (after bulk
    imports or direct database changes). Upserts, so it is safe to run twice, or at once in two processes.
    """
    summaries = _summaries_of(full_snapshot(project, case_ids))
    rows = [CaseSummary(case_id=case_id, project=project, data=data) for case_id, data in summaries.items()]
    CaseSummary.objects.bulk_create(
        rows, batch_size=2000, update_conflicts=True, unique_fields=["case"], update_fields=["data", "updated_at"]
    )
    return len(rows)


def _is_stale(been_further: bool, changed: str, data: dict[str, Any] | None) -> bool:
    """A summary is stale when the case changed since it was computed (a transition writes the case's
    ``updated_at``). A case still awaiting its first reading that never left it needs none: it has nothing but
    its status."""
    if data is None:
        return been_further
    return data.get("seen") != changed


def project_snapshot(project: Project) -> Snapshot:
    """The dashboards' data from the per-case summaries: three queries, one small JSON row per case.

    Case statuses come from the cases themselves. A transition does not rewrite its case's summary in the
    reader's request (issue 19: that was seven queries per transition); the summaries of cases changed since
    they were computed are recomputed here, by the worker that precomputes the figures after each change
    (review.tasks.refresh_dashboards) or, if it has not run yet, by the manager's request, so a dashboard is
    never older than the cases."""
    labels = _schema_labels(project)
    status_of_case: dict[int, str] = {}
    changed_of_case: dict[int, str] = {}
    moved: set[int] = set()
    # A case awaiting its first reading that has been further (made gold with its final label: its readings from
    # before stay and count) has a summary to make like any other; without one it was missing until a rebuild.
    been_further = SqlCase(
        When(status=CaseStatus.AWAITING_FIRST_READ, then=Exists(CaseEvent.objects.filter(case_id=OuterRef("pk")))),
        default=Value(True),
    )
    cases = project.cases.annotate(been_further=been_further)
    for pk, status, updated_at, further in cases.values_list("pk", "status", "updated_at", "been_further"):
        status_of_case[pk] = status
        changed_of_case[pk] = updated_at.isoformat()
        if further:
            moved.add(pk)
    summaries = dict(CaseSummary.objects.filter(project=project).order_by("case_id").values_list("case_id", "data"))
    stale = [pk for pk in status_of_case if _is_stale(pk in moved, changed_of_case[pk], summaries.get(pk))]
    if stale:
        case_summaries_refresh(project=project, case_ids=stale)
        summaries.update(CaseSummary.objects.filter(case_id__in=stale).values_list("case_id", "data"))
    snap = Snapshot(
        labels=labels,
        status_of_case=status_of_case,
        latest_result={},
        result_pair={},
        readings=[],
        truth_items={},
        winner_of_case={},
        minutes_of_user={},
        changed_of_case=changed_of_case,
        refreshed=len(stale),
    )
    minutes: dict[int, list[tuple[int, float]]] = defaultdict(list)
    parse = datetime.fromisoformat
    for case_id, data in sorted(summaries.items()):
        if case_id not in status_of_case:
            continue
        if data.get("result") is not None:
            agreed, flags, dice = data["result"]
            snap.latest_result[case_id] = ResultSummary(agreed=bool(agreed), flags=flags, dice=dice)
        if data.get("pair") is not None:
            first, second = data["pair"]
            snap.result_pair[case_id] = (first, second)
        for reader_id, username, role, revision_id, answers, submitted_at in data.get("readings", []):
            snap.readings.append(
                Reading(
                    case_id=case_id,
                    reader_id=reader_id,
                    username=username,
                    role=role,
                    revision_id=revision_id,
                    items=answers,
                    submitted_at=parse(submitted_at) if submitted_at else None,
                )
            )
        if data.get("truth") is not None:
            snap.truth_items[case_id] = data["truth"]
        if data.get("winner") is not None:
            snap.winner_of_case[case_id] = int(data["winner"])
        for user_id, spent in data.get("minutes", []):
            minutes[int(user_id)].append((case_id, float(spent)))
    snap.minutes_of_user = dict(minutes)
    return snap


# --- Cache ------------------------------------------------------------------------------------------------------


def figures_version(project: Project) -> str:
    """A stamp that changes whenever anything a dashboard shows may have changed, read in one query.

    Every workflow write moves one of these: a status transition touches the case's ``updated_at`` and appends
    an event, a submission stamps its assignment, an evaluation appends an agreement result, a schema change adds
    a version, new or deleted cases change the count. Draft saves do not move it: the dashboards read submitted
    readings and derived labels only, so readers autosaving all day do not keep the figures from being cached.
    """
    of_project = OuterRef("pk")

    def latest(queryset: Any, field_name: str) -> Subquery:
        return Subquery(queryset.order_by(f"-{field_name}").values(field_name)[:1])

    row = (
        Project.objects.filter(pk=project.pk)
        .annotate(
            cases_n=Subquery(
                Case.objects.filter(project=of_project)
                .order_by()
                .values("project")
                .annotate(n=Count("pk"))
                .values("n")[:1]
            ),
            case_changed=latest(Case.objects.filter(project=of_project), "updated_at"),
            event=latest(CaseEvent.objects.filter(case__project=of_project), "pk"),
            result=latest(AgreementResult.objects.filter(case__project=of_project), "pk"),
            submitted=latest(
                Assignment.objects.filter(case__project=of_project, submitted_at__isnull=False), "submitted_at"
            ),
            schema=latest(LabelSchema.objects.filter(project=of_project), "pk"),
            summary=latest(CaseSummary.objects.filter(project=of_project), "updated_at"),
        )
        .values_list("cases_n", "case_changed", "event", "result", "submitted", "schema", "summary")
        .first()
    )
    return hashlib.sha256(repr(row).encode()).hexdigest()[:24]


def _cache_key(project: Project, name: str, version: str) -> str:
    return f"review:dashboards:v{CACHE_FORMAT}:{project.pk}:{version}:{name}"


def dashboard_figures(project: Project, name: Literal["dashboard", "readers", "reader-pairs"]) -> Any:
    """The figures of one dashboard, from the cache when nothing changed since they were computed.

    A miss loads one snapshot and computes all three dashboards from it (a manager's screen asks for all three),
    so each later request costs the version query and one cache read. Entries are keyed by the version stamp: a
    change makes a new key and the stale entry is never read again (it expires after CACHE_SECONDS).
    """
    version = figures_version(project)
    found = _cache().get(_cache_key(project, name, version))
    if found is not None:
        return found
    return _compute_and_store(project, version)[name]


def _cache() -> Any:
    return caches[CACHE_ALIAS] if CACHE_ALIAS in settings.CACHES else caches["default"]


def _compute_and_store(project: Project, version: str) -> dict[str, Any]:
    snapshot = project_snapshot(project)
    if snapshot.refreshed:  # the stamp read before covered the stale summaries: key the figures by the new one
        version = figures_version(project)
    computed = {
        "dashboard": project_dashboard(project, snapshot),
        "readers": reader_stats(project, snapshot),
        "reader-pairs": reader_pairs(project, snapshot),
    }
    _cache().set_many({_cache_key(project, key, version): value for key, value in computed.items()}, CACHE_SECONDS)
    return computed


def dashboards_precompute(project_id: int, *, max_rounds: int = 3) -> int:
    """Compute and cache the figures for the project's current state, as the worker does after each change, so
    that the manager's next request is a cache read. Returns how many times it computed (0: already current).

    One refresh per project at a time (a cache lock); the one running re-checks the stamp when it finishes, so a
    burst of changes costs a computation or two rather than one each."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    cache = _cache()
    lock = f"review:dashboards:refreshing:{project_id}"
    if not cache.add(lock, 1, timeout=600):
        return 0
    computed = 0
    try:
        for _ in range(max_rounds):
            version = figures_version(project)
            if cache.get(_cache_key(project, "dashboard", version)) is not None:
                break
            _compute_and_store(project, version)
            computed += 1
    finally:
        cache.delete(lock)
    return computed


# A worker's refresh runs REFRESH_DELAY_S after it is queued; until REFRESH_MARGIN_S before that, the queued one
# covers any change committed meanwhile and no other is queued (per process, per project).
REFRESH_DELAY_S = 2.0
REFRESH_MARGIN_S = 0.5
_refresh_due: dict[int, float] = {}
_refresh_lock = threading.Lock()


def schedule_dashboards_refresh(project_id: int) -> None:
    """After the surrounding transaction commits, ask a worker to refresh the project's dashboards.

    Best effort: the figures are computed on request anyway, so a broker that is away must not turn a committed
    reading or vote into an error.

    Once per project per transaction: a submission that moves its case asked two or three times (the hand-over
    and each transition), each a message to the broker in the reader's request and a whole-project recomputation
    in the worker (issue 19). A request already waiting for the commit in this transaction, or in one enclosing
    this savepoint (so it is kept whenever this one would be), covers this one."""
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        current = set(connection.savepoint_ids)
        for savepoints, callback, _robust in connection.run_on_commit:
            if getattr(callback, "dashboards_project", None) == project_id and savepoints <= current:
                return

    def send() -> None:
        from review.tasks import refresh_dashboards

        # One message per project per REFRESH_DELAY_S from each process: the refresh runs that long after it is
        # queued, so a change committed before it starts (this one: send runs after the commit) is covered by it.
        # Under 50 readers a message on every submission cost the reader's request a few ms of CPU each (issue 19).
        now = time.monotonic()
        queued = not refresh_dashboards.app.conf.task_always_eager  # an eager refresh has run: nothing is pending
        with _refresh_lock:
            if _refresh_due.get(project_id, 0.0) > now + REFRESH_MARGIN_S:
                return
            if queued:
                _refresh_due[project_id] = now + REFRESH_DELAY_S
        try:
            refresh_dashboards.apply_async(
                args=(project_id,), countdown=REFRESH_DELAY_S, retry=False, ignore_result=True
            )
        except Exception as exc:
            with _refresh_lock:
                _refresh_due.pop(project_id, None)  # not queued: the next change tries again
            logger.warning("dashboards refresh for project %s not queued: %s", project_id, exc)

    send.dashboards_project = project_id  # type: ignore[attr-defined]
    transaction.on_commit(send)


# --- Helpers ----------------------------------------------------------------------------------------------------


def _finite(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _choice_keys(choices: Iterable[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for choice in choices:
        keys.append(str(choice["key"]))
        keys.extend(_choice_keys(choice.get("children", [])))
    return keys


def study_value(items: Sequence[dict[str, Any]] | Items, label: dict[str, Any]) -> Any:
    """The reader's answer to a study-level categorical label as a category, or None when unanswered.

    ``items`` is a revision's items, or its study-level answers as the snapshot keeps them (label -> value)."""
    answers = items if isinstance(items, dict) else _study_items(items)
    value = answers.get(label["key"])
    if value is None:
        return None
    if label["kind"] == "multiple_choice":
        return "+".join(sorted(str(v) for v in value))
    if label["kind"] == "ordinal":
        return int(value)
    return str(value)


def categories_of(label: dict[str, Any], observed: Iterable[Any]) -> list[Any]:
    """The category order of a label: the schema's choices (or grades), then anything else observed."""
    if label["kind"] == "ordinal":
        base: list[Any] = [int(grade["value"]) for grade in label.get("scale", [])]
    elif label["kind"] == "single_choice":
        base = _choice_keys(label.get("choices", []))
    else:
        base = []
    extra = sorted({v for v in observed if v not in base}, key=repr)
    return base + extra


def kappa_figure(label: dict[str, Any], a: list[Any], b: list[Any], *, with_ci: bool = True) -> dict[str, Any]:
    """Cohen's kappa of two paired rating lists (linear weights for ordinal labels), with a bootstrap 95% CI."""
    weights: Literal["linear"] | None = "linear" if label["kind"] == "ordinal" else None
    categories = categories_of(label, [*a, *b])
    figure: dict[str, Any] = {
        "value": None,
        "ci_low": None,
        "ci_high": None,
        "weights": weights or "none",
        "n": len(a),
        "note": "",
    }
    if not a:
        figure["note"] = note_texts.NO_PAIRED_ANSWER
        return figure

    try:
        if with_ci:
            # Vectorised: identical to bootstrap_ci(cohen_kappa, ...) with the same seed, without 1,000 calls.
            estimate, low, high = bootstrap_cohen_kappa(
                np.asarray(a, dtype=object),
                np.asarray(b, dtype=object),
                weights=weights,
                labels=categories,
                n_resamples=BOOTSTRAP_RESAMPLES,
                seed=BOOTSTRAP_SEED,
            )
            figure.update(value=_finite(estimate), ci_low=_finite(low), ci_high=_finite(high))
        else:
            figure["value"] = _finite(cohen_kappa(a, b, weights=weights, labels=categories))
    except UndefinedMetricError as error:
        figure["note"] = note_texts.UNDEFINED % {"why": error}
    return figure


def _dice_values(metrics: Any) -> list[float]:
    """Every Dice score in a mask label's metrics (nested by series, segment and reader pair)."""
    found: list[float] = []
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            if key == "dice" and isinstance(value, int | float) and math.isfinite(value):
                found.append(float(value))
            else:
                found.extend(_dice_values(value))
    elif isinstance(metrics, list):
        for value in metrics:
            found.extend(_dice_values(value))
    return found


def distribution(values: list[float]) -> dict[str, Any]:
    """Quartiles and a fixed-bin histogram of Dice scores (not the scores themselves: 30,000 of them are no chart).

    The histogram has DICE_BINS equal bins over [0, 1]; the last bin includes 1.0.
    """
    edges = [round(i / DICE_BINS, 6) for i in range(DICE_BINS + 1)]
    if not values:
        return {
            "n": 0,
            "median": None,
            "q1": None,
            "q3": None,
            "min": None,
            "max": None,
            "histogram": {"edges": edges, "counts": [0] * DICE_BINS},
            "note": note_texts.NO_DICE,
        }
    array = np.asarray(values, dtype=np.float64)
    q1, median, q3 = np.percentile(array, [25, 50, 75])
    counts, _ = np.histogram(np.clip(array, 0.0, 1.0), bins=DICE_BINS, range=(0.0, 1.0))
    return {
        "n": int(array.size),
        "median": _finite(median),
        "q1": _finite(q1),
        "q3": _finite(q3),
        "min": _finite(float(array.min())),
        "max": _finite(float(array.max())),
        "histogram": {"edges": edges, "counts": [int(c) for c in counts]},
        "note": "",
    }


def _rate(numerator: int, denominator: int) -> float | None:
    return _finite(numerator / denominator) if denominator else None


# --- Project dashboard ------------------------------------------------------------------------------------------


def project_dashboard(project: Project, snapshot: Snapshot | None = None) -> dict[str, Any]:
    snap = snapshot or project_snapshot(project)
    label_rows = []
    # Per label key: [entries, compared entries, agreeing compared entries]
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    dice_of_label: dict[str, list[float]] = defaultdict(list)
    for result in snap.latest_result.values():
        for flag_key, ok, was_compared in result.flags:
            tallied = tally[flag_key]
            tallied[0] += 1
            if was_compared:
                tallied[1] += 1
                tallied[2] += bool(ok)
        for dice_key, values in result.dice.items():
            dice_of_label[dice_key].extend(values)
    for label in snap.labels:
        key, kind = label["key"], label["kind"]
        n_entries, n_compared, n_agreeing = tally.get(key, [0, 0, 0])
        row: dict[str, Any] = {
            "key": key,
            "kind": kind,
            "level": label.get("level", ""),
            "n_cases": n_entries,
            "n_compared": n_compared,
            "n_agreed": n_agreeing,
            "n_not_compared": n_entries - n_compared,
            "percent_agreement": _rate(n_agreeing, n_compared),
            "note": "" if n_compared else (note_texts.NOT_COMPARED if n_entries else note_texts.NO_EVALUATED_CASE),
            "kappa": None,
            "dice": None,
        }
        if label.get("level") == "study" and kind in CATEGORICAL_KINDS:
            a: list[Any] = []
            b: list[Any] = []
            for case_id in snap.latest_result:
                first, second = snap.result_pair.get(case_id, (None, None))
                if first is None or second is None:
                    continue
                va, vb = study_value(first, label), study_value(second, label)
                if va is not None and vb is not None:
                    a.append(va)
                    b.append(vb)
            row["kappa"] = kappa_figure(label, a, b)
        if kind == "mask":
            row["dice"] = distribution(dice_of_label.get(key, []))
        label_rows.append(row)

    evaluated = len(snap.latest_result)
    disputed = sum(not result.agreed for result in snap.latest_result.values())
    first_revision = {r.case_id: r.revision_id for r in snap.readings if r.role == ReadingRole.FIRST_READER}
    adjudicated = [c for c, status in snap.status_of_case.items() if status == CaseStatus.ADJUDICATED]
    decided = [c for c in adjudicated if c in snap.winner_of_case]
    overturned = sum(snap.winner_of_case[c] != first_revision.get(c) for c in decided)
    counts = {status: 0 for status in CaseStatus.values}
    for status in snap.status_of_case.values():
        counts[status] = counts.get(status, 0) + 1
    return {
        "project": project.slug,
        "cases": len(snap.status_of_case),
        "evaluated": evaluated,
        "disputed": disputed,
        "dispute_rate": _rate(disputed, evaluated),
        "adjudicated": len(decided),
        "overturned": overturned,
        "panel_overturn_rate": _rate(overturned, len(decided)),
        "status_counts": counts,
        "labels": label_rows,
    }


# --- Readers ----------------------------------------------------------------------------------------------------


def _iso_week(moment: Any) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def reader_stats(project: Project, snapshot: Snapshot | None = None) -> list[dict[str, Any]]:
    snap = snapshot or project_snapshot(project)
    categorical = snap.categorical_labels()
    categorical_keys = {label["key"] for label in categorical}
    by_reader: dict[int, list[Reading]] = defaultdict(list)
    for reading in snap.readings:
        by_reader[reading.reader_id].append(reading)

    rows = []
    for reader_id, readings in by_reader.items():
        cases = {r.case_id for r in readings}
        minutes = [spent for _case, spent in snap.minutes_of_user.get(reader_id, [])]

        # Peer agreement: the agreed flags of the categorical labels of the cases they read.
        flags_of_case: dict[int, list[bool]] = {}
        for case_id in cases:
            result = snap.latest_result.get(case_id)
            if result is not None:
                # Labels not compared say nothing about agreement: neither agreed nor disagreed.
                flags_of_case[case_id] = [
                    bool(ok) for key, ok, compared in result.flags if key in categorical_keys and compared
                ]
        flags = [flag for case_flags in flags_of_case.values() for flag in case_flags]

        # Agreement with the truth (adjudicated, else consensus), label by label.
        truth_rows = []
        for label in categorical:
            mine: list[Any] = []
            truth: list[Any] = []
            for reading in readings:
                if reading.case_id not in snap.truth_items:
                    continue
                va = study_value(reading.items, label)
                vt = study_value(snap.truth_items[reading.case_id], label)
                if va is not None and vt is not None:
                    mine.append(va)
                    truth.append(vt)
            truth_row: dict[str, Any] = {
                "key": label["key"],
                "kind": label["kind"],
                "n": len(mine),
                "percent_agreement": _rate(sum(x == y for x, y in zip(mine, truth, strict=True)), len(mine)),
                "kappa": kappa_figure(label, mine, truth, with_ci=False),
                "positive": None,
                "sensitivity": None,
                "specificity": None,
                "note": "",
            }
            choices = _choice_keys(label.get("choices", []))
            if label["kind"] == "single_choice" and len(choices) == 2:
                positive = choices[0]
                tp = sum(x == positive and y == positive for x, y in zip(mine, truth, strict=True))
                fn = sum(x != positive and y == positive for x, y in zip(mine, truth, strict=True))
                tn = sum(x != positive and y != positive for x, y in zip(mine, truth, strict=True))
                fp = sum(x == positive and y != positive for x, y in zip(mine, truth, strict=True))
                truth_row.update(positive=positive, sensitivity=_rate(tp, tp + fn), specificity=_rate(tn, tn + fp))
                notes = []
                if tp + fn == 0:
                    notes.append(note_texts.NO_POSITIVE)
                if tn + fp == 0:
                    notes.append(note_texts.NO_NEGATIVE)
                truth_row["note"] = "; ".join(notes)
            truth_rows.append(truth_row)

        # Weekly trend by the ISO week of submission.
        weeks: dict[str, set[int]] = defaultdict(set)
        for reading in readings:
            if reading.submitted_at is not None:
                weeks[_iso_week(reading.submitted_at)].add(reading.case_id)
        weekly = []
        for week in sorted(weeks):
            week_flags = [flag for c in weeks[week] for flag in flags_of_case.get(c, [])]
            weekly.append(
                {
                    "week": week,
                    "cases_read": len(weeks[week]),
                    "agreement_rate": _rate(sum(week_flags), len(week_flags)),
                }
            )
        rows.append(
            {
                "user_id": reader_id,
                "username": readings[0].username,
                "cases_read": len(cases),
                "median_minutes": _finite(statistics.median(minutes), 4) if minutes else None,
                "peer_agreement": {"rate": _rate(sum(flags), len(flags)), "n": len(flags)},
                "truth": truth_rows,
                "weekly": weekly,
            }
        )
    return sorted(rows, key=lambda row: row["username"])


# --- Reader pairs -----------------------------------------------------------------------------------------------


def reader_pairs(project: Project, snapshot: Snapshot | None = None) -> list[dict[str, Any]]:
    snap = snapshot or project_snapshot(project)
    categorical = snap.categorical_labels()
    per_case: dict[int, dict[str, Reading]] = defaultdict(dict)
    for reading in snap.readings:
        per_case[reading.case_id].setdefault(reading.username, reading)
    shared: dict[tuple[str, str], list[tuple[Reading, Reading]]] = defaultdict(list)
    for case_id in sorted(per_case):
        readers = per_case[case_id]
        for a, b in combinations(sorted(readers), 2):
            shared[(a, b)].append((readers[a], readers[b]))

    rows = []
    for (name_a, name_b), pairs in sorted(shared.items()):
        label_rows = []
        for label in categorical:
            answers_a: list[Any] = []
            answers_b: list[Any] = []
            for ra, rb in pairs:
                va, vb = study_value(ra.items, label), study_value(rb.items, label)
                if va is not None and vb is not None:
                    answers_a.append(va)
                    answers_b.append(vb)
            categories = categories_of(label, [*answers_a, *answers_b])
            position = {category: i for i, category in enumerate(categories)}
            matrix = [[0] * len(categories) for _ in categories]
            for va, vb in zip(answers_a, answers_b, strict=True):
                matrix[position[va]][position[vb]] += 1
            kappa = kappa_figure(label, answers_a, answers_b, with_ci=False)
            label_rows.append(
                {
                    "key": label["key"],
                    "kind": label["kind"],
                    "categories": [str(c) for c in categories],
                    "matrix": matrix,
                    "n": len(answers_a),
                    "kappa": kappa["value"],
                    "weights": kappa["weights"],
                    "note": kappa["note"],
                }
            )
        rows.append({"reader_a": name_a, "reader_b": name_b, "cases": len(pairs), "labels": label_rows})
    return rows
