"""Importing studies from an upstream PACS into a project as a background job (kind "ingest").

A manager names the PACS and the studies; the job copies (or indexes) each study through the imaging
ingest service into the project's image store and, when the project has a schema, opens a case for it, so that
pre-labelling on ingest and the worklists pick it up. Each study is idempotent (ingest deduplicates on SOP
Instance UID, links and cases are get-or-create), so a retried or re-run job never duplicates anything."""

from __future__ import annotations

from typing import Any

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
from imaging.models import DicomSource
from imaging.services.pull import study_index_upstream, study_pull
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
