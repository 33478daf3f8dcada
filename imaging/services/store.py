"""Storing files into a destination: a store's local files, or an upstream PACS with the index kept here."""

from __future__ import annotations

from collections.abc import Iterable

from imaging.dicom import DicomRejected, parse_part10
from imaging.models import DicomSource, ImageStore, Study
from imaging.services import upstream
from imaging.services.ingest import IncomingFile, IngestReport, ingest_files, patient_id_of


def files_store(files: Iterable[IncomingFile], *, store: ImageStore, source: DicomSource | None) -> IngestReport:
    """Ingest into ``store``; for an upstream source, send the valid files to the PACS first and index them
    only once it has accepted them (a PACS that is down stores nothing here either)."""
    if source is None or not source.is_upstream:
        return ingest_files(files, store=store, source=None)
    materialised = list(files)
    parsed_files = []
    for incoming in materialised:
        try:
            parsed_files.append(parse_part10(incoming.data))
        except DicomRejected:
            continue  # reported as rejected by ingest_files below
    # Files that ingest will refuse for their patient are not sent to the PACS either: the patients of the
    # studies these files name (only those), then the first file of a new study sets its patient.
    named = {parsed.study_instance_uid for parsed in parsed_files}
    patients = dict(
        Study.objects.filter(store=store, study_instance_uid__in=named).values_list("study_instance_uid", "patient_id")
    )
    datasets = []
    for parsed in parsed_files:
        patient = patient_id_of(parsed)
        if patients.setdefault(parsed.study_instance_uid, patient) == patient:
            datasets.append(parsed.full_dataset())
    if datasets:
        upstream.store(source, datasets)
    return ingest_files(materialised, store=store, source=source)
