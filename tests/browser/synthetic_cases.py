"""One synthetic study ingested as one case of a project: the setup the reader's browser tests and its benchmark
share (it was written out four times: test_reading_flow, test_ai_assist, test_reader_measurements and
benchmarks/bench_reader). Real ingest (the DICOM bytes through ingest_files), real placement and real case
creation; no shortcut past the code the reader depends on."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pydicom

from annotation.models import Case, Project
from annotation.services import cases_create
from imaging.services.ingest import IncomingFile, ingest_files
from imaging.synthetic import SyntheticStudy
from tests.factories import place_studies


def ingest_as_case(project: Project, study: SyntheticStudy, *, name: str, priority: float = 5.0) -> Case:
    """Write each slice of `study` as a DICOM file (named `name/0001.dcm`...), ingest them, place the study in
    `project` and make it one case of the given priority."""

    def files() -> Iterator[IncomingFile]:
        for number, dataset in enumerate(study.datasets(), start=1):
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
            yield IncomingFile(name=f"{name}/{number:04d}.dcm", data=buffer.getvalue())

    report = ingest_files(files())
    place_studies(project, report.study_uids)
    (case,) = cases_create(project=project, study_uids=report.study_uids, priority=priority)
    return case
