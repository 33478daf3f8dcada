"""Ingest: the one service behind every door (HTTP upload, zip, STOW-RS, the ``ingest`` command, PACS pull).

Idempotent on SOP Instance UID: the same file twice is one instance ("duplicate"); a different file with
an already stored SOP Instance UID is refused ("conflict", HTTP 409), never silently replaced.
Each file is all-or-nothing: its bytes are written, then its rows are committed; if the commit fails the
bytes are removed again, so the store never holds a file the index does not know.
"""

from __future__ import annotations

import logging
import posixpath
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import ApplicationError, PayloadTooLargeError
from imaging.dicom import DicomRejected, ParsedInstance, header_json, parse_part10
from imaging.models import DicomSource, Instance, Series, Study
from imaging.quality import SliceInfo, check_series

logger = logging.getLogger(__name__)

STORED, DUPLICATE, REJECTED = "stored", "duplicate", "rejected"
BATCH_SIZE = 64


@dataclass
class FileOutcome:
    name: str
    status: str
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    reason: str = ""
    code: str = ""
    http_status: int = 200
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"file": self.name, "status": self.status}
        if self.sop_instance_uid:
            result["sop_instance_uid"] = self.sop_instance_uid
            result["study_instance_uid"] = self.study_instance_uid
            result["series_instance_uid"] = self.series_instance_uid
        if self.reason:
            result["reason"] = self.reason
            result["code"] = self.code
        if self.warnings:
            result["warnings"] = self.warnings
        return result


@dataclass
class IngestReport:
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def stored(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == STORED]

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == REJECTED]

    @property
    def study_uids(self) -> list[str]:
        return sorted({f.study_instance_uid for f in self.files if f.status in (STORED, DUPLICATE)})

    def counts(self) -> dict[str, int]:
        counts = {STORED: 0, DUPLICATE: 0, REJECTED: 0}
        for outcome in self.files:
            counts[outcome.status] += 1
        return counts

    def http_status(self) -> int:
        """201 when something was stored, 200 when all were duplicates, else the rejection's status.

        When every file is rejected the most specific status wins: 409 (conflict) and 413 (too large)
        over a plain 400.
        """
        if not self.files:
            return 400
        if self.stored:
            return 201
        if not self.rejected:
            return 200
        statuses = {f.http_status for f in self.rejected}
        if len(self.rejected) < len(self.files):
            return 200
        for preferred in (409, 413):
            if statuses == {preferred}:
                return preferred
        return 400

    def as_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(), "studies": self.study_uids, "files": [f.as_dict() for f in self.files]}


@dataclass(frozen=True)
class IncomingFile:
    name: str
    data: bytes


def storage_path(parsed: ParsedInstance) -> str:
    return f"dicom/{parsed.study_instance_uid}/{parsed.series_instance_uid}/{parsed.sop_instance_uid}.dcm"


def _study_fields(parsed: ParsedInstance) -> dict[str, Any]:
    ds = parsed.dataset

    def text(keyword: str, limit: int) -> str:
        value = ds.get(keyword)
        return "" if value is None else str(value).strip()[:limit]

    return {
        "patient_id": text("PatientID", 64),
        "patient_name": text("PatientName", 324),
        "patient_birth_date": text("PatientBirthDate", 8),
        "patient_sex": text("PatientSex", 16),
        "study_date": text("StudyDate", 8),
        "study_time": text("StudyTime", 16),
        "accession_number": text("AccessionNumber", 16),
        "study_id": text("StudyID", 16),
        "study_description": text("StudyDescription", 64),
        "referring_physician_name": text("ReferringPhysicianName", 324),
    }


def _series_fields(parsed: ParsedInstance) -> dict[str, Any]:
    ds = parsed.dataset
    number = ds.get("SeriesNumber")
    try:
        series_number = int(number) if number not in (None, "") else None
    except (TypeError, ValueError):
        series_number = None
    return {
        "modality": str(ds.get("Modality", "") or "")[:16],
        "series_number": series_number,
        "series_description": str(ds.get("SeriesDescription", "") or "")[:64],
        "body_part_examined": str(ds.get("BodyPartExamined", "") or "")[:16],
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "") or "")[:64],
    }


def _instance_row(parsed: ParsedInstance, series: Series, file_name: str) -> Instance:
    number = parsed.dataset.get("InstanceNumber")
    try:
        instance_number = int(number) if number not in (None, "") else None
    except (TypeError, ValueError):
        instance_number = None
    return Instance(
        series=series,
        sop_instance_uid=parsed.sop_instance_uid,
        sop_class_uid=parsed.sop_class_uid,
        instance_number=instance_number,
        transfer_syntax_uid=parsed.transfer_syntax_uid,
        rows=parsed.rows,
        columns=parsed.columns,
        number_of_frames=parsed.number_of_frames,
        samples_per_pixel=parsed.samples_per_pixel,
        bits_allocated=parsed.bits_allocated,
        image_position=parsed.image_position,
        image_orientation=parsed.image_orientation,
        pixel_spacing=parsed.pixel_spacing,
        has_pixel_data=parsed.has_pixel_data,
        is_decodable=parsed.is_decodable,
        is_encapsulated=parsed.is_encapsulated,
        pixel_data_offset=parsed.pixel_data_offset,
        pixel_data_length=parsed.pixel_data_length,
        file=file_name,
        file_size=len(parsed.data),
        sha256=parsed.sha256,
        metadata=header_json(parsed.dataset),
    )


class _Ingestor:
    """Holds the per-call caches of studies and series so a 300-slice series costs one lookup."""

    def __init__(self, source: DicomSource | None) -> None:
        self.source = source
        # Studies indexed from an upstream PACS keep their bytes there; only the index rows are written.
        self.keep_files = source is None or not source.is_upstream
        self.created_studies: set[int] = set()
        self.created_series: set[int] = set()
        self.studies: dict[str, Study] = {}
        self.series: dict[str, Series] = {}
        self.touched_series: set[int] = set()
        self.touched_studies: set[int] = set()

    def _study(self, parsed: ParsedInstance) -> Study:
        uid = parsed.study_instance_uid
        if uid in self.studies:
            return self.studies[uid]
        study = Study.objects.filter(study_instance_uid=uid).first()
        if study is None:
            try:
                with transaction.atomic():
                    study = Study.objects.create(study_instance_uid=uid, source=self.source, **_study_fields(parsed))
                self.created_studies.add(study.pk)
            except IntegrityError:  # created by a concurrent ingest a moment ago
                study = Study.objects.get(study_instance_uid=uid)
        self.studies[uid] = study
        return study

    def _series(self, parsed: ParsedInstance, study: Study) -> Series:
        uid = parsed.series_instance_uid
        if uid in self.series:
            return self.series[uid]
        series = Series.objects.filter(series_instance_uid=uid).first()
        if series is None:
            try:
                with transaction.atomic():
                    series = Series.objects.create(study=study, series_instance_uid=uid, **_series_fields(parsed))
                self.created_series.add(series.pk)
            except IntegrityError:
                series = Series.objects.get(series_instance_uid=uid)
        if series.study_id != study.pk:
            raise DicomRejected(
                f"Series {uid} already belongs to study {series.study.study_instance_uid}, "
                f"not {study.study_instance_uid}",
                code="conflict",
            )
        self.series[uid] = series
        return series

    def ingest_batch(
        self, batch: list[tuple[str, ParsedInstance]], outcomes: dict[int, FileOutcome], order: list[int]
    ) -> None:
        """Store one batch of parsed files: one query for duplicates, files written, one bulk insert."""
        uids = [parsed.sop_instance_uid for _, parsed in batch]
        existing = dict(Instance.objects.filter(sop_instance_uid__in=uids).values_list("sop_instance_uid", "sha256"))
        to_store: list[tuple[int, ParsedInstance, Series]] = []
        seen_in_batch: dict[str, str] = {}
        for position, (name, parsed) in zip(order, batch, strict=True):
            outcome = FileOutcome(
                name=name,
                status=STORED,
                sop_instance_uid=parsed.sop_instance_uid,
                study_instance_uid=parsed.study_instance_uid,
                series_instance_uid=parsed.series_instance_uid,
                warnings=list(parsed.warnings),
            )
            outcomes[position] = outcome
            known_sha = existing.get(parsed.sop_instance_uid) or seen_in_batch.get(parsed.sop_instance_uid)
            if known_sha is not None:
                self._mark_known(outcome, known_sha, parsed)
                continue
            try:
                study = self._study(parsed)
                series = self._series(parsed, study)
            except DicomRejected as exc:
                _reject(outcome, exc, status=409)
                continue
            seen_in_batch[parsed.sop_instance_uid] = parsed.sha256
            to_store.append((position, parsed, series))
        if to_store:
            self._store(to_store, outcomes)

    @staticmethod
    def _mark_known(outcome: FileOutcome, known_sha: str, parsed: ParsedInstance) -> None:
        if known_sha == parsed.sha256:
            outcome.status = DUPLICATE
            outcome.warnings = []
        else:
            outcome.status = REJECTED
            outcome.reason = (
                f"Conflict: a different file with SOP Instance UID {parsed.sop_instance_uid} is already stored"
            )
            outcome.code = "conflict"
            outcome.http_status = 409

    def _store(self, to_store: list[tuple[int, ParsedInstance, Series]], outcomes: dict[int, FileOutcome]) -> None:
        written: list[str] = []
        rows: list[Instance] = []
        try:
            for _, parsed, series in to_store:
                name = self._write(parsed)
                if name:
                    written.append(name)
                rows.append(_instance_row(parsed, series, name))
            with transaction.atomic():
                Instance.objects.bulk_create(rows)
        except IntegrityError:
            # A concurrent ingest stored some of these UIDs first: fall back to one file at a time.
            for name in written:
                default_storage.delete(name)
            for position, parsed, series in to_store:
                self._store_one(position, parsed, series, outcomes)
            return
        except Exception:
            for name in written:
                default_storage.delete(name)
            raise
        for _, _parsed, series in to_store:
            self.touched_series.add(series.pk)
            self.touched_studies.add(series.study_id)

    def _write(self, parsed: ParsedInstance) -> str:
        if not self.keep_files:
            return ""
        return default_storage.save(storage_path(parsed), ContentFile(parsed.data))

    def _store_one(
        self, position: int, parsed: ParsedInstance, series: Series, outcomes: dict[int, FileOutcome]
    ) -> None:
        name = self._write(parsed)
        try:
            with transaction.atomic():
                _instance_row(parsed, series, name).save()
        except IntegrityError:
            if name:
                default_storage.delete(name)
            known = Instance.objects.filter(sop_instance_uid=parsed.sop_instance_uid).values_list("sha256", flat=True)
            self._mark_known(outcomes[position], known.first() or "", parsed)
            return
        self.touched_series.add(series.pk)
        self.touched_studies.add(series.study_id)

    def finish(self) -> None:
        # Rows made for files that in the end were not stored leave nothing behind.
        Series.objects.filter(pk__in=self.created_series, instances__isnull=True).delete()
        Study.objects.filter(pk__in=self.created_studies, series__isnull=True).delete()
        self.touched_series &= set(Series.objects.filter(pk__in=self.touched_series).values_list("pk", flat=True))
        for series_id in sorted(self.touched_series):
            refresh_series(series_id)
        for study_id in sorted(self.touched_studies):
            refresh_study(study_id)


def _reject(outcome: FileOutcome, exc: ApplicationError, *, status: int = 400) -> None:
    outcome.status = REJECTED
    outcome.reason = exc.message
    outcome.code = exc.code
    outcome.http_status = status
    outcome.warnings = []


def ingest_files(
    files: Iterable[IncomingFile],
    *,
    source: DicomSource | None = None,
    progress: Callable[[FileOutcome], None] | None = None,
) -> IngestReport:
    """Ingest files in order and report each one. Never raises for a bad file: it is reported as rejected."""
    ingestor = _Ingestor(source)
    outcomes: dict[int, FileOutcome] = {}
    batch: list[tuple[str, ParsedInstance]] = []
    order: list[int] = []
    position = 0

    def flush() -> None:
        if batch:
            ingestor.ingest_batch(batch, outcomes, order)
            if progress is not None:
                for index in order:
                    progress(outcomes[index])
            batch.clear()
            order.clear()

    try:
        for incoming in files:
            try:
                parsed = parse_part10(incoming.data)
            except DicomRejected as exc:
                outcome = FileOutcome(name=incoming.name, status=REJECTED)
                _reject(outcome, exc)
                outcomes[position] = outcome
                if progress is not None:
                    progress(outcome)
            else:
                batch.append((incoming.name, parsed))
                order.append(position)
                if len(batch) >= BATCH_SIZE:
                    flush()
            position += 1
        flush()
    finally:
        ingestor.finish()
    return IngestReport(files=[outcomes[i] for i in range(position)])


# --- Zip archives ---------------------------------------------------------------------------------


def open_zip_checked(stream: IO[bytes]) -> zipfile.ZipFile:
    """Open a zip and refuse it whole, before anything is stored, if any member is unsafe or too big."""
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as exc:
        raise ApplicationError(f"Not a valid zip archive: {exc}", code="bad_zip") from exc
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > settings.IMAGING_MAX_ZIP_FILES:
        raise PayloadTooLargeError(
            f"Zip holds {len(members)} files, more than the limit of {settings.IMAGING_MAX_ZIP_FILES}",
            code="zip_too_many_files",
        )
    total = 0
    for info in members:
        name = info.filename
        normalised = posixpath.normpath(name.replace("\\", "/"))
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or normalised.startswith(".."):
            raise ApplicationError(
                f"Unsafe path in zip: {name!r} (absolute or outside the archive)", code="zip_unsafe_path"
            )
        if ".." in normalised.split("/"):
            raise ApplicationError(f"Unsafe path in zip: {name!r}", code="zip_unsafe_path")
        total += info.file_size
    if total > settings.IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES:
        raise PayloadTooLargeError(
            f"Zip expands to {total} bytes, more than the limit of {settings.IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES}",
            code="zip_too_large",
        )
    return archive


def iter_zip_files(archive: zipfile.ZipFile) -> Iterator[IncomingFile]:
    for info in archive.infolist():
        if info.is_dir():
            continue
        base = posixpath.basename(info.filename)
        if base.startswith(".") or info.filename.startswith("__MACOSX/") or base.upper() == "DICOMDIR":
            continue
        # Read at most the declared size plus one byte: a member that lies about its size is refused.
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise ApplicationError(f"Zip member {info.filename!r} is larger than its header says", code="zip_corrupt")
        yield IncomingFile(name=info.filename, data=data)


# --- Derived series and study attributes -----------------------------------------------------------


def _slice_thickness(metadata: dict[str, Any]) -> float | None:
    try:
        return float(metadata["00180050"]["Value"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def refresh_series(series_id: int) -> Series:
    """Recompute geometry and quality checks of a series from all its instances."""
    series = Series.objects.get(pk=series_id)
    rows = Instance.objects.filter(series_id=series_id).values(
        "sop_instance_uid",
        "rows",
        "columns",
        "number_of_frames",
        "image_position",
        "image_orientation",
        "pixel_spacing",
        "has_pixel_data",
        "is_decodable",
        "transfer_syntax_uid",
        # The whole header, not "metadata__00180050": Django reads a key made of digits as an array index.
        "metadata",
    )
    slices = [
        SliceInfo(
            sop_instance_uid=row["sop_instance_uid"],
            rows=row["rows"],
            columns=row["columns"],
            number_of_frames=row["number_of_frames"],
            image_position=row["image_position"],
            image_orientation=row["image_orientation"],
            pixel_spacing=row["pixel_spacing"],
            has_pixel_data=row["has_pixel_data"],
            is_decodable=row["is_decodable"],
            transfer_syntax_uid=row["transfer_syntax_uid"],
            slice_thickness=_slice_thickness(row["metadata"] or {}),
        )
        for row in rows
    ]
    result = check_series(slices)
    for key, value in result.geometry.items():
        setattr(series, key, value)
    series.number_of_instances = len(slices)
    series.quality = result.quality
    series.quality_checks = result.checks
    series.quality_checked_at = timezone.now()
    series.save(
        update_fields=[
            *result.geometry.keys(),
            "number_of_instances",
            "quality",
            "quality_checks",
            "quality_checked_at",
        ]
    )
    return series


def refresh_study(study_id: int) -> Study:
    study = Study.objects.get(pk=study_id)
    series = list(Series.objects.filter(study_id=study_id).values_list("modality", "number_of_instances"))
    study.number_of_series = len(series)
    study.number_of_instances = sum(count for _, count in series)
    study.modalities_in_study = "\\".join(sorted({modality for modality, _ in series if modality}))
    study.save(update_fields=["number_of_series", "number_of_instances", "modalities_in_study", "updated_at"])
    return study
