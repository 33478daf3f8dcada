"""The exported DICOM SEG is accepted by a real PACS: STOW-RS to the test run's Orthanc, then found by QIDO-RS
and retrieved back with the same segmentation frames."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User

from annotation.models import AnnotationRevision, Case
from datasets.services import export_create
from tests.conftest import require_env
from tests.datasets.conftest import run_export, zip_files
from tests.dciodvfy import assert_valid_dicom


def test_the_exported_seg_is_stored_by_orthanc_over_stow_rs(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User]
) -> None:
    client = DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL"))
    export = run_export(
        export_create(
            project=adjudicated_cases[0][0].project,
            created_by=users["manager"],
            formats=["dicom_seg"],
            filters={"min_qa_level": "adjudicated"},
            enqueue=False,
        )
    )
    files = zip_files(export)
    segs = [pydicom.dcmread(io.BytesIO(data)) for name, data in sorted(files.items()) if name.startswith("seg/")]
    assert len(segs) == 3
    for name, data in sorted(files.items()):
        if name.startswith("seg/"):
            assert_valid_dicom(data, name)
    response = client.store_instances(datasets=segs)
    assert not response.get("FailedSOPSequence"), response
    stored = response.ReferencedSOPSequence
    assert sorted(item.ReferencedSOPInstanceUID for item in stored) == sorted(s.SOPInstanceUID for s in segs)
    for seg in segs:
        found = client.search_for_instances(study_instance_uid=seg.StudyInstanceUID)
        assert seg.SOPInstanceUID in [item["00080018"]["Value"][0] for item in found]
        back = client.retrieve_instance(seg.StudyInstanceUID, seg.SeriesInstanceUID, seg.SOPInstanceUID)
        assert back.Modality == "SEG"
        assert np.array_equal(back.pixel_array, seg.pixel_array)
    assert json.loads(files["snapshot.json"])["deidentified"] is True
