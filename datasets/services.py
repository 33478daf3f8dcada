"""Exports: request a snapshot (validated, selection fixed, job queued), and build it in the job."""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from annotation.models import Case, Project
from annotation.services import current_schema
from config.errors import ApplicationError
from config.types import User
from datasets.build import build_snapshot, is_box_or_polygon
from datasets.models import Export, ProjectKey
from datasets.selectors import QA_LEVELS, select_cases
from datasets.splits import SPLITS
from imaging.models import Series
from jobs.models import Job, JobKind
from jobs.services import JobFailed, Progress, job_create

FORMATS = ("monai", "dicom_seg", "dicom_rtstruct", "dicom_sr", "dicom_images", "coco", "csv", "json", "raw")
MASK_FORMATS = {"monai", "dicom_seg", "dicom_rtstruct"}
STRATIFIABLE_KINDS = {"single_choice", "ordinal"}
EXPORT_TASK = "datasets.tasks.export_snapshot"


def project_key(project: Project) -> str:
    """The project's pseudonymisation key (hex), made on first use and never changed."""
    row = ProjectKey.objects.filter(project=project).first()
    if row is not None:
        return row.secret
    try:
        with transaction.atomic():
            row = ProjectKey.objects.create(project=project, secret=secrets.token_hex(32))
    except IntegrityError:  # made by a concurrent export a moment ago
        row = ProjectKey.objects.get(project=project)
    return row.secret


def _listed(values: Any) -> str:
    return pgettext("list separator", ", ").join(str(v) for v in values)


def _date(value: Any, name: str) -> str:
    if value in (None, ""):
        return ""
    text = str(value).replace("-", "")
    if len(text) != 8 or not text.isdigit():
        said = {"name": name, "value": repr(value)}
        raise ApplicationError(
            _("filters.%(name)s: expected a date as YYYY-MM-DD, got %(value)s") % said, code="bad_filter"
        )
    return text


def _check_formats(formats: list[str], labels: dict[str, dict[str, Any]], wanted: set[str], mask_label: str) -> None:
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        said = {"formats": _listed(unknown), "choices": _listed(FORMATS)}
        raise ApplicationError(
            _("formats: %(formats)s; choose from %(choices)s") % said
            if unknown
            else _("formats: none given; choose from %(choices)s") % said,
            code="bad_format",
        )
    chosen = {k: v for k, v in labels.items() if k in wanted}
    masks = [k for k, v in chosen.items() if v["kind"] == "mask"]
    if MASK_FORMATS & set(formats):
        if not masks:
            raise ApplicationError(
                _(
                    "formats monai, dicom_seg and dicom_rtstruct export segmentation masks, and the selected labels "
                    "have no mask label"
                ),
                code="format_does_not_fit",
            )
        if mask_label and mask_label not in masks:
            raise ApplicationError(
                _("mask_label %(label)s is not a selected mask label") % {"label": repr(mask_label)}, code="bad_filter"
            )
    if "dicom_sr" in formats and not any(is_box_or_polygon(v) for v in chosen.values()):
        raise ApplicationError(
            _("dicom_sr holds measurements of boxes (2D or 3D) and polygons on images; the selected labels have none"),
            code="format_does_not_fit",
        )
    if "coco" in formats and not any(is_box_or_polygon(v) for v in chosen.values()):
        kinds = sorted({f"{v['kind']}{' 3D' if v.get('dimensions') == 3 else ''}" for v in chosen.values()})
        raise ApplicationError(
            _(
                "COCO holds boxes (2D, and 3D slice by slice) and polygons; the selected labels have none (they are: "
                "%(kinds)s). Use monai or dicom_seg for masks."
            )
            % {"kinds": _listed(kinds)},
            code="format_does_not_fit",
        )
    if {"csv", "json"} & set(formats) and not any(
        v["level"] in ("study", "series", "image") and v["kind"] not in ("mask", "box", "polygon", "point")
        for v in chosen.values()
    ):
        raise ApplicationError(
            _("csv and json hold study, series and image-level labels; the selected labels have none"),
            code="format_does_not_fit",
        )


def _check_split(split: dict[str, Any], labels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fractions = {name: split.get(name, {"train": 0.7, "validation": 0.15, "test": 0.15}[name]) for name in SPLITS}
    for name, value in fractions.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ApplicationError(
                _("split.%(name)s: expected a fraction between 0 and 1, got %(value)s")
                % {"name": name, "value": repr(value)},
                code="bad_split",
            )
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ApplicationError(
            _("split: train + validation + test must be 1, got %(sum)s") % {"sum": f"{sum(fractions.values()):g}"},
            code="bad_split",
        )
    seed = split.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ApplicationError(
            _("split.seed: expected a non-negative integer, got %(value)s") % {"value": repr(seed)}, code="bad_split"
        )
    stratify_by = split.get("stratify_by") or None
    if stratify_by is not None:
        label = labels.get(stratify_by)
        if label is None or label["level"] != "study" or label["kind"] not in STRATIFIABLE_KINDS:
            choices = sorted(k for k, v in labels.items() if v["level"] == "study" and v["kind"] in STRATIFIABLE_KINDS)
            said = {"label": repr(stratify_by), "choices": _listed(choices)}
            raise ApplicationError(
                _("split.stratify_by: %(label)s is not a study-level choice or ordinal label (use one of: %(choices)s)")
                % said
                if choices
                else _(
                    "split.stratify_by: %(label)s is not a study-level choice or ordinal label (this schema has none)"
                )
                % said,
                code="bad_split",
            )
    return {**{k: float(v) for k, v in fractions.items()}, "seed": seed, "stratify_by": stratify_by}


def export_create(
    *,
    project: Project,
    created_by: User | None,
    formats: list[str],
    filters: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
    deidentify: bool = True,
    enqueue: bool = True,
) -> Export:
    """Validate the request, fix the snapshot's selection, and queue the job that builds it. Everything that
    can be known now is a 400 now; nothing is stored when the request is refused."""
    filters = dict(filters or {})
    schema = current_schema(project)
    labels = {label["key"]: label for label in schema.definition["labels"]}
    wanted_labels = list(filters.get("labels") or [])
    unknown = sorted(set(wanted_labels) - set(labels))
    if unknown:
        said = {"unknown": _listed(unknown), "version": schema.version, "labels": _listed(labels)}
        raise ApplicationError(
            _("filters.labels: %(unknown)s not in schema v%(version)s (labels: %(labels)s)") % said,
            code="bad_filter",
        )
    min_level = filters.get("min_qa_level", "agreed")
    if min_level not in QA_LEVELS:
        raise ApplicationError(
            _("filters.min_qa_level: %(value)s; choose from %(choices)s")
            % {"value": repr(min_level), "choices": _listed(QA_LEVELS)},
            code="bad_filter",
        )
    modalities = [str(m).upper() for m in filters.get("modalities") or []]
    date_from, date_to = (
        _date(filters.get("study_date_from"), "study_date_from"),
        _date(filters.get("study_date_to"), "study_date_to"),
    )
    mask_label = str(filters.get("mask_label") or "")
    _check_formats(formats, labels, set(wanted_labels or labels), mask_label)
    split_options = _check_split(split or {}, labels)
    normalised = {
        "min_qa_level": min_level,
        "labels": wanted_labels,
        "modalities": modalities,
        "study_date_from": date_from,
        "study_date_to": date_to,
        "exclude_quality_warnings": bool(filters.get("exclude_quality_warnings", False)),
        "mask_label": mask_label,
        "include_gold": bool(filters.get("include_gold", False)),
    }
    selected = select_cases(
        project=project,
        min_qa_level=min_level,
        modalities=modalities,
        study_date_from=date_from,
        study_date_to=date_to,
        include_gold=normalised["include_gold"],
    )
    if not selected:
        counts = Case.objects.filter(project=project).count()
        said = {
            "project": repr(project.slug),
            "n": counts,
            "level": repr(min_level),
            "modalities": _listed(modalities),
            "start": date_from or "...",
            "end": date_to or "...",
        }
        reason = _(
            "No case of project %(project)s matches: none of its %(n)s case(s) reached QA level %(level)s with a "
            "final label"
        )
        if modalities:
            reason += _(" among modalities %(modalities)s")
        if date_from or date_to:
            reason += _(" between %(start)s and %(end)s")
        raise ApplicationError(reason % said, code="no_cases")
    case_ids = [row.case_id for row in selected]
    cases = Case.objects.filter(pk__in=case_ids).values_list("pk", "study_id", "series_id")
    flagged_series = Series.objects.filter(study_id__in={s for _, s, _ in cases}, quality=Series.Quality.FAILED)
    flagged = {(s.study_id, s.pk) for s in flagged_series}
    flagged_studies = {study for study, _ in flagged}
    usable = [
        pk
        for pk, study, series in cases
        if not ((series is None and study in flagged_studies) or (series is not None and (study, series) in flagged))
    ]
    if not usable:
        raise ApplicationError(
            _("All %(n)s matching case(s) have series that failed data-quality checks; nothing to export")
            % {"n": len(case_ids)},
            code="no_usable_cases",
        )
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        version = (Export.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0) + 1
        export = Export.objects.create(
            project=project,
            version=version,
            created_by=created_by,
            filters=normalised,
            formats=sorted(set(formats)),
            split=split_options,
            deidentify=deidentify,
            selection=[{"case": r.case_id, "revision": r.revision_id, "qa_level": r.qa_level} for r in selected],
            schema_version=schema.version,
            uid_salt=secrets.token_hex(16),
        )
        project_key(project)
        job = job_create(
            kind=JobKind.EXPORT,
            task_name=EXPORT_TASK,
            project=project,
            created_by=created_by,
            params={"export_id": export.pk},
            enqueue=enqueue,
        )
        export.job = job
        export.save(update_fields=["job"])
    return export


def left_out_cases(left_out: list[dict[str, Any]]) -> int:
    """How many cases lack at least one of the asked formats (or are out of the snapshot altogether)."""
    return len({row.get("case_id", row.get("case")) for row in left_out})


def export_write(export: Export, path: str, progress: Any = None) -> Any:
    """Write the snapshot's zip to ``path`` (a local file); the same export always gives the same bytes."""
    return build_snapshot(export, path, progress)


def export_build(job: Job, progress: Progress) -> dict[str, Any]:
    """The job handler: build the zip in a temporary file, store it, then record everything in one update."""
    export = Export.objects.select_related("project").filter(pk=job.params.get("export_id")).first()
    if export is None:
        raise JobFailed(f"Export {job.params.get('export_id')} no longer exists")
    handle, path = tempfile.mkstemp(suffix=".zip", prefix="medlabel-export-")
    os.close(handle)
    try:
        result = export_write(export, path, progress)
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        sha = digest.hexdigest()
        size = os.path.getsize(path)
        name = f"exports/{export.project.slug}/v{export.version}-{sha[:16]}.zip"
        if not default_storage.exists(name):  # a rerun of the same snapshot writes the same bytes
            with open(path, "rb") as stream:
                stored = default_storage.save(name, File(stream))
            if stored != name:
                raise JobFailed(f"Storage renamed the export to {stored}")
    finally:
        os.unlink(path)
    with transaction.atomic():
        Export.objects.filter(pk=export.pk).update(
            file=name,
            file_size=size,
            sha256=sha,
            manifest=result.manifest,
            left_out=result.left_out,
            deid_report=result.deid_report,
            split_counts=result.split_counts,
            built_at=timezone.now(),
        )
    return {
        "export": export.pk,
        "version": export.version,
        "file": name,
        "sha256": sha,
        "bytes": size,
        "cases_written": result.cases_written,
        "files": result.files,
        "split_counts": result.split_counts,
        "left_out": result.left_out,
        # Makes the job PARTIAL ("succeeded with N left out"), never a plain success, when any case is short.
        "left_out_cases": left_out_cases(result.left_out),
        "derived": result.derived,
    }
