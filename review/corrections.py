"""Expert corrections: a seated expert's full corrected label of a case in panel (issue 13, item 2).

The expert starts from one of the case's readings (first, second, the AI proposal, or another expert's submitted
correction), which becomes revision 1 of their own reading (role panel_member); they change it like any reading
(drafts are revisions, validated by the schema), copy lesions in from the other readings, and submit it as their
vote with a rationale. Other seated experts may endorse it: their vote is then for that corrected label. Which
part of it came from whom is kept with it (review.provenance), and with the final label when it wins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from annotation.labels import mask_digest
from annotation.models import Annotation, AnnotationRevision, Assignment, Case, CaseStatus, ReadingRole
from annotation.selectors import annotations_visible_to
from annotation.services import annotation_save, load_mask, revision_items_for_output
from config.errors import ApplicationError, ConflictError, NotFoundError, PermissionDeniedError
from config.types import User
from review import services
from review.models import Correction, PanelVote
from review.provenance import Source, correction_provenance
from review.selectors import readings_of_revisions

# The readings an expert may start from or copy lesions from (besides other experts' submitted corrections).
SOURCE_ROLES = (ReadingRole.FIRST_READER, ReadingRole.SECOND_READER, "ai")


def _locked_case(case: Case, expert: User, what: str) -> Case:
    """The case row locked (corrections and votes of one case are taken one at a time), after the checks every
    correction step shares: the case is in panel, the user sits on its panel and has not voted yet."""
    case = Case.objects.select_for_update().select_related("project").get(pk=case.pk)
    if not Assignment.objects.filter(case=case, user=expert, role=ReadingRole.PANEL_MEMBER).exists():
        raise PermissionDeniedError(f"Only the experts seated on the panel of case {case.pk} may {what}")
    if case.status != CaseStatus.IN_PANEL:
        raise ConflictError(f"Case {case.pk} is {case.status}, not in panel: it can no longer be corrected")
    if PanelVote.objects.filter(case=case, expert=expert).exists():
        raise ConflictError(f"You have already voted on case {case.pk}")
    return case


def _source_revision(case: Case, expert: User, annotation: Annotation) -> AnnotationRevision:
    """The current revision of a reading the expert may take from: a submitted reading of the case, its AI
    proposal, or another expert's submitted correction, and one the blind rules let them see."""
    allowed = (
        annotation.case_id == case.pk
        and annotation.current_revision_id is not None
        and (
            (
                annotation.role in (ReadingRole.FIRST_READER, ReadingRole.SECOND_READER)
                and annotation.status == Annotation.Status.SUBMITTED
            )
            or annotation.role == "ai"
            or (
                annotation.role == ReadingRole.PANEL_MEMBER
                and annotation.reader_id != expert.pk
                and annotation.status == Annotation.Status.SUBMITTED
            )
        )
        and annotations_visible_to(expert, case).filter(pk=annotation.pk).exists()
    )
    if not allowed:
        raise ApplicationError(
            f"Reading {annotation.pk} is not one of the readings of case {case.pk} you can take from",
            code="bad_source",
        )
    return AnnotationRevision.objects.select_related("schema").get(pk=int(annotation.current_revision_id or 0))


def _annotation_of(case: Case, annotation_id: int) -> Annotation:
    annotation = Annotation.objects.filter(pk=annotation_id, case=case).first()
    if annotation is None:
        raise ApplicationError(f"Case {case.pk} has no reading {annotation_id}", code="bad_source")
    return annotation


def _region_ids(items: list[dict[str, Any]]) -> set[str]:
    return {str(item["id"]) for item in items if "id" in item}


def _origin(source: AnnotationRevision, region: str) -> dict[str, Any]:
    """Where a region of a correction came from: the source revision (and its annotation) and its id there."""
    return {"revision": source.pk, "annotation": source.annotation_id, "id": region}


def _origins_of(seed: AnnotationRevision | None) -> dict[str, dict[str, Any]]:
    """The origins of a correction just seeded: each of the seed's regions, under its own id."""
    return {region: _origin(seed, region) for region in _region_ids(seed.items)} if seed is not None else {}


def _save(case: Case, expert: User, annotation: Annotation | None, items: list[dict[str, Any]], **kw: Any) -> Any:
    base = annotation.revision_count if annotation is not None else 0
    return annotation_save(
        case=case,
        reader=expert,
        role=ReadingRole.PANEL_MEMBER,
        base_revision=kw.pop("base_revision", base),
        values={"items": items},
        **kw,
    )


def my_correction(case: Case, expert: User) -> Correction:
    correction = Correction.objects.select_related("annotation").filter(case=case, expert=expert).first()
    if correction is None:
        raise NotFoundError(f"You have not started a corrected label of case {case.pk}")
    return correction


@transaction.atomic
def correction_start(*, case: Case, expert: User, seed: int) -> Correction:
    """Start the expert's corrected label from a reading of the case (its annotation id): revision 1 of their
    reading is a copy of it, masks included."""
    case = _locked_case(case, expert, "correct it")
    if Correction.objects.filter(case=case, expert=expert).exists():
        raise ConflictError(f"You have already started a corrected label of case {case.pk}; open it to go on")
    source = _source_revision(case, expert, _annotation_of(case, seed))
    mine = Annotation.objects.filter(case=case, reader=expert, role=ReadingRole.PANEL_MEMBER).first()
    revision = _save(case, expert, mine, revision_items_for_output(source, include_masks=True))
    return Correction.objects.create(
        case=case,
        expert=expert,
        annotation_id=revision.annotation_id,
        seed=source,
        origins=_origins_of(source),
    )


@transaction.atomic
def correction_copy_lesion(
    *, case: Case, expert: User, source: int, lesion: str, base_revision: int
) -> tuple[Correction, AnnotationRevision]:
    """Copy one lesion (a region and its attributes, its mask too) of another reading of the case into the expert's
    corrected label, as a new revision. A lesion whose id the label already uses is renamed."""
    case = _locked_case(case, expert, "correct it")
    correction = my_correction(case, expert)
    from_revision = _source_revision(case, expert, _annotation_of(case, source))
    reading = readings_of_revisions([from_revision.pk])[from_revision.pk]
    source_items = revision_items_for_output(from_revision, include_masks=True)
    region = next((item for item in source_items if item.get("id") == lesion), None)
    if region is None:
        raise ApplicationError(f"The {reading['description']} has no lesion {lesion!r}", code="unknown_lesion")
    annotation = Annotation.objects.get(pk=correction.annotation_id)
    if annotation.status == Annotation.Status.SUBMITTED:
        raise ConflictError(f"Your corrected label of case {case.pk} is already submitted")
    current = AnnotationRevision.objects.get(pk=int(annotation.current_revision_id or 0))
    present = _region_ids(current.items)
    for region_id, origin in correction.origins.items():
        if region_id in present and (origin["revision"], origin["id"]) == (from_revision.pk, lesion):
            raise ConflictError(
                f"Lesion {lesion!r} of the {reading['description']} is already in your label ({region_id})"
            )
    new_id, n = lesion, 1
    while new_id in present:
        n += 1
        new_id = f"{lesion}-{n}"
    copied = [{**region, "id": new_id}] + [
        {**item, "region": new_id} for item in source_items if item.get("region") == lesion
    ]
    items = revision_items_for_output(current, include_masks=True) + copied
    revision = _save(case, expert, annotation, items, base_revision=base_revision)
    correction.origins = {**correction.origins, new_id: _origin(from_revision, lesion)}
    correction.save(update_fields=["origins"])
    return correction, revision


@transaction.atomic
def correction_save(
    *, case: Case, expert: User, base_revision: int, values: Any, submit: bool = False, rationale: str = ""
) -> tuple[Correction, AnnotationRevision]:
    """Save the expert's corrected label as a new revision (a draft); ``submit`` finalises it (every required
    label, like any reading) and casts it as the expert's vote, with the rationale."""
    if submit and not rationale.strip():
        raise ApplicationError("A vote needs a rationale", code="rationale_required")
    case = _locked_case(case, expert, "correct it")
    correction = my_correction(case, expert)
    revision = annotation_save(
        case=case,
        reader=expert,
        role=ReadingRole.PANEL_MEMBER,
        base_revision=base_revision,
        values=values,
        submit=submit,
    )
    if submit:
        correction.submitted_revision = revision
        correction.submitted_at = timezone.now()
        correction.provenance = provenance_of(correction, revision)
        correction.save(update_fields=["submitted_revision", "submitted_at", "provenance"])
        services.panel_vote(case=case, expert=expert, rationale=rationale, corrected=revision)
    return correction, revision


def correction_record_whole(
    *, case: Case, expert: User, values: Any, seed: AnnotationRevision | None
) -> AnnotationRevision:
    """A corrected label given whole with a vote (services.panel_vote): saved and submitted at once, with its
    provenance against the reading it was made from. The caller holds the case lock and checked the seat."""
    if Correction.objects.filter(case=case, expert=expert).exists():
        raise ConflictError(f"You have started a corrected label of case {case.pk} in the reader; submit it there")
    if seed is not None:
        seed = _source_revision(case, expert, Annotation.objects.get(pk=seed.annotation_id))
    mine = Annotation.objects.filter(case=case, reader=expert, role=ReadingRole.PANEL_MEMBER).first()
    revision = annotation_save(
        case=case,
        reader=expert,
        role=ReadingRole.PANEL_MEMBER,
        base_revision=mine.revision_count if mine is not None else 0,
        values=values,
        submit=True,
    )
    correction = Correction(
        case=case,
        expert=expert,
        annotation_id=revision.annotation_id,
        seed=seed,
        origins=_origins_of(seed),
        submitted_revision=revision,
        submitted_at=timezone.now(),
    )
    correction.provenance = provenance_of(correction, revision)
    correction.save()
    return revision


@transaction.atomic
def correction_endorse(*, case: Case, expert: User, correction: Correction, rationale: str) -> PanelVote:
    """Another seated expert's vote for a submitted corrected label (it counts as a vote for it)."""
    if correction.case_id != case.pk:
        raise NotFoundError(f"Case {case.pk} has no corrected label {correction.pk}")
    if correction.expert_id == expert.pk:
        raise ConflictError("Your corrected label is your vote already: endorsing it would count it twice")
    if correction.submitted_revision_id is None:
        raise ApplicationError(f"Corrected label {correction.pk} is not submitted yet", code="bad_vote")
    revision = AnnotationRevision.objects.get(pk=correction.submitted_revision_id)
    return services.panel_vote(case=case, expert=expert, rationale=rationale, voted_for=revision)


def provenance_of(correction: Correction, revision: AnnotationRevision) -> dict[str, Any]:
    """The provenance of one revision of a correction (review.provenance.correction_provenance)."""
    source_ids = {int(origin["revision"]) for origin in correction.origins.values()}
    if correction.seed_id is not None:
        source_ids.add(correction.seed_id)
    revisions = {r.pk: r for r in AnnotationRevision.objects.filter(pk__in=source_ids)}
    readings = readings_of_revisions(source_ids)
    sources = {pk: Source(reading=readings[pk], items=list(r.items)) for pk, r in revisions.items()}
    origins = {
        region: (sources[int(origin["revision"])], str(origin["id"]))
        for region, origin in correction.origins.items()
        if int(origin["revision"]) in sources
    }
    seed = sources.get(correction.seed_id) if correction.seed_id is not None else None
    expert = correction.expert.username
    masks = _mask_contents([revision, *revisions.values()])
    return correction_provenance(
        items=list(revision.items), expert=expert, seed=seed, origins=origins, mask_contents=masks
    )


def _mask_contents(revisions: list[AnnotationRevision]) -> dict[str, str]:
    """Each stored mask's name (sha256) mapped to a name of its voxels: the same voxels can be stored under two
    names (the reader's browser sends run-length runs, other writers gzip), and a mask the expert re-sent unchanged
    is not their change. Only the few masks of one correction and its sources are read."""
    names: dict[str, str] = {}
    for candidate in revisions:
        for mask in candidate.masks.all():
            if mask.sha256 in names:
                continue
            array = np.ascontiguousarray(load_mask(mask))
            names[mask.sha256] = mask_digest(array.tobytes(), array.shape, array.dtype.name)
    return names


def corrections_visible_to(user: User, case: Case, *, manager: bool) -> list[Correction]:
    """The case's corrected labels a user may see: their own, the submitted ones of others (for the panel and
    managers), with each one's current revision and endorsements."""
    rows = Correction.objects.filter(case=case).select_related("expert", "annotation__current_revision")
    shown = [c for c in rows if manager or c.expert_id == user.pk or c.submitted_revision_id is not None]
    endorsements: dict[int, list[str]] = {}
    for voted_for, expert in PanelVote.objects.filter(case=case, voted_for__isnull=False).values_list(
        "voted_for_id", "expert__username"
    ):
        endorsements.setdefault(voted_for, []).append(expert)
    for correction in shown:
        correction.endorsed_by = endorsements.get(correction.submitted_revision_id or 0, [])  # type: ignore[attr-defined]
        current = correction.annotation.current_revision
        correction.current = current  # type: ignore[attr-defined]
        if correction.submitted_revision_id is not None:
            correction.live_provenance = correction.provenance  # type: ignore[attr-defined]
        else:
            correction.live_provenance = provenance_of(correction, current) if current else {}  # type: ignore[attr-defined]
    return shown
