"""Ingest: the one service behind every door (HTTP upload, zip, STOW-RS, the ``ingest`` command, PACS pull).

Every ingest writes into one image store (a project's, or the platform store) and looks at nothing else:
what another store holds under the same UIDs is neither linked, changed nor revealed, and the answer is
the one a new study gets.
Within the store, idempotent on SOP Instance UID: the same file twice is one instance ("duplicate"); a
different file with an already stored SOP Instance UID is refused ("conflict", HTTP 409), never silently
replaced; an instance whose Patient ID differs from its study's is refused ("patient_mismatch", 409).
Each file is all-or-nothing: its bytes are written, then its rows are committed; if the commit fails the
bytes are removed again, so the store never holds a file the index does not know. A file whose bytes are
already on disk (same SHA-256, any store) is referenced rather than written twice; such files are never
removed by an ingest.
"""

from __future__ import annotations

import logging
import posixpath
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from config.errors import ApplicationError, PayloadTooLargeError
from imaging.dicom import DicomRejected, ParsedInstance, header_json, parse_part10
from imaging.models import DicomSource, ImageStore, Instance, Series, Study
from imaging.quality import SliceInfo, check_summary, empty_summary, summary_add

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
        """The report, listing at most IMAGING_MAX_REPORTED_FILES files (refused ones first, since they are what
        needs acting on) and counting the rest under ``files_not_listed``: a 50,000-file zip of junk answers
        with a short body, not 12 MB of the same error."""
        limit = settings.IMAGING_MAX_REPORTED_FILES
        listed = self.files
        body: dict[str, Any] = {"counts": self.counts(), "studies": self.study_uids}
        if len(self.files) > limit:
            rejected = [i for i, f in enumerate(self.files) if f.status == REJECTED][:limit]
            others = [i for i, f in enumerate(self.files) if f.status != REJECTED][: limit - len(rejected)]
            keep = sorted(rejected + others)
            listed = [self.files[i] for i in keep]
            left_out = {STORED: 0, DUPLICATE: 0, REJECTED: 0}
            for index in set(range(len(self.files))) - set(keep):
                left_out[self.files[index].status] += 1
            body["files_not_listed"] = left_out
        body["files"] = [f.as_dict() for f in listed]
        return body

    def rejection_summary(self, limit: int = 10) -> str:
        """The first few refusals with their reasons, and how many more there were."""
        rejected = self.rejected
        text = "; ".join(f"{f.name}: {f.reason}" for f in rejected[:limit])
        if len(rejected) > limit:
            text += f"; and {len(rejected) - limit} more files refused (the counts and the report list them)"
        return text


@dataclass(frozen=True)
class IncomingFile:
    name: str
    data: bytes
    # Set when the door already knows why the file cannot be stored (reported as rejected, never parsed).
    refusal: str = ""
    refusal_code: str = "nested_zip"


def storage_path(parsed: ParsedInstance, store: ImageStore) -> str:
    # Under the store's folder: the same UIDs in two stores with different bytes are two files.
    return f"dicom/{store.pk}/{parsed.study_instance_uid}/{parsed.series_instance_uid}/{parsed.sop_instance_uid}.dcm"


def platform_store() -> ImageStore:
    """The store of what administrators ingest outside any project (only they see it)."""
    store = ImageStore.objects.filter(kind=ImageStore.Kind.PLATFORM).first()
    if store is None:
        try:
            with transaction.atomic():
                store = ImageStore.objects.create(kind=ImageStore.Kind.PLATFORM, name="platform")
        except IntegrityError:  # created by a concurrent call
            store = ImageStore.objects.get(kind=ImageStore.Kind.PLATFORM)
    return store


class PatientMismatch(DicomRejected):
    """An instance of another patient than the study it names: refused, as a PACS does."""

    status_code = 409


def check_same_patient(study: Study, patient_id: str, sop_instance_uid: str) -> None:
    if patient_id != study.patient_id:
        # The two IDs first: STOW-RS carries only the first 64 characters of a reason.
        raise PatientMismatch(
            f"Patient ID {patient_id or '(none)'!r} is not {study.patient_id or '(none)'!r}, the patient of study "
            f"{study.study_instance_uid}: instance {sop_instance_uid} refused (an instance joins a study of its own "
            "patient only)",
            code="patient_mismatch",
        )


def _text(parsed: ParsedInstance, keyword: str, limit: int) -> str:
    value = parsed.dataset.get(keyword)
    return "" if value is None else str(value).strip()[:limit]


def patient_id_of(parsed: ParsedInstance) -> str:
    """The Patient ID as the index keeps it, so that a file and its study compare alike."""
    return _text(parsed, "PatientID", 64)


def _study_fields(parsed: ParsedInstance) -> dict[str, Any]:
    def text(keyword: str, limit: int) -> str:
        return _text(parsed, keyword, limit)

    return {
        "patient_id": patient_id_of(parsed),
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
        store_id=series.store_id,
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


def _series_lookup(store: ImageStore) -> Any:
    # Without the fields that grow with the series (its positions, its summary): ingest needs its keys only.
    return (
        Series.objects.filter(store=store)
        .select_related("study")
        .defer("slice_positions", "quality_summary", "quality_checks")
    )


class _Ingestor:
    """Holds the per-call caches of studies and series so a 300-slice series costs one lookup."""

    def __init__(self, store: ImageStore, source: DicomSource | None) -> None:
        self.store = store
        self.source = source
        # Studies indexed from an upstream PACS keep their bytes there; only the index rows are written.
        self.keep_files = source is None or not source.is_upstream
        self.created_studies: set[int] = set()
        self.created_series: set[int] = set()
        self.studies: dict[str, Study] = {}
        self.series: dict[str, Series] = {}
        self.touched_studies: set[int] = set()
        # SHA-256 -> a file already on disk with those bytes, for the batch being stored.
        self.known_files: dict[str, str] = {}

    def _study(self, parsed: ParsedInstance) -> Study:
        uid = parsed.study_instance_uid
        study = self.studies.get(uid)
        if study is None and parsed.series_instance_uid not in self.series:
            # One query for both when the series is known (a file added to a series: the per-file door's case).
            known = _series_lookup(self.store).filter(series_instance_uid=parsed.series_instance_uid).first()
            if known is not None:
                self.series[parsed.series_instance_uid] = known
                if known.study.study_instance_uid == uid:
                    study = self.studies[uid] = known.study
        if study is None:
            study = Study.objects.filter(store=self.store, study_instance_uid=uid).first()
            if study is None:
                try:
                    with transaction.atomic():
                        study = Study.objects.create(
                            store=self.store, study_instance_uid=uid, source=self.source, **_study_fields(parsed)
                        )
                    self.created_studies.add(study.pk)
                except IntegrityError:  # created by a concurrent ingest a moment ago
                    study = Study.objects.get(store=self.store, study_instance_uid=uid)
            self.studies[uid] = study
        check_same_patient(study, patient_id_of(parsed), parsed.sop_instance_uid)
        return study

    def _series(self, parsed: ParsedInstance, study: Study) -> Series:
        uid = parsed.series_instance_uid
        series: Series | None = self.series.get(uid)
        if series is None:
            series = _series_lookup(self.store).filter(series_instance_uid=uid).first()
            if series is None:
                try:
                    with transaction.atomic():
                        series = Series.objects.create(
                            study=study,
                            store=self.store,
                            series_instance_uid=uid,
                            quality_summary=empty_summary(),
                            **_series_fields(parsed),
                        )
                    self.created_series.add(series.pk)
                except IntegrityError:
                    series = _series_lookup(self.store).get(series_instance_uid=uid)
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
        uids = {parsed.sop_instance_uid for _, parsed in batch}
        # One query for both: the batch's UIDs already in this store (duplicates, conflicts), and files already on
        # disk with the same bytes in any store (referenced, not written again).
        wanted = Q(store=self.store, sop_instance_uid__in=uids)
        if self.keep_files:
            wanted |= Q(sha256__in={parsed.sha256 for _, parsed in batch}) & ~Q(file="")
        existing: dict[str, str] = {}
        self.known_files = {}
        for store_id, uid, sha, name in Instance.objects.filter(wanted).values_list(
            "store_id", "sop_instance_uid", "sha256", "file"
        ):
            if store_id == self.store.pk and uid in uids:
                existing[uid] = sha
            if name:
                self.known_files.setdefault(sha, name)
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
                name, new = self._write(parsed)
                if new:
                    written.append(name)
                rows.append(_instance_row(parsed, series, name))
            with transaction.atomic():
                Instance.objects.bulk_create(rows)
                series_add_instances(rows)
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
            self.touched_studies.add(series.study_id)

    def _write(self, parsed: ParsedInstance) -> tuple[str, bool]:
        """The file's name in storage, and whether this call wrote it (and so may remove it again)."""
        if not self.keep_files:
            return "", False
        known = self.known_files.get(parsed.sha256)
        if known:
            return known, False
        return default_storage.save(storage_path(parsed, self.store), ContentFile(parsed.data)), True

    def _store_one(
        self, position: int, parsed: ParsedInstance, series: Series, outcomes: dict[int, FileOutcome]
    ) -> None:
        name, new = self._write(parsed)
        try:
            with transaction.atomic():
                row = _instance_row(parsed, series, name)
                row.save()
                series_add_instances([row])
        except IntegrityError:
            if new:
                default_storage.delete(name)
            known = Instance.objects.filter(store=self.store, sop_instance_uid=parsed.sop_instance_uid).values_list(
                "sha256", flat=True
            )
            self._mark_known(outcomes[position], known.first() or "", parsed)
            return
        self.touched_studies.add(series.study_id)

    def finish(self) -> None:
        # Rows made for files that in the end were not stored leave nothing behind.
        if self.created_series:
            Series.objects.filter(pk__in=self.created_series, instances__isnull=True).delete()
        if self.created_studies:
            Study.objects.filter(pk__in=self.created_studies, series__isnull=True).delete()
        # The series and their studies' instance counts were brought up to date as the instances were stored
        # (series_add_instances); a study that gained a series gets its series count and modalities here.
        if self.created_series:
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
    store: ImageStore | None = None,
    source: DicomSource | None = None,
    progress: Callable[[FileOutcome], None] | None = None,
) -> IngestReport:
    """Ingest files in order into ``store`` (the platform store when None) and report each one. Never raises
    for a bad file: it is reported as rejected."""
    ingestor = _Ingestor(store or platform_store(), source)
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
                if incoming.refusal:
                    raise DicomRejected(incoming.refusal, code=incoming.refusal_code)
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


# A member that expands past this size must also stay under the ratio limit; smaller members may compress
# as much as they like (a small, mostly empty segmentation can compress 1000-fold and is no threat).
ZIP_RATIO_CHECK_FROM_BYTES = 16 * 1024**2


def open_zip_checked(stream: IO[bytes]) -> zipfile.ZipFile:
    """Open a zip and refuse it whole, before anything is stored, if any member is unsafe or too big, or
    expands like a zip bomb. Each refusal names the limit it hit and the setting that sets it."""
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as exc:
        raise ApplicationError(f"Not a valid zip archive: {exc}", code="bad_zip") from exc
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > settings.IMAGING_MAX_ZIP_FILES:
        raise PayloadTooLargeError(
            f"Zip holds {len(members)} files, more than the limit of {settings.IMAGING_MAX_ZIP_FILES} "
            "(IMAGING_MAX_ZIP_FILES): split it into smaller archives",
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
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > ZIP_RATIO_CHECK_FROM_BYTES and ratio > settings.IMAGING_MAX_ZIP_RATIO:
            raise PayloadTooLargeError(
                f"Zip member {name!r} expands {ratio:.0f}-fold ({_mib(info.compress_size)} to "
                f"{_mib(info.file_size)}), more than the limit of {settings.IMAGING_MAX_ZIP_RATIO} "
                "(IMAGING_MAX_ZIP_RATIO): refused as a zip bomb",
                code="zip_bomb",
            )
        total += info.file_size
    if total > settings.IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES:
        raise PayloadTooLargeError(
            f"Zip expands to {_mib(total)}, more than the limit of "
            f"{_mib(settings.IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES)} (IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES)",
            code="zip_too_large",
        )
    return archive


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB" if size >= 1024**2 else f"{size} bytes"


def iter_zip_files(archive: zipfile.ZipFile) -> Iterator[IncomingFile]:
    for info in archive.infolist():
        if info.is_dir():
            continue
        base = posixpath.basename(info.filename)
        if base.startswith(".") or info.filename.startswith("__MACOSX/") or base.upper() == "DICOMDIR":
            continue
        # Read at most the declared size plus one byte: a member that lies about its size is refused. A damaged
        # member (its CRC or its compressed data wrong) is one refused file, reported by name like a file that
        # is not DICOM: raising here would end the upload half done, the members before it stored.
        try:
            with archive.open(info) as member:
                data = member.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            yield IncomingFile(
                name=info.filename,
                data=b"",
                refusal=f"Damaged in the zip ({exc}): not stored; zip the file again",
                refusal_code="zip_corrupt",
            )
            continue
        if len(data) > info.file_size:
            yield IncomingFile(
                name=info.filename,
                data=b"",
                refusal="Damaged in the zip (larger than its header says): not stored; zip the file again",
                refusal_code="zip_corrupt",
            )
            continue
        if data[:4] == b"PK\x03\x04":
            # Said plainly, rather than "Not a DICOM Part 10 file": archives inside archives are not opened.
            yield IncomingFile(
                name=info.filename, data=data, refusal="A zip inside the zip is not opened: unzip it first"
            )
            continue
        yield IncomingFile(name=info.filename, data=data)


# --- Derived series and study attributes -----------------------------------------------------------


def _slice_thickness(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _first_header_value(tag: str) -> RawSQL:
    """The first value of a tag in the stored DICOM JSON header, read by PostgreSQL: the header is a few kilobytes per
    instance, and reading it whole for every instance of the series made each upload to a growing series slower
    (issue 19: a third of a 200-file series' per-file time). Raw SQL, because Django reads a key made of digits
    ("metadata__00180050") as an array index."""
    return RawSQL(f"\"imaging_instance\".\"metadata\" -> '{tag}' -> 'Value' ->> 0", ())


_THICKNESS = _first_header_value("00180050")  # Slice Thickness
_FRAME_OF_REFERENCE = _first_header_value("00200052")  # Frame of Reference UID (the quality checks warn without one)


def _order_key(instance_number: int | None, sop_instance_uid: str) -> list[Any]:
    """Where an instance comes in the order a full summary reads them (the model's: instance number, nulls last as
    PostgreSQL sorts them, then UID); the first instance's values are the series' references."""
    return [instance_number is None, instance_number or 0, sop_instance_uid]


def _header_value(metadata: dict[str, Any], tag: str) -> str | None:
    """The first value of a tag in a DICOM JSON header, as text (what ``_first_header_value`` reads in SQL)."""
    values = (metadata.get(tag) or {}).get("Value") or [None]
    return None if values[0] is None else str(values[0])


def _slice_of(instance: Instance) -> SliceInfo:
    return SliceInfo(
        sop_instance_uid=instance.sop_instance_uid,
        rows=instance.rows,
        columns=instance.columns,
        number_of_frames=instance.number_of_frames,
        image_position=instance.image_position,
        image_orientation=instance.image_orientation,
        pixel_spacing=instance.pixel_spacing,
        has_pixel_data=instance.has_pixel_data,
        is_decodable=instance.is_decodable,
        transfer_syntax_uid=instance.transfer_syntax_uid,
        slice_thickness=_slice_thickness(_header_value(instance.metadata, "00180050")),
        frame_of_reference_uid=_header_value(instance.metadata, "00200052") or "",
    )


def _save_summary(series: Series, summary: dict[str, Any]) -> None:
    result = check_summary(summary)
    for key, value in result.geometry.items():
        setattr(series, key, value)
    series.number_of_instances = summary["instances"]
    series.quality = result.quality
    series.quality_checks = result.checks
    series.quality_checked_at = timezone.now()
    series.quality_summary = summary
    series.save(
        update_fields=[
            *result.geometry.keys(),
            "number_of_instances",
            "quality",
            "quality_checks",
            "quality_checked_at",
            "quality_summary",
        ]
    )


def series_add_instances(instances: list[Instance]) -> None:
    """Bring the series of these just-inserted instances up to date, in the caller's transaction: counts,
    geometry and quality checks from each series' summary and the new instances only, so that one more file
    costs the same in a series of 2 or of 2,000 (issue 19). The series rows are locked until the caller
    commits, so two ingests into one series count every instance exactly once, and what a reader sees always
    matches the instances committed with it. A series whose summary cannot be extended exactly is summarised
    again from all its instances."""
    by_series: dict[int, list[Instance]] = {}
    for instance in instances:
        by_series.setdefault(instance.series_id, []).append(instance)
    locked = Series.objects.select_for_update().filter(pk__in=by_series).order_by("pk")
    added_to_study: dict[int, int] = {}
    for series in locked:
        added = [(_order_key(i.instance_number, i.sop_instance_uid), _slice_of(i)) for i in by_series[series.pk]]
        before = series.number_of_instances
        summary = summary_add(series.quality_summary, added) if series.quality_summary else None
        if summary is None:
            _summarise(series)
        else:
            _save_summary(series, summary)
        added_to_study[series.study_id] = added_to_study.get(series.study_id, 0) + series.number_of_instances - before
    # The study's count moves with its series' in the same transaction (its series and modalities change only
    # when a series is made or removed: see _Ingestor.finish).
    for study_id, count in sorted(added_to_study.items()):
        Study.objects.filter(pk=study_id).update(
            number_of_instances=F("number_of_instances") + count, updated_at=timezone.now()
        )


def refresh_series(series_id: int) -> Series:
    """Recompute geometry and quality checks of a series from all its instances (their geometry columns only)."""
    with transaction.atomic():
        series = Series.objects.select_for_update().get(pk=series_id)
        _summarise(series)
    return series


def _summarise(series: Series) -> None:
    rows = (
        Instance.objects.filter(series_id=series.pk)
        .annotate(thickness=_THICKNESS, frame_of_reference=_FRAME_OF_REFERENCE)
        .values_list(
            "sop_instance_uid",
            "instance_number",
            "rows",
            "columns",
            "number_of_frames",
            "image_position",
            "image_orientation",
            "pixel_spacing",
            "has_pixel_data",
            "is_decodable",
            "transfer_syntax_uid",
            "thickness",
            "frame_of_reference",
        )
        .order_by()  # the summary orders by each instance's key itself
    )
    slices = [
        (
            _order_key(number, uid),
            SliceInfo(
                sop_instance_uid=uid,
                rows=height,
                columns=width,
                number_of_frames=frames,
                image_position=position,
                image_orientation=orientation,
                pixel_spacing=spacing,
                has_pixel_data=pixels,
                is_decodable=decodable,
                transfer_syntax_uid=syntax,
                slice_thickness=_slice_thickness(thickness),
                frame_of_reference_uid=frame_of_reference or "",
            ),
        )
        for (
            uid,
            number,
            height,
            width,
            frames,
            position,
            orientation,
            spacing,
            pixels,
            decodable,
            syntax,
            thickness,
            frame_of_reference,
        ) in rows
    ]
    summary = summary_add(empty_summary(), slices)
    assert summary is not None  # adding to an empty summary never needs earlier slices
    _save_summary(series, summary)


def refresh_study(study_id: int) -> Study:
    study = Study.objects.get(pk=study_id)
    series = list(Series.objects.filter(study_id=study_id).values_list("modality", "number_of_instances"))
    study.number_of_series = len(series)
    study.number_of_instances = sum(count for _, count in series)
    study.modalities_in_study = "\\".join(sorted({modality for modality, _ in series if modality}))
    study.save(update_fields=["number_of_series", "number_of_instances", "modalities_in_study", "updated_at"])
    return study
