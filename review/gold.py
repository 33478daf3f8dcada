"""Gold-standard cases: readers measured against a reference label (issue 14).

A manager marks a case as gold with a reference: the case's own final label (its adjudicated or agreed
consensus label; the case is then read again), a reference reading posted for it, validated by the schema like
any reading, or a label imported for it from a DICOM SEG or RTSTRUCT (datasets.label_import, "use":
"gold_reference"; its LabelImport row keeps where it came from). A posted or imported reference needs a case
nobody has read yet: still awaiting its first reading, no submitted reading (a case further on in the workflow
has readings other readers may have seen; it becomes gold with its final label instead).

The policy mixes gold cases into readers' "next" at its gold rate (annotation.services serves them; nothing a
reader is shown tells them apart). A reader's submitted reading of a gold case is scored against the reference
with the agreement check's own comparisons (review.evaluation: agreement per label, Dice of masks, lesions
matched by the Hungarian matching) and stored as a GoldScore; the case does not move: it stays in the reading
phase, never goes to the panel and is left out of exports unless asked for. Managers see each reader's running
score with its confidence interval (gold_scores_of); the reader sees their own result only where the policy
allows it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as N_

from annotation.labels import validate_values
from annotation.models import Annotation, AnnotationRevision, Assignment, Case, CaseStatus, Project
from annotation.selectors import study_geometry
from annotation.services import annotation_save_derived, current_schema
from config.compiled import CompiledQuery
from config.errors import ApplicationError, ConflictError
from config.messages import message, names
from config.types import User
from review.dashboards import _dice_values, kappa_figure, study_value
from review.evaluation import AGREED, NOT_COMPARED, Reading, evaluate
from review.models import GoldCase, GoldScore, ReviewPolicy
from review.workflow import case_transition

GOLD_REFERENCE_ROLE = "gold_reference"
# Roles of a label imported for the case (datasets.label_import): as its reading, or straight as its reference.
IMPORTED_ROLES = ("imported", GOLD_REFERENCE_ROLE)
REFERENCE_NAME = "reference"
LESION_KINDS = ("box", "polygon", "point")
Z95 = 1.959963984540054
# Event reasons, stored as messages and shown in each viewer's language (config.messages).
E_GOLD_MARKED = N_("made a gold case with its %(label)s as the reference: read again, readers are scored")
E_GOLD_UNMARKED = N_("no longer a gold case: back to its %(label)s, unread since it was marked")
# What the reference label is, in both languages (a parameter of the messages above).
REFERENCE_LABEL = {
    "consensus": {"en": "agreed label", "zh-hans": "一致标注"},
    "adjudicated": {"en": "adjudicated label", "zh-hans": "裁定标注"},
}


# --- Marking -------------------------------------------------------------------------------------------------


@transaction.atomic
def gold_case_mark(
    *, case: Case, marked_by: User | None, reference_revision: AnnotationRevision | None = None, values: Any = None
) -> GoldCase:
    """Make ``case`` a gold case. The reference is either its own final label (``reference_revision``: the
    adjudicated or consensus revision of this case; an agreed or adjudicated case is then opened for reading
    again), a label imported for it (``reference_revision`` of origin "imported": see gold_case_check_unread),
    or a reference reading (``values``), validated against the current schema and the study like a submitted
    reading. Nothing is stored when the request is refused."""
    case = Case.objects.select_for_update(of=("self",)).select_related("project", "study").get(pk=case.pk)
    if GoldCase.objects.filter(case=case).exists():
        raise ConflictError(_("Case %(case)s is already a gold case") % {"case": case.pk})
    if (reference_revision is None) == (values is None):
        raise ApplicationError(
            _("Give the reference either as a revision of this case's final label or as values, not both"),
            code="bad_reference",
        )
    if (
        reference_revision is not None
        and reference_revision.origin == Annotation.Origin.IMPORTED
        and reference_revision.annotation.case_id == case.pk
        and reference_revision.annotation.role in IMPORTED_ROLES
    ):
        gold_case_check_unread(case)
        return GoldCase.objects.create(
            case=case, reference=reference_revision, source=GoldCase.Source.IMPORTED, marked_by=marked_by
        )
    if reference_revision is not None:
        role = reference_revision.annotation.role
        if reference_revision.annotation.case_id != case.pk or role not in ("adjudicated", "consensus"):
            raise ApplicationError(
                _("The reference revision must be the adjudicated or agreed label of case %(case)s")
                % {"case": case.pk},
                code="bad_reference",
            )
        if case.status not in (CaseStatus.AGREED, CaseStatus.ADJUDICATED):
            raise ConflictError(_("Case %(case)s is %(status)s, not final") % {"case": case.pk, "status": case.status})
        gold = GoldCase.objects.create(case=case, reference=reference_revision, source=role, marked_by=marked_by)
        case_transition(
            case=case,
            to=CaseStatus.AWAITING_FIRST_READ,
            actor=marked_by,
            message=message(E_GOLD_MARKED, label=names(REFERENCE_LABEL[role])),
            metrics={"gold_case": gold.pk, "reference_revision": reference_revision.pk},
        )
        return gold
    gold_case_check_unread(case)
    schema = current_schema(case.project)
    validated = validate_values(schema.definition, values, study_geometry(case), complete=True)
    revision = annotation_save_derived(
        case=case, role=GOLD_REFERENCE_ROLE, items=validated.items, masks=validated.masks, schema=schema
    )
    return GoldCase.objects.create(case=case, reference=revision, source=GoldCase.Source.POSTED, marked_by=marked_by)


@transaction.atomic
def gold_case_unmark(*, case: Case, unmarked_by: User | None) -> None:
    """Make a gold case an ordinary case again (a manager marked the wrong case, or a wrong reference).

    Allowed only until a reader was served it. Refused (409) afterwards, because what a manager would expect
    from "unmark" can then no longer be had:
    - its scores are the readers' gold record, on the dashboard and under the adaptive policy's bar: deleting
      them would rewrite that record, and keeping them against a case that is not gold would leave scores
      nobody can trace back to a reference;
    - a gold case is read by every reader who is served it, beyond a case's reading slots and without the
      workflow moving on: as an ordinary case it would hold several first readings and no agreement step.
    The reference stays stored (its revision is immutable); a case made gold with its own final label goes back
    to that status (agreed or adjudicated), with an event saying why."""
    case = Case.objects.select_for_update(of=("self",)).get(pk=case.pk)
    gold = GoldCase.objects.filter(case=case).first()
    if gold is None:
        raise ConflictError(_("Case %(case)s is not a gold case") % {"case": case.pk})
    read = GoldScore.objects.filter(gold_case=gold).count()
    served = Assignment.objects.filter(case=case).exclude(role="panel_member").count()
    if read or served:
        raise ConflictError(
            _(
                "Case %(case)s stays a gold case: %(readers)s reader(s) have been served it and are measured "
                "against its reference. Unmark a gold case before any reader gets it."
            )
            % {"case": case.pk, "readers": max(read, served)},
            code="gold_case_in_use",
        )
    source = gold.source
    gold.delete()
    if source in (GoldCase.Source.ADJUDICATED, GoldCase.Source.CONSENSUS):
        back = CaseStatus.ADJUDICATED if source == GoldCase.Source.ADJUDICATED else CaseStatus.AGREED
        case_transition(
            case=case,
            to=back,
            actor=unmarked_by,
            message=message(E_GOLD_UNMARKED, label=names(REFERENCE_LABEL[source])),
            metrics={"gold_case_unmarked": True},
        )


def gold_case_check_unread(case: Case) -> None:
    """Refuse (409) a posted or imported reference for a case that is already gold, or that readers have got
    further with than a first reading in progress. A reading under way on a case still awaiting its first
    reading may go on: nothing of the reference is ever shown to it, and its submission is scored like any
    gold reading. A case with a submitted reading, or past its first reading (second reading, verification,
    panel, final), has readings other readers may have seen or a label of its own: it becomes gold with its
    final label once it has one. Called before an import stores anything, and again when marking."""
    if GoldCase.objects.filter(case_id=case.pk).exists():
        raise ConflictError(_("Case %(case)s is already a gold case") % {"case": case.pk})
    if (
        case.status != CaseStatus.AWAITING_FIRST_READ
        or Annotation.objects.filter(case=case, status=Annotation.Status.SUBMITTED, reader__isnull=False).exists()
    ):
        raise ConflictError(
            _("Case %(case)s already has submitted readings: mark it gold with its final label once it has one")
            % {"case": case.pk}
        )


def gold_case_of(case: Case) -> GoldCase | None:
    return GoldCase.objects.filter(case_id=case.pk).select_related("reference__schema").first()


# --- Scoring -------------------------------------------------------------------------------------------------


def _label_score(label: dict[str, Any], entry: dict[str, Any], reader: Reading, reference: Reading) -> dict[str, Any]:
    """One label's score: the agreement entry, plus the figures the running score adds up."""
    score: dict[str, Any] = {
        "key": entry["key"],
        "kind": entry["kind"],
        "status": entry["status"],
        "reasons": entry["reasons"],
    }
    kind = label["kind"]
    if label["level"] == "study" and kind in ("single_choice", "ordinal", "multiple_choice"):
        score["value"] = study_value(reader.items, label)
        score["reference_value"] = study_value(reference.items, label)
    if kind == "mask":
        dice = _dice_values(entry["metrics"])
        if dice:
            score["dice"] = min(dice)
        elif entry["status"] != NOT_COMPARED:
            score["dice"] = 0.0  # painted by one of the two only: nothing of the other's mask was found
    if kind in LESION_KINDS or (kind == "mask" and label["level"] == "region"):
        matching = entry.get("matching") or {}
        unmatched = matching.get("unmatched", {})
        score["tp"] = len(matching.get("pairs", []))
        score["fp"] = len(unmatched.get(reader.name, []))
        score["fn"] = len(unmatched.get(REFERENCE_NAME, []))
    return score


def _gold_of_case_query(*, case_id: int) -> QuerySet[GoldCase]:
    return GoldCase.objects.filter(case_id=case_id).select_related("reference__schema", "case").order_by("pk")[:1]


_GOLD_OF_CASE = CompiledQuery(_gold_of_case_query, case_id=int)


def gold_reading_score(*, revision: AnnotationRevision) -> GoldScore | None:
    """Score a submitted reading of a gold case against its reference; None when the case is not gold.

    Called by review.services.reading_submit in the submission's transaction, instead of moving the case."""
    annotation = revision.annotation
    gold = _GOLD_OF_CASE.first(case_id=annotation.case_id)  # on every submission: compiled once (issue 19)
    if gold is None or annotation.reader is None:
        return None
    from review.services import _reading_of, _slice_index, _thresholds, policy_for

    case = gold.case
    policy = policy_for(case)
    schema = revision.schema.definition
    reading = _reading_of(revision, annotation.reader.username)
    reference = _reading_of(gold.reference, REFERENCE_NAME)
    evaluation = evaluate(schema, [reading, reference], _thresholds(policy), _slice_index(case))
    labels_of = {label["key"]: label for label in schema["labels"]}
    # An imported reference (a SEG or RTSTRUCT) carries its mask label only: it says nothing about the other
    # labels, so the reader is measured on the labels it has, not counted wrong on every other one.
    scored = (
        {str(item.get("label")) for item in gold.reference.items}
        if gold.source == GoldCase.Source.IMPORTED
        else set(labels_of)
    )
    labels = [
        _label_score(labels_of[result.key], result.as_dict(), reading, reference)
        for result in evaluation.labels
        if result.key in labels_of and result.key in scored
    ]
    compared = [label for label in labels if label["status"] != NOT_COMPARED]
    dice = [label["dice"] for label in labels if "dice" in label]
    return GoldScore.objects.create(
        gold_case=gold,
        reader=annotation.reader,
        revision=revision,
        labels=labels,
        labels_agreed=sum(label["status"] == AGREED for label in compared),
        labels_compared=len(compared),
        dice=sum(dice) / len(dice) if dice else None,
        lesions_tp=sum(label.get("tp", 0) for label in labels),
        lesions_fp=sum(label.get("fp", 0) for label in labels),
        lesions_fn=sum(label.get("fn", 0) for label in labels),
    )


def gold_feedback_for(*, case: Case, reader: User) -> dict[str, Any] | None:
    """The reader's own result on a gold case, once submitted, where the policy shows it; None otherwise (the
    answer for a case that is not gold, so that asking tells a reader nothing before they submitted)."""
    policy = ReviewPolicy.objects.filter(project_id=case.project_id).first()
    if policy is None or not policy.gold_feedback:
        return None
    score = GoldScore.objects.filter(gold_case__case_id=case.pk, reader=reader).first()
    if score is None:
        return None
    return score_summary(score)


def score_summary(score: GoldScore) -> dict[str, Any]:
    return {
        "case": score.gold_case.case_id,
        "labels_agreed": score.labels_agreed,
        "labels_compared": score.labels_compared,
        "exact_agreement": _rate(score.labels_agreed, score.labels_compared),
        "dice": _round(score.dice),
        "lesions": {"tp": score.lesions_tp, "fp": score.lesions_fp, "fn": score.lesions_fn},
        "lesion_f1": _f1(score.lesions_tp, score.lesions_fp, score.lesions_fn),
        "labels": score.labels,
        "scored_at": score.created_at.isoformat(),
    }


# --- Running scores (managers) -------------------------------------------------------------------------------


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _rate(numerator: int, denominator: int) -> float | None:
    return _round(numerator / denominator) if denominator else None


def _f1(tp: int, fp: int, fn: int) -> float | None:
    return _rate(2 * tp, 2 * tp + fp + fn)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion (95 % by default): sound near 0 and 1 and for few cases, where the
    normal approximation runs outside [0, 1]."""
    if n == 0:
        return None, None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return _round(max(0.0, centre - half)), _round(min(1.0, centre + half))


def mean_interval(values: list[float], z: float = Z95) -> dict[str, Any]:
    """Mean with a normal-approximation 95 % interval (clipped to [0, 1]: Dice); no interval under two values."""
    if not values:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = sum(values) / len(values)
    if len(values) < 2:
        return {"value": _round(mean), "ci_low": None, "ci_high": None, "n": 1}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = z * sd / math.sqrt(len(values))
    return {
        "value": _round(mean),
        "ci_low": _round(max(0.0, mean - half)),
        "ci_high": _round(min(1.0, mean + half)),
        "n": len(values),
    }


def gold_scores_of(project: Project) -> list[dict[str, Any]]:
    """Per reader: gold cases read, exact agreement over the labels compared (Wilson 95 % CI), Cohen's kappa
    against the reference per study-level choice label (bootstrap CI), mean Dice (normal 95 % CI), lesion F1
    (pooled counts), and the trend: each gold case's exact agreement in the order read."""
    scores = list(
        GoldScore.objects.filter(gold_case__case__project=project)
        .select_related("reader", "gold_case")
        .order_by("reader__username", "created_at", "pk")
    )
    schema_labels = {label["key"]: label for label in current_schema(project).definition["labels"]}
    by_reader: dict[str, list[GoldScore]] = defaultdict(list)
    for score in scores:
        by_reader[score.reader.username].append(score)
    rows = []
    for reader, mine in by_reader.items():
        agreed = sum(s.labels_agreed for s in mine)
        compared = sum(s.labels_compared for s in mine)
        low, high = wilson_interval(agreed, compared)
        tp, fp, fn = (sum(getattr(s, f"lesions_{x}") for s in mine) for x in ("tp", "fp", "fn"))
        pairs: dict[str, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
        for s in mine:
            for label in s.labels:
                if label.get("value") is not None and label.get("reference_value") is not None:
                    pairs[label["key"]][0].append(label["value"])
                    pairs[label["key"]][1].append(label["reference_value"])
        kappa = {
            key: kappa_figure(schema_labels[key], a, b)
            for key, (a, b) in sorted(pairs.items())
            if key in schema_labels and schema_labels[key]["kind"] in ("single_choice", "ordinal")
        }
        rows.append(
            {
                "reader": reader,
                "gold_cases_read": len(mine),
                "exact_agreement": {
                    "value": _rate(agreed, compared),
                    "ci_low": low,
                    "ci_high": high,
                    "labels_agreed": agreed,
                    "labels_compared": compared,
                    "interval": "wilson_95",
                },
                "kappa": kappa,
                "dice": {**mean_interval([s.dice for s in mine if s.dice is not None]), "interval": "normal_95"},
                "lesions": {"tp": tp, "fp": fp, "fn": fn, "f1": _f1(tp, fp, fn)},
                "trend": [
                    {
                        "case": s.gold_case.case_id,
                        "scored_at": s.created_at.isoformat(),
                        "exact_agreement": _rate(s.labels_agreed, s.labels_compared),
                        "dice": _round(s.dice),
                    }
                    for s in mine
                ],
            }
        )
    return rows


def reader_gold_record(project: Project, reader: User) -> dict[str, Any]:
    """The reader's exact agreement on gold cases and its Wilson lower bound (the adaptive policy's bar)."""
    mine = GoldScore.objects.filter(gold_case__case__project=project, reader=reader)
    agreed = sum(s.labels_agreed for s in mine)
    compared = sum(s.labels_compared for s in mine)
    low, _high = wilson_interval(agreed, compared)
    return {"cases": mine.count(), "exact_agreement": _rate(agreed, compared), "ci_low": low}
