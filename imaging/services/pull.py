"""Bringing a study in from an upstream PACS: copy its files into the local store, or index it so that
its pixels are proxied from the PACS."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from config.errors import NotFoundError
from imaging.models import DicomSource, Instance, Series, Study
from imaging.services import upstream
from imaging.services.ingest import IncomingFile, IngestReport, ingest_files, refresh_series, refresh_study


def study_pull(*, source: DicomSource, study_instance_uid: str) -> IngestReport:
    """Copy every instance of the study into the local store through the ingest service."""
    files = (
        IncomingFile(name=f"{source.name}:{study_instance_uid}#{index}", data=data)
        for index, data in enumerate(upstream.iter_study(source, study_instance_uid), start=1)
    )
    report = ingest_files(files, source=None)
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
def study_index_upstream(*, source: DicomSource, study_instance_uid: str) -> Study:
    """Register an upstream study in the index from its WADO-RS metadata; pixels stay in the PACS."""
    metadata = upstream.retrieve_metadata(source, study_instance_uid)
    if not metadata:
        raise NotFoundError(f"Study {study_instance_uid} has no instances on upstream PACS {source.name!r}")
    first = metadata[0]
    study, _ = Study.objects.update_or_create(
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
            series_instance_uid=series_uid,
            defaults={
                "study": study,
                "modality": str(_value(item, "00080060"))[:16],
                "series_number": _value(item, "00200011", None),
                "series_description": str(_value(item, "0008103E"))[:64],
                "frame_of_reference_uid": str(_value(item, "00200052"))[:64],
            },
        )
        touched.add(series.pk)
        # WADO-RS metadata need not carry the File Meta group (Orthanc leaves it out): the transfer syntax is
        # then unknown, which is fine since proxied frames are always asked for as Explicit VR Little Endian.
        transfer_syntax = str(_value(item, "00020010", ""))
        rows, columns = _value(item, "00280010", None), _value(item, "00280011", None)
        clean = {tag: element for tag, element in item.items() if "BulkDataURI" not in element and tag[:4] != "0002"}
        Instance.objects.update_or_create(
            sop_instance_uid=_value(item, "00080018"),
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
