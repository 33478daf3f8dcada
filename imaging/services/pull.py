"""Bringing a study in from an upstream PACS: copy its files into the local store, or index it so that
its pixels are proxied from the PACS."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from config.errors import ConflictError, NotFoundError
from imaging.models import DicomSource, ImageStore, Instance, Series, Study
from imaging.services import upstream
from imaging.services.ingest import (
    IncomingFile,
    IngestReport,
    PatientMismatch,
    check_same_patient,
    ingest_files,
    refresh_series,
    refresh_study,
)


def study_pull(*, source: DicomSource, study_instance_uid: str, store: ImageStore) -> IngestReport:
    """Copy every instance of the study into ``store``'s local files through the ingest service."""
    files = (
        IncomingFile(name=f"{source.name}:{study_instance_uid}#{index}", data=data)
        for index, data in enumerate(upstream.iter_study(source, study_instance_uid), start=1)
    )
    report = ingest_files(files, store=store, source=None)
    if not report.files:
        raise NotFoundError(f"Study {study_instance_uid} has no instances on upstream PACS {source.name!r}")
    return report


def _value(item: dict[str, Any], tag: str, default: Any = "") -> Any:
    try:
        value = item[tag]["Value"][0]
    except (KeyError, IndexError, TypeError):
        return default
    if isinstance(value, dict):  # person name
        return value.get("Alphabetic", default)
    return value


def _floats(item: dict[str, Any], tag: str) -> list[float] | None:
    try:
        return [float(v) for v in item[tag]["Value"]]
    except (KeyError, TypeError, ValueError):
        return None


@transaction.atomic
def study_index_upstream(*, source: DicomSource, study_instance_uid: str, store: ImageStore) -> Study:
    """Register an upstream study in ``store``'s index from its WADO-RS metadata; pixels stay in the PACS.

    All or nothing: an instance of another patient than the study's, or a series that belongs to another
    study of the store, refuses the whole study (409) and indexes none of it."""
    metadata = upstream.retrieve_metadata(source, study_instance_uid)
    if not metadata:
        raise NotFoundError(f"Study {study_instance_uid} has no instances on upstream PACS {source.name!r}")
    first = metadata[0]
    existing = Study.objects.filter(store=store, study_instance_uid=study_instance_uid).first()
    if existing is not None and existing.source_id != source.pk:
        raise ConflictError(
            f"Study {study_instance_uid} is already in this project from another place; it is not indexed again "
            f"from {source.name!r}",
            code="study_elsewhere",
        )
    for item in metadata:
        reference = existing or Study(
            study_instance_uid=study_instance_uid, patient_id=str(_value(first, "00100020"))[:64]
        )
        try:
            check_same_patient(reference, str(_value(item, "00100020"))[:64], str(_value(item, "00080018")))
        except PatientMismatch as exc:
            raise ConflictError(exc.message, code=exc.code) from exc
    study, _ = Study.objects.update_or_create(
        store=store,
        study_instance_uid=study_instance_uid,
        defaults={
            "source": source,
            "patient_id": str(_value(first, "00100020"))[:64],
            "patient_name": str(_value(first, "00100010"))[:324],
            "patient_birth_date": str(_value(first, "00100030"))[:8],
            "patient_sex": str(_value(first, "00100040"))[:16],
            "study_date": str(_value(first, "00080020"))[:8],
            "study_time": str(_value(first, "00080030"))[:16],
            "accession_number": str(_value(first, "00080050"))[:16],
            "study_id": str(_value(first, "00200010"))[:16],
            "study_description": str(_value(first, "00081030"))[:64],
        },
    )
    touched: set[int] = set()
    for item in metadata:
        series_uid = _value(item, "0020000E")
        series, _ = Series.objects.get_or_create(
            store=store,
            series_instance_uid=series_uid,
            defaults={
                "study": study,
                "modality": str(_value(item, "00080060"))[:16],
                "series_number": _value(item, "00200011", None),
                "series_description": str(_value(item, "0008103E"))[:64],
                "frame_of_reference_uid": str(_value(item, "00200052"))[:64],
            },
        )
        if series.study_id != study.pk:
            raise ConflictError(
                f"Series {series_uid} already belongs to another study of this project, not {study_instance_uid}",
                code="conflict",
            )
        touched.add(series.pk)
        # WADO-RS metadata need not carry the File Meta group (Orthanc leaves it out): the transfer syntax is
        # then unknown, which is fine since proxied frames are always served as Explicit VR Little Endian
        # (upstream.stream_frame finds out from the PACS's answer whether it must ask for them converted).
        transfer_syntax = str(_value(item, "00020010", ""))
        rows, columns = _value(item, "00280010", None), _value(item, "00280011", None)
        clean = {tag: element for tag, element in item.items() if "BulkDataURI" not in element and tag[:4] != "0002"}
        sop_uid = _value(item, "00080018")
        known = Instance.objects.filter(store=store, sop_instance_uid=sop_uid).select_related("series").first()
        if known is not None and known.series.study_id != study.pk:
            raise ConflictError(
                f"SOP Instance {sop_uid} already belongs to another study of this project", code="conflict"
            )
        Instance.objects.update_or_create(
            store=store,
            sop_instance_uid=sop_uid,
            defaults={
                "series": series,
                "sop_class_uid": _value(item, "00080016"),
                "instance_number": _value(item, "00200013", None),
                "transfer_syntax_uid": transfer_syntax,
                "rows": rows,
                "columns": columns,
                "number_of_frames": int(_value(item, "00280008", 1) or 1),
                "samples_per_pixel": _value(item, "00280002", None),
                "bits_allocated": _value(item, "00280100", None),
                "image_position": _floats(item, "00200032"),
                "image_orientation": _floats(item, "00200037"),
                "pixel_spacing": _floats(item, "00280030"),
                # Orthanc lists no Pixel Data element (no BulkDataURI) for compressed images: an image's
                # Rows and Columns say it has pixels as well.
                "has_pixel_data": "7FE00010" in item or (rows is not None and columns is not None),
                "is_encapsulated": bool(transfer_syntax)
                and transfer_syntax not in {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"},
                "metadata": clean,
            },
        )
    for series_id in touched:
        refresh_series(series_id)
    return refresh_study(study.pk)
