"""Reads for exports: which cases a filter selects (with the revision of each final label), their provenance,
and the exports a user may see."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from annotation.models import Annotation, AnnotationRevision, Case, CaseStatus, Project, ReadingRole
from config.types import AnyUser
from datasets.models import Export
from imaging.models import Series
from review.evaluation import entry_status
from review.models import AgreementResult, CaseEvent, GoldCase, PanelVote

UID_PATTERN = re.compile(r"\b\d+(?:\.\d+){3,}\b")
# QA levels in increasing order of verification; a case counts at its level and every lower one.
QA_LEVELS = {"single_read": 1, "agreed": 2, "adjudicated": 3}
QA_LEVEL_OF_STATUS = {
    CaseStatus.SINGLE_READ: "single_read",
    CaseStatus.AGREED: "agreed",
    CaseStatus.ADJUDICATED: "adjudicated",
}
# Gold-standard cases, exported only when asked for: their reference label is the final label.
GOLD_LEVEL = "gold"
# The annotation holding the final label at each level.
FINAL_ROLE = {"single_read": ReadingRole.FIRST_READER, "agreed": "consensus", "adjudicated": "adjudicated"}


@dataclass
class SelectedCase:
    case_id: int
    revision_id: int
    qa_level: str


def select_cases(
    *,
    project: Project,
    min_qa_level: str,
    modalities: list[str],
    study_date_from: str,
    study_date_to: str,
    include_gold: bool = False,
) -> list[SelectedCase]:
    """Cases at or above ``min_qa_level`` matching the filters, each with the revision of its final label.

    Gold-standard cases (review.gold) are left out: their label is the reference readers are measured against,
    and a dataset that also trains or tests on it would leak the test. ``include_gold`` adds them, each with
    its reference as the final label (QA level "gold")."""
    statuses = [s for s, level in QA_LEVEL_OF_STATUS.items() if QA_LEVELS[level] >= QA_LEVELS[min_qa_level]]
    cases = Case.objects.filter(project=project)
    if include_gold:
        cases = cases.filter(Q(status__in=statuses, gold__isnull=True) | Q(gold__isnull=False))
    else:
        cases = cases.filter(status__in=statuses, gold__isnull=True)
    if modalities:
        with_modality = Series.objects.filter(modality__in=modalities).values("study_id")
        cases = cases.filter(study_id__in=with_modality)
    if study_date_from:
        cases = cases.filter(study__study_date__gte=study_date_from)
    if study_date_to:
        cases = cases.filter(study__study_date__lte=study_date_to)
    rows = list(cases.order_by("pk").values_list("pk", "status"))
    gold_references = dict(
        GoldCase.objects.filter(case_id__in=[pk for pk, _ in rows]).values_list("case_id", "reference_id")
    )
    finals: dict[tuple[int, str], int] = {}
    annotations = Annotation.objects.filter(
        case_id__in=[pk for pk, _ in rows],
        role__in=set(FINAL_ROLE.values()),
        status=Annotation.Status.SUBMITTED,
        current_revision__isnull=False,
    ).values_list("case_id", "role", "current_revision_id")
    for case_id, role, revision_id in annotations:
        finals[(case_id, role)] = revision_id
    selected = []
    for case_id, status in rows:
        if case_id in gold_references:
            selected.append(SelectedCase(case_id=case_id, revision_id=gold_references[case_id], qa_level=GOLD_LEVEL))
            continue
        level = QA_LEVEL_OF_STATUS[CaseStatus(status)]
        final_id = finals.get((case_id, FINAL_ROLE[level]))
        if level == "single_read":
            # A single reading accepted with the agreeing AI proposal may have a consensus of the two as its final
            # label (review.adaptive, policy.adaptive_ai_consensus): that one, else the reading as drawn.
            final_id = finals.get((case_id, "consensus"), final_id)
        if final_id is not None:
            selected.append(SelectedCase(case_id=case_id, revision_id=final_id, qa_level=level))
    return selected


def exports_of(project: Project) -> QuerySet[Export]:
    return Export.objects.filter(project=project).select_related("job", "created_by", "project").order_by("-version")


def export_for(project: Project, export_id: int) -> Export | None:
    return exports_of(project).filter(pk=export_id).first()


def visible_exports(user: AnyUser) -> QuerySet[Export]:
    from annotation.selectors import projects_for_user

    return Export.objects.filter(project__in=projects_for_user(user))


def _flat_metrics(metrics: dict[str, Any], rename: Callable[[str], str], prefix: str = "") -> dict[str, Any]:
    """Numeric metrics as "outer/inner" keys, reader names and UIDs in the keys renamed for the export."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = prefix + rename(str(key))
        if isinstance(value, dict):
            flat.update(_flat_metrics(value, rename, name + "/"))
        elif isinstance(value, (int, float, bool)) or value is None:
            flat[name] = value
    return dict(sorted(flat.items()))


@dataclass
class ProvenanceRows:
    """What ``case_provenance`` reads, for many cases in four queries (an export read them case by case, four
    queries each; issue 19): annotations as of the snapshot, reader names, the latest agreement and the panel
    votes, by case id."""

    annotations: dict[int, list[Annotation]]
    names: dict[int, list[tuple[int, str]]]
    agreement: dict[int, AgreementResult]
    votes: dict[int, list[PanelVote]]


def provenance_rows(case_ids: list[int], as_of: datetime) -> ProvenanceRows:
    rows = ProvenanceRows(annotations={}, names={}, agreement={}, votes={})
    for annotation in (
        Annotation.objects.filter(case_id__in=case_ids, created_at__lte=as_of)
        .select_related("current_revision")
        .order_by("pk")
    ):
        rows.annotations.setdefault(annotation.case_id, []).append(annotation)
    for case_id, reader, username in Annotation.objects.filter(case_id__in=case_ids, reader__isnull=False).values_list(
        "case_id", "reader_id", "reader__username"
    ):
        rows.names.setdefault(case_id, []).append((reader, username))
    for result in (
        AgreementResult.objects.filter(case_id__in=case_ids, created_at__lte=as_of)
        .order_by("case_id", "-created_at", "-pk")
        .distinct("case_id")
    ):
        rows.agreement[result.case_id] = result
    for vote in PanelVote.objects.filter(case_id__in=case_ids, created_at__lte=as_of).order_by("created_at", "pk"):
        rows.votes.setdefault(vote.case_id, []).append(vote)
    return rows


def case_provenance(
    case: Case,
    final: AnnotationRevision,
    *,
    as_of: datetime,
    reader_id: Callable[[int], str],
    uid: Callable[[str], str],
    qa_level: str,
    rows: ProvenanceRows | None = None,
) -> dict[str, Any]:
    """How the case's final label was verified, as of the snapshot's creation (later appends are ignored, so a
    rebuild says the same). ``reader_id`` maps a user id to the pseudonymous reader id written out; ``rows``
    are those of ``provenance_rows`` for this case and others, read here when not given."""
    if rows is None:
        rows = provenance_rows([case.pk], as_of)
    readings = []
    model_versions = set()
    roles_of_revision: dict[int, str] = {}
    for annotation in rows.annotations.get(case.pk, []):
        revision = annotation.current_revision
        if revision is None:
            continue
        roles_of_revision[revision.pk] = annotation.role
        if annotation.role == "ai" or revision.origin == Annotation.Origin.AI:
            if revision.model_version:
                model_versions.add(revision.model_version)
            continue
        if annotation.reader_id is None:
            continue
        readings.append(
            {
                "reader": reader_id(annotation.reader_id),
                "role": annotation.role,
                "revision": revision.number,
                "submitted": annotation.status == Annotation.Status.SUBMITTED,
            }
        )
    names = {username: reader_id(pk) for pk, username in rows.names.get(case.pk, [])}
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) or "(?!)")

    def rename(text: str) -> str:
        text = UID_PATTERN.sub(lambda m: uid(m.group(0)), text)
        return pattern.sub(lambda m: names[m.group(0)], text)

    agreement_row = rows.agreement.get(case.pk)
    agreement = None
    if agreement_row is not None:
        entries = agreement_row.labels if isinstance(agreement_row.labels, list) else []
        agreement = {
            "agreed": agreement_row.agreed,
            "labels": {
                str(entry.get("key")): {
                    "kind": entry.get("kind"),
                    # agreed, disagreed or not_compared: "agreed": false alone would read as a disagreement
                    "status": entry_status(entry),
                    "agreed": entry.get("agreed"),
                    "metrics": _flat_metrics(entry.get("metrics") or {}, rename),
                }
                for entry in entries
                if isinstance(entry, dict)
            },
        }
    votes = rows.votes.get(case.pk, [])
    panel: dict[str, Any] | None = None
    if votes:
        panel = {
            "votes": [
                {
                    "expert": reader_id(vote.expert_id),
                    "for": "corrected label"
                    if vote.corrected_id
                    else roles_of_revision.get(vote.voted_for_id or 0, ""),
                }
                for vote in votes
            ],
        }
        decided = (
            CaseEvent.objects.filter(case=case, to_status=CaseStatus.ADJUDICATED, created_at__lte=as_of)
            .order_by("-created_at")
            .first()
        )
        if decided is not None:
            winner = int(decided.metrics.get("winner_revision") or 0)
            panel["decision"] = {
                "for": roles_of_revision.get(winner, "corrected label"),
                "tie_broken_by_chair": bool(decided.metrics.get("tie_broken_by_chair")),
            }
    if final.model_version:
        model_versions.add(final.model_version)
    return {
        "qa_level": qa_level,
        "final_label": {
            "role": roles_of_revision.get(final.pk, ""),
            "revision": final.number,
            "schema_version": final.schema.version,
            "origin": final.origin,
        },
        "readers": readings,
        "agreement": agreement,
        "panel": panel,
        "ai_model_versions": sorted(model_versions),
    }
