"""Importing studies from an upstream PACS into a project as a background job (kind "ingest").

A manager names the PACS and the studies; the job copies (or indexes) each study through the imaging
ingest service into the project's image store and, when the project has a schema, opens a case for it, so that
pre-labelling on ingest and the worklists pick it up. Each study is idempotent (ingest deduplicates on SOP
Instance UID, links and cases are get-or-create), so a retried or re-run job never duplicates anything."""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _

from annotation.models import LabelSchema, Project
from annotation.selectors import check_import_source
from annotation.services import cases_create
from config.errors import (
    ApplicationError,
    ConflictError,
    NotFoundError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from config.types import User
from imaging.models import DicomSource, Study
from imaging.services.pull import _value, study_index_upstream, study_pull
from imaging.services.upstream import call
from jobs.messages import DONE, IMPORTING, job_text
from jobs.models import Job, JobKind
from jobs.services import Progress, TransientJobError, job_create

MAX_STUDIES_PER_IMPORT = 1000


def import_job_create(
    *, project: Project, source: DicomSource, study_uids: list[str], mode: str, created_by: User
) -> Job:
    uids = list(dict.fromkeys(uid.strip() for uid in study_uids if uid.strip()))
    if not uids:
        raise ApplicationError("Name at least one Study Instance UID to import", code="no_studies")
    if len(uids) > MAX_STUDIES_PER_IMPORT:
        raise ApplicationError(f"At most {MAX_STUDIES_PER_IMPORT} studies per import; got {len(uids)}")
    if mode not in ("copy", "index"):
        raise ApplicationError(f"Unknown import mode {mode!r}; expected 'copy' or 'index'")
    check_import_source(created_by, project, source)
    return job_create(
        kind=JobKind.INGEST,
        task_name="annotation.tasks.import_studies",
        project=project,
        created_by=created_by,
        params={"source_id": source.pk, "source": source.name, "study_uids": uids, "mode": mode},
    )


def import_studies(job: Job, progress: Progress) -> dict[str, Any]:
    """The job's handler: one study after the other, a report line for each."""
    assert job.project is not None
    project = job.project
    source = DicomSource.objects.filter(pk=job.params["source_id"]).first()
    if source is None:
        raise ApplicationError(f"The PACS {job.params.get('source')!r} no longer exists")
    uids: list[str] = job.params["study_uids"]
    has_schema = LabelSchema.objects.filter(project=project).exists()
    studies: list[dict[str, Any]] = []
    cases = 0
    for done, uid in enumerate(uids):
        progress(done=done, total=len(uids), message=job_text(IMPORTING, uid=uid))
        line: dict[str, Any] = {"study_instance_uid": uid}
        try:
            if job.params["mode"] == "copy":
                report = study_pull(source=source, study_instance_uid=uid, store=project.image_store)
                line.update(report.counts())
                if not report.study_uids:
                    line.update(status="rejected", reason="; ".join(f.reason for f in report.rejected[:3]))
                    studies.append(line)
                    continue
            else:
                study_index_upstream(source=source, study_instance_uid=uid, store=project.image_store)
        except (UpstreamUnavailableError, UpstreamTimeoutError) as exc:
            # The PACS is away: the whole job is retried later; studies already imported are skipped quickly.
            raise TransientJobError(exc.message) from exc
        except NotFoundError as exc:
            studies.append({**line, "status": "not_found", "reason": exc.message})
            continue
        except ConflictError as exc:  # e.g. an instance of another patient in a study of the project
            studies.append({**line, "status": "rejected", "reason": exc.message})
            continue
        if has_schema:
            try:
                cases += len(cases_create(project=project, study_uids=[uid]))
            except ApplicationError as exc:  # e.g. a series that failed its quality checks
                studies.append({**line, "status": "imported_without_case", "reason": exc.message})
                continue
        studies.append({**line, "status": "imported"})
    progress(done=len(uids), total=len(uids), message=job_text(DONE))
    imported = sum(1 for s in studies if s["status"] in ("imported", "imported_without_case"))
    return {"imported": imported, "failed": len(uids) - imported, "cases": cases, "studies": studies}


# --- Searching a project's PACS (QIDO-RS) -----------------------------------------------------------------

# At most this many studies per search: a search that matches more is narrowed, not paged through.
MAX_SEARCH_RESULTS = 200
_DATE = re.compile(r"^\d{8}$")


def pacs_sources(project: Project) -> list[DicomSource]:
    """The PACS a project's managers may search and import from: its own source first, then the import sources
    an administrator opened to it; only upstream (DICOMweb) ones can be searched."""
    sources: list[DicomSource] = []
    if project.dicom_source is not None:
        sources.append(project.dicom_source)
    sources.extend(project.import_sources.exclude(pk__in=[s.pk for s in sources]).order_by("name"))
    return [source for source in sources if source.is_upstream]


def _date_range(date_from: str, date_to: str) -> str:
    for value in (date_from, date_to):
        if value and not _DATE.match(value):
            raise ApplicationError(
                _("Study date: give dates as YYYYMMDD (got “%(value)s”).") % {"value": value}, code="bad_date"
            )
    if date_from and date_to:
        return f"{date_from}-{date_to}" if date_from != date_to else date_from
    if date_from:
        return f"{date_from}-"
    if date_to:
        return f"-{date_to}"
    return ""


def pacs_search(
    *,
    project: Project,
    user: User,
    source: DicomSource | None = None,
    patient: str = "",
    date_from: str = "",
    date_to: str = "",
    modality: str = "",
    accession: str = "",
) -> tuple[DicomSource, list[dict[str, Any]]]:
    """Studies on the PACS matching the filters (QIDO-RS), each saying whether the project has it already.
    ``patient`` matches the patient ID exactly or the name in part. 400 for a project with no PACS to search or
    a bad date; 403 for a PACS not opened to the project; 502/504 when the PACS is away."""
    allowed = pacs_sources(project)
    if source is None:
        if not allowed:
            raise ApplicationError(
                _("Project %(project)s has no PACS to search: an administrator sets its PACS source.")
                % {"project": project.slug},
                code="no_pacs",
            )
        source = allowed[0]
    check_import_source(user, project, source)
    if not source.is_upstream:
        raise ApplicationError(_("PACS %(source)s cannot be searched.") % {"source": source.name}, code="no_pacs")
    filters: dict[str, str] = {}
    dates = _date_range(date_from.strip(), date_to.strip())
    if dates:
        filters["StudyDate"] = dates
    if modality.strip():
        filters["ModalitiesInStudy"] = modality.strip().upper()
    if accession.strip():
        filters["AccessionNumber"] = accession.strip()
    patient = patient.strip()
    found: list[dict[str, Any]] = []
    fields = ["StudyDescription", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]
    # Patient: an ID is matched exactly, a name by part (QIDO has no "either" in one query, so ask both).
    queries = [{**filters, "PatientID": patient}, {**filters, "PatientName": f"*{patient}*"}] if patient else [filters]
    for query in queries:
        found.extend(
            call(
                source,
                lambda client, q=query: client.search_for_studies(  # type: ignore[misc]
                    search_filters=q, fields=fields, limit=MAX_SEARCH_RESULTS
                ),
            )
        )
    studies: dict[str, dict[str, Any]] = {}
    for item in found:
        uid = str(_value(item, "0020000D"))
        if not uid or uid in studies:
            continue
        modalities = item.get("00080061", {}).get("Value", [])
        studies[uid] = {
            "study_instance_uid": uid,
            "patient_id": str(_value(item, "00100020")),
            "patient_name": str(_value(item, "00100010")),
            "study_date": str(_value(item, "00080020")),
            "modalities": [str(m) for m in modalities],
            "accession_number": str(_value(item, "00080050")),
            "study_description": str(_value(item, "00081030")),
            "series_count": int(_value(item, "00201206", 0) or 0),
            "instance_count": int(_value(item, "00201208", 0) or 0),
        }
    present = set(
        Study.objects.filter(store_id=project.image_store_id, study_instance_uid__in=list(studies)).values_list(
            "study_instance_uid", flat=True
        )
    )
    rows = sorted(studies.values(), key=lambda s: (s["study_date"], s["study_instance_uid"]), reverse=True)
    for row in rows:
        row["in_project"] = row["study_instance_uid"] in present
    return source, rows[:MAX_SEARCH_RESULTS]
