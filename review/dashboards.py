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

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

import numpy as np
from django.db.models import Prefetch

from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    CaseStatus,
    LabelSchema,
    Project,
    ReadingRole,
)
from review.agreement import UndefinedMetricError, bootstrap_ci, cohen_kappa
from review.models import AgreementResult, CaseEvent

CATEGORICAL_KINDS = ("single_choice", "ordinal", "multiple_choice")
READING_ROLES = (ReadingRole.FIRST_READER.value, ReadingRole.SECOND_READER.value)
CONSENSUS_ROLE = "consensus"
ADJUDICATED_ROLE = "adjudicated"
BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 1000


# --- Loading ----------------------------------------------------------------------------------------------------


@dataclass
class Reading:
    """One submitted first or second reading."""

    case_id: int
    reader_id: int
    username: str
    role: str
    revision_id: int | None
    items: list[dict[str, Any]]
    submitted_at: Any


@dataclass
class Snapshot:
    labels: list[dict[str, Any]]
    status_of_case: dict[int, str]
    latest_result: dict[int, AgreementResult]
    result_revisions: dict[int, list[AnnotationRevision]]  # case id -> revisions of its latest result
    readings: list[Reading]
    truth_items: dict[int, list[dict[str, Any]]]  # case id -> adjudicated (else consensus) items
    winner_of_case: dict[int, int]  # adjudicated case id -> winning revision id
    minutes_of_user: dict[int, list[float]] = field(default_factory=dict)

    def categorical_labels(self) -> list[dict[str, Any]]:
        return [lab for lab in self.labels if lab.get("level") == "study" and lab.get("kind") in CATEGORICAL_KINDS]


def project_snapshot(project: Project) -> Snapshot:
    """Everything the dashboards need, in seven queries whatever the number of cases."""
    schema = LabelSchema.objects.filter(project=project).order_by("-version").first()
    labels: list[dict[str, Any]] = list(schema.definition.get("labels", [])) if schema is not None else []
    status_of_case = dict(project.cases.values_list("pk", "status"))

    latest_result: dict[int, AgreementResult] = {}
    results = (
        AgreementResult.objects.filter(case__project=project)
        .order_by("case_id", "-created_at", "-pk")
        .prefetch_related(
            Prefetch("revisions", queryset=AnnotationRevision.objects.select_related("annotation").order_by("pk"))
        )
    )
    for result in results:
        latest_result.setdefault(result.case_id, result)
    result_revisions = {case_id: list(result.revisions.all()) for case_id, result in latest_result.items()}

    readings: list[Reading] = []
    truth: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    annotations = (
        Annotation.objects.filter(case__project=project, role__in=[*READING_ROLES, CONSENSUS_ROLE, ADJUDICATED_ROLE])
        .select_related("reader", "current_revision")
        .order_by("case_id", "role", "submitted_at", "pk")
    )
    for annotation in annotations:
        revision = annotation.current_revision
        if annotation.role in READING_ROLES:
            if annotation.status != Annotation.Status.SUBMITTED or annotation.reader is None:
                continue
            readings.append(
                Reading(
                    case_id=annotation.case_id,
                    reader_id=annotation.reader.pk,
                    username=annotation.reader.username,
                    role=annotation.role,
                    revision_id=annotation.current_revision_id,
                    items=list(revision.items) if revision is not None else [],
                    submitted_at=annotation.submitted_at,
                )
            )
        elif revision is not None:
            truth[annotation.case_id][annotation.role] = list(revision.items)
    truth_items = {
        case_id: roles.get(ADJUDICATED_ROLE, roles.get(CONSENSUS_ROLE, [])) for case_id, roles in truth.items()
    }

    winner_of_case: dict[int, int] = {}
    adjudications = CaseEvent.objects.filter(case__project=project, to_status=CaseStatus.ADJUDICATED).order_by(
        "case_id", "created_at", "pk"
    )
    for event in adjudications:
        winner = (event.metrics or {}).get("winner_revision")
        if isinstance(winner, int):
            winner_of_case[event.case_id] = winner  # the last decision wins

    minutes: dict[int, list[float]] = defaultdict(list)
    assignments = Assignment.objects.filter(
        case__project=project, role__in=READING_ROLES, status=Assignment.Status.SUBMITTED, submitted_at__isnull=False
    ).values_list("user_id", "created_at", "submitted_at")
    for user_id, created_at, submitted_at in assignments:
        if submitted_at is None:
            continue
        minutes[user_id].append(max((submitted_at - created_at).total_seconds(), 0.0) / 60.0)

    return Snapshot(
        labels=labels,
        status_of_case=status_of_case,
        latest_result=latest_result,
        result_revisions=result_revisions,
        readings=readings,
        truth_items=truth_items,
        winner_of_case=winner_of_case,
        minutes_of_user=dict(minutes),
    )


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


def study_value(items: Sequence[dict[str, Any]], label: dict[str, Any]) -> Any:
    """The reader's answer to a study-level categorical label as a category, or None when unanswered."""
    for item in items:
        if item.get("label") == label["key"] and "region" not in item:
            value = item.get("value")
            if value is None:
                return None
            if label["kind"] == "multiple_choice":
                return "+".join(sorted(str(v) for v in value))
            if label["kind"] == "ordinal":
                return int(value)
            return str(value)
    return None


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
        figure["note"] = "undefined: no case with an answer from both readers"
        return figure

    def metric(x: Any, y: Any) -> float:
        return cohen_kappa(list(x), list(y), weights=weights, labels=categories)

    try:
        if with_ci:
            estimate, low, high = bootstrap_ci(
                metric,
                np.asarray(a, dtype=object),
                np.asarray(b, dtype=object),
                n_resamples=BOOTSTRAP_RESAMPLES,
                seed=BOOTSTRAP_SEED,
            )
            figure.update(value=_finite(estimate), ci_low=_finite(low), ci_high=_finite(high))
        else:
            figure["value"] = _finite(metric(a, b))
    except UndefinedMetricError as error:
        figure["note"] = f"undefined: {error}"
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
    ordered = sorted(values)
    if not ordered:
        return {"values": [], "median": None, "q1": None, "q3": None, "note": "no Dice score computed yet"}
    q1, median, q3 = np.percentile(np.asarray(ordered), [25, 50, 75])
    return {"values": ordered, "median": _finite(median), "q1": _finite(q1), "q3": _finite(q3), "note": ""}


def _rate(numerator: int, denominator: int) -> float | None:
    return _finite(numerator / denominator) if denominator else None


def _first_second(revisions: list[AnnotationRevision]) -> tuple[AnnotationRevision | None, AnnotationRevision | None]:
    first = next((r for r in revisions if r.annotation.role == ReadingRole.FIRST_READER), None)
    second = next((r for r in revisions if r.annotation.role == ReadingRole.SECOND_READER), None)
    return first, second


# --- Project dashboard ------------------------------------------------------------------------------------------


def project_dashboard(project: Project, snapshot: Snapshot | None = None) -> dict[str, Any]:
    snap = snapshot or project_snapshot(project)
    label_rows = []
    for label in snap.labels:
        key, kind = label["key"], label["kind"]
        entries = [
            entry for result in snap.latest_result.values() for entry in result.labels if entry.get("key") == key
        ]
        compared = [e for e in entries if (e.get("metrics") or {}).get("compared", True) is not False]
        row: dict[str, Any] = {
            "key": key,
            "kind": kind,
            "level": label.get("level", ""),
            "n_cases": len(entries),
            "percent_agreement": _rate(sum(bool(e.get("agreed")) for e in compared), len(compared)),
            "note": "" if compared else ("not compared" if entries else "no evaluated case"),
            "kappa": None,
            "dice": None,
        }
        if label.get("level") == "study" and kind in CATEGORICAL_KINDS:
            a: list[Any] = []
            b: list[Any] = []
            for case_id in snap.latest_result:
                first, second = _first_second(snap.result_revisions.get(case_id, []))
                if first is None or second is None:
                    continue
                va, vb = study_value(first.items, label), study_value(second.items, label)
                if va is not None and vb is not None:
                    a.append(va)
                    b.append(vb)
            row["kappa"] = kappa_figure(label, a, b)
        if kind == "mask":
            row["dice"] = distribution([d for e in entries for d in _dice_values(e.get("metrics"))])
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
        minutes = snap.minutes_of_user.get(reader_id, [])

        # Peer agreement: the agreed flags of the categorical labels of the cases they read.
        flags_of_case: dict[int, list[bool]] = {}
        for case_id in cases:
            result = snap.latest_result.get(case_id)
            if result is not None:
                flags_of_case[case_id] = [
                    bool(e.get("agreed")) for e in result.labels if e.get("key") in categorical_keys
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
                    notes.append("sensitivity undefined: no positive case in the truth")
                if tn + fp == 0:
                    notes.append("specificity undefined: no negative case in the truth")
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
