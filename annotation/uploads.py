"""Uploading DICOM files, folders and zips into a project as a background job (kind "ingest").

The request only checks and stages: every zip is opened and checked whole (a bad archive is refused before
anything is kept) and the files go to the storage backend under ``uploads/<token>/``, which web and workers
share (a folder or an S3 bucket). The job then runs them through the one ingest service into the project's own
image store (never another: image-store isolation) and reports each file: stored, duplicate, or rejected with
the reason. Ingest is idempotent on SOP Instance UID, so a retried job reports the files it already stored as
duplicates and stores nothing twice. The staged copies are deleted once the job has ended: succeeded, failed
for good, or cancelled (a transient failure with attempts left keeps them for the retry), and when staging or
creating the job fails."""

from __future__ import annotations

import posixpath
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import IO, Any

from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import OperationalError
from django.utils.translation import gettext as _

from annotation.models import Project
from config.errors import ApplicationError
from config.types import User
from imaging.services.ingest import IncomingFile, iter_zip_files, open_zip_checked
from imaging.services.store import files_store
from jobs.messages import DONE, IMPORTING, job_text
from jobs.models import Job, JobKind
from jobs.services import Progress, TransientJobError, job_create

STAGING_PREFIX = "uploads"
# Progress is written at most this often (a row update per file would be thousands of writes for a big zip).
PROGRESS_INTERVAL_S = 0.5


def _is_zip(upload: IO[bytes], name: str) -> bool:
    head = upload.read(4)
    upload.seek(0)
    return head.startswith(b"PK\x03\x04") or name.lower().endswith(".zip")


def upload_job_create(*, project: Project, uploads: list[Any], created_by: User) -> Job:
    """Check and stage the uploaded files, then queue the ingest job. 400 (nothing kept) for no files, an
    archived project or a bad zip; 413 for a zip over the limits (see imaging.services.ingest)."""
    if not uploads:
        raise ApplicationError(_("No files: choose DICOM files, a folder or zip archives."), code="no_files")
    if project.archived_at is not None:
        raise ApplicationError(
            _("Project %(project)s is archived: bring it back before adding data.") % {"project": project.slug},
            code="archived",
        )
    entries: list[dict[str, Any]] = []
    total = 0
    for upload in uploads:
        name = posixpath.basename(upload.name or "file") or "file"
        is_zip = _is_zip(upload, name)
        members = 1
        if is_zip:
            archive = open_zip_checked(upload)  # raises before anything is staged
            members = sum(1 for info in archive.infolist() if not info.is_dir())
            upload.seek(0)
        entries.append({"name": name, "zip": is_zip, "files": members, "upload": upload})
        total += members
    token = uuid.uuid4().hex
    staged: list[dict[str, Any]] = []
    try:
        for index, entry in enumerate(entries):
            upload = entry.pop("upload")
            path = default_storage.save(f"{STAGING_PREFIX}/{token}/{index:05d}", File(upload))
            staged.append({**entry, "path": path})
        return job_create(
            kind=JobKind.INGEST,
            task_name="annotation.tasks.ingest_upload",
            project=project,
            created_by=created_by,
            params={"upload": token, "files": staged, "total_files": total},
        )
    except BaseException:
        _staged_delete(staged)  # no job will read them
        raise


def _staged_delete(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        default_storage.delete(entry["path"])


def _staged_files(job: Job) -> Iterator[IncomingFile]:
    for entry in job.params["files"]:
        if not default_storage.exists(entry["path"]):
            yield IncomingFile(name=entry["name"], data=b"", refusal=_("the uploaded copy is gone; upload it again"))
            continue
        with default_storage.open(entry["path"], "rb") as handle:
            if entry["zip"]:
                archive = open_zip_checked(handle)
                for incoming in iter_zip_files(archive):
                    yield replace(incoming, name=f"{entry['name']}/{incoming.name}")
            else:
                yield IncomingFile(name=entry["name"], data=handle.read())


def ingest_upload(job: Job, progress: Progress) -> dict[str, Any]:
    """The job's handler: every staged file through the ingest service into the project's store."""
    assert job.project is not None
    project = job.project
    total = int(job.params.get("total_files") or 0)
    state = {"done": 0, "last": 0.0}

    def counted() -> Iterator[IncomingFile]:
        for incoming in _staged_files(job):
            now = time.monotonic()
            if now - state["last"] >= PROGRESS_INTERVAL_S:
                progress(done=state["done"], total=total, message=job_text(IMPORTING, uid=incoming.name))
                state["last"] = now
            yield incoming
            state["done"] += 1

    try:
        report = files_store(counted(), store=project.image_store, source=project.dicom_source)
    except (TransientJobError, OperationalError):
        if job.attempts >= job.max_attempts:  # the last attempt: no retry will read them
            _staged_delete(job.params["files"])
        raise
    except BaseException:
        # The job ends here (failed or cancelled): the staged copies would stay in the storage for good. What
        # was stored before the failure is whole (each file is), and uploading again reports it as duplicates.
        _staged_delete(job.params["files"])
        raise
    result = report.as_dict()
    result["files_total"] = state["done"]
    progress(done=state["done"], total=max(total, state["done"]), message=job_text(DONE))
    _staged_delete(job.params["files"])
    return result
