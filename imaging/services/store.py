"""Storing files into a destination: the local store, or an upstream PACS with the index kept here."""

from __future__ import annotations

from collections.abc import Iterable

from imaging.dicom import DicomRejected, parse_part10
from imaging.models import DicomSource
from imaging.services import upstream
from imaging.services.ingest import IncomingFile, IngestReport, ingest_files


def files_store(files: Iterable[IncomingFile], *, source: DicomSource | None) -> IngestReport:
    """Ingest into the local store; for an upstream source, send the valid files to the PACS first and
    index them only once it has accepted them (a PACS that is down stores nothing here either)."""
    if source is None or not source.is_upstream:
        return ingest_files(files, source=None)
    materialised = list(files)
    datasets = []
    for incoming in materialised:
        try:
            datasets.append(parse_part10(incoming.data).full_dataset())
        except DicomRejected:
            continue  # reported as rejected by ingest_files below
    if datasets:
        upstream.store(source, datasets)
    return ingest_files(materialised, source=source)
