"""A corpus of real-world shapes exports SEG and RTSTRUCT, or says why a case was left out (issue 18): a real
CT from a real device (pydicom's CT_small.dcm, one slice), a study with two series (the label on one; the
images of both exported), and a multi-frame image, which is left out with its reason. The files that lack
Type 2 attributes or a Frame of Reference are in test_real_world_dicom.py."""

from __future__ import annotations

import io
from typing import cast

import numpy as np
import pydicom
from django.contrib.auth.models import User
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from annotation.labels import load_example_schema
from annotation.models import Case, Project, Role
from annotation.services import cases_create, schema_create_version
from datasets.services import export_create
from imaging.models import Series
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from jobs.models import JobStatus
from tests.annotation.conftest import _study_files, case_sops, chest_values
from tests.conftest import dataset_bytes
from tests.datasets.conftest import agree, run_export, zip_files
from tests.dciodvfy import assert_valid_dicom
from tests.factories import MembershipFactory, ProjectFactory

FORMATS = ["dicom_seg", "dicom_rtstruct", "dicom_sr", "dicom_images"]


def _ingest(project: Project, files: list[bytes], prefix: str) -> None:
    report = ingest_files(
        [IncomingFile(f"{prefix}-{k}.dcm", d) for k, d in enumerate(files)], store=project.image_store
    )
    assert {f.status for f in report.files} == {STORED}, [f.reason for f in report.files]


def _second_series(seed: int) -> list[bytes]:
    """The synthetic study's slices again as a second series of the same study (new series and SOP UIDs)."""
    series_uid = generate_uid(entropy_srcs=["second-series", str(seed)])
    out = []
    for k, data in enumerate(_study_files(seed)):
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 2
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["second-series", str(seed), str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out.append(dataset_bytes(ds))
    return out


def _testdata(name: str) -> str:
    path = get_testdata_file(name)
    assert isinstance(path, str), f"{name} is not in pydicom's wheel"
    return path


def _mask(case: Case, series: Series) -> np.ndarray:
    mask = np.zeros((series.number_of_slices, series.rows or 0, series.columns or 0), dtype=np.uint8)
    rows, columns = mask.shape[1:]
    mask[:, rows // 4 : rows // 2, columns // 4 : columns // 2] = 1
    return mask


def _box(series: Series) -> dict[str, int]:
    rows, columns = series.rows or 0, series.columns or 0
    return {"x": columns // 4, "y": rows // 4, "width": columns // 4, "height": rows // 4}


def test_a_corpus_of_real_world_shapes_exports_seg_and_rtstruct_or_says_why_not(
    db: None, users: dict[str, User]
) -> None:
    project = cast(Project, ProjectFactory(slug="corpus", name="Corpus"))
    for role in ("annotator", "reviewer", "expert", "manager"):
        MembershipFactory(project=project, user=users[role], role=Role(role))
    ct_small = pydicom.dcmread(_testdata("CT_small.dcm"))
    _ingest(project, [dataset_bytes(ct_small)], "ct-small")
    _ingest(project, list(_study_files(102)) + _second_series(102), "two-series")
    multiframe = pydicom.dcmread(_testdata("rtdose.dcm"))
    _ingest(project, [dataset_bytes(multiframe)], "multiframe")
    schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    study_uids = [str(ct_small.StudyInstanceUID), pydicom.dcmread(io.BytesIO(_study_files(102)[0])).StudyInstanceUID]
    study_uids.append(str(multiframe.StudyInstanceUID))
    cases = cases_create(project=project, study_uids=study_uids)
    for case in cases:
        case = Case.objects.select_related("project", "study").get(pk=case.pk)
        series = Series.objects.filter(study=case.study).order_by("series_number", "series_instance_uid").first()
        assert series is not None
        values = chest_values(case, mask=_mask(case, series), slice_index=0, geometry=_box(series))
        agree(case, users, values)
    export = run_export(
        export_create(
            project=project,
            created_by=users["manager"],
            formats=FORMATS,
            filters={"min_qa_level": "agreed"},
            enqueue=False,
        ),
        expect=JobStatus.PARTIAL,
    )
    files = zip_files(export)
    keys = {case.pk: f"case_{n:05d}" for n, case in enumerate(sorted(cases, key=lambda c: c.pk), start=1)}
    ct_case, two_series_case, multiframe_case = cases
    for case in (ct_case, two_series_case):
        for folder in ("seg", "rtstruct", "sr"):
            name = f"{folder}/{keys[case.pk]}.dcm"
            assert name in files, (name, export.left_out)
            assert_valid_dicom(files[name], name)
    # CT_small: one real slice; its SEG has one frame and references it.
    seg = pydicom.dcmread(io.BytesIO(files[f"seg/{keys[ct_case.pk]}.dcm"]))
    assert int(seg.NumberOfFrames) == 1 and seg.Rows == 128
    # The two-series study: the label is on the first series; the images of both series are exported.
    folders = {name.split("/")[2] for name in files if name.startswith(f"dicom/{keys[two_series_case.pk]}/")}
    assert folders == {"series_01", "series_02"}
    # The multi-frame image: every format left out, each with the reason.
    reasons = {row["format"]: row["reason"] for row in export.left_out if row["case_id"] == multiframe_case.pk}
    assert set(reasons) == set(FORMATS)
    assert all("multi-frame" in reason for reason in reasons.values()), reasons
    assert {row["case_id"] for row in export.left_out} == {multiframe_case.pk}
    assert case_sops(ct_case) == [str(ct_small.SOPInstanceUID)]
