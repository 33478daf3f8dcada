"""De-identified source DICOM in exports (issue 18, item 4): the images themselves, with the same profile and
UID remapping as the SEG, RTSTRUCT and SR of the snapshot, so that those reference images inside it."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.contrib.auth.models import User

from annotation.models import AnnotationRevision, Case
from datasets.models import Export
from datasets.services import export_create, export_write
from imaging.synthetic import SyntheticStudy
from tests.datasets.conftest import run_export, zip_files
from tests.dciodvfy import assert_valid_dicom


def test_exported_images_are_deidentified_and_the_seg_rtstruct_and_sr_reference_them(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    ingested_studies: list[SyntheticStudy],
    users: dict[str, User],
) -> None:
    export = run_export(
        export_create(
            project=adjudicated_cases[0][0].project,
            created_by=users["manager"],
            formats=["dicom_images", "dicom_seg", "dicom_rtstruct", "dicom_sr"],
            filters={"min_qa_level": "adjudicated"},
            enqueue=False,
        )
    )
    files = zip_files(export)
    for n, study in enumerate(ingested_studies, start=1):
        key = f"case_{n:05d}"
        names = sorted(name for name in files if name.startswith(f"dicom/{key}/"))
        assert len(names) == study.shape[0]
        images = [pydicom.dcmread(io.BytesIO(files[name])) for name in names]
        for name in names[:2]:
            assert_valid_dicom(files[name], name)
        originals = {study.study_uid, study.series_uid, study.frame_of_reference_uid, *study.sop_instance_uids()}
        for image in images:
            assert image.PatientIdentityRemoved == "YES"
            assert image.PatientID != study.patient_id and str(image.PatientName) != study.patient_name
            assert not originals & {image.StudyInstanceUID, image.SeriesInstanceUID, image.SOPInstanceUID}
            assert image.file_meta.MediaStorageSOPInstanceUID == image.SOPInstanceUID
        in_export = {image.SOPInstanceUID for image in images}
        series_uid, frame_uid = images[0].SeriesInstanceUID, images[0].FrameOfReferenceUID
        seg = pydicom.dcmread(io.BytesIO(files[f"seg/{key}.dcm"]))
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
        assert {
            i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        } <= in_export
        assert seg.FrameOfReferenceUID == frame_uid and seg.StudyInstanceUID == images[0].StudyInstanceUID
        rtstruct = pydicom.dcmread(io.BytesIO(files[f"rtstruct/{key}.dcm"]))
        series_ref = rtstruct.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
        contour_images = series_ref.RTReferencedSeriesSequence[0].ContourImageSequence
        assert {i.ReferencedSOPInstanceUID for i in contour_images} == in_export
        sr = pydicom.dcmread(io.BytesIO(files[f"sr/{key}.dcm"]))
        evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
        assert evidence.SeriesInstanceUID == series_uid
        assert {i.ReferencedSOPInstanceUID for i in evidence.ReferencedSOPSequence} <= in_export


@pytest.mark.parametrize("deidentify", [True, False], ids=["deidentified", "identified"])
def test_a_rebuild_of_the_dicom_formats_gives_identical_bytes(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User], tmp_path: Path, deidentify: bool
) -> None:
    """No clock and no random UID in the SEG, RTSTRUCT, SR or images: the same snapshot, the same bytes."""
    export = run_export(
        export_create(
            project=adjudicated_cases[0][0].project,
            created_by=users["manager"],
            formats=["dicom_images", "dicom_seg", "dicom_rtstruct", "dicom_sr"],
            filters={"min_qa_level": "adjudicated"},
            deidentify=deidentify,
            enqueue=False,
        )
    )
    again = tmp_path / "again.zip"
    export_write(Export.objects.get(pk=export.pk), str(again))
    with zipfile.ZipFile(again) as archive:
        rebuilt = {n: archive.read(n) for n in archive.namelist()}
    first = zip_files(export)
    assert sorted(rebuilt) == sorted(first)
    assert [n for n in first if rebuilt[n] != first[n]] == []
