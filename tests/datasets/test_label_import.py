"""Importing existing segmentations (issue 18, item 3), and the round trips of the acceptance: mask -> SEG ->
STOW-RS to the test run's Orthanc -> retrieved back -> imported into another project that holds the same
series -> the voxel-identical mask; the same for RTSTRUCT (Dice bar 1.0: see datasets/rtstruct.py). A file
that references a series the project does not have, or whose geometry does not fit, is a 400 that stores
nothing."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import cast

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import load_example_schema
from annotation.models import Annotation, AnnotationRevision, Case, Project, Role
from annotation.services import cases_create, load_mask, schema_create_version
from datasets.label_import import ImportRefused, labels_import_dicom
from datasets.models import LabelImport
from datasets.services import export_create
from imaging.models import DicomSource
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import SyntheticStudy
from tests.annotation.conftest import _study_files
from tests.conftest import dataset_bytes, require_env
from tests.datasets.conftest import run_export, zip_files
from tests.factories import DicomSourceFactory, MembershipFactory, ProjectFactory


def _truth(revision: AnnotationRevision) -> np.ndarray:
    item = next(i for i in revision.items if i["label"] == "nodule_mask")
    return load_mask(revision.masks.get(sha256=item["mask"]["sha256"]))


@pytest.fixture
def exported(adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User]) -> dict[str, bytes]:
    """SEG and RTSTRUCT of the adjudicated masks, identified (so they reference the original series)."""
    export = run_export(
        export_create(
            project=adjudicated_cases[0][0].project,
            created_by=users["manager"],
            formats=["dicom_seg", "dicom_rtstruct"],
            filters={"min_qa_level": "adjudicated"},
            deidentify=False,
            enqueue=False,
        )
    )
    return zip_files(export)


@pytest.fixture
def other_project(ingested_studies: list[SyntheticStudy], users: dict[str, User]) -> Project:
    """A second project whose own store holds the same studies (ingested again there), with the same schema."""
    project = cast(Project, ProjectFactory(slug="second-site", name="Second site"))
    MembershipFactory(project=project, user=users["manager"], role=Role.MANAGER)
    for study in ingested_studies:
        seed = int(study.seed or 0)
        report = ingest_files(
            [IncomingFile(f"{seed}-{k}.dcm", data) for k, data in enumerate(_study_files(seed))],
            store=project.image_store,
        )
        assert {f.status for f in report.files} == {STORED}
    schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    cases_create(project=project, study_uids=[s.study_uid for s in ingested_studies])
    return project


def test_seg_round_trip_through_orthanc_into_another_project_gives_the_identical_mask(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    exported: dict[str, bytes],
    other_project: Project,
    users: dict[str, User],
) -> None:
    client = DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL"))
    for n, (case, revision) in enumerate(adjudicated_cases, start=1):
        seg = pydicom.dcmread(io.BytesIO(exported[f"seg/case_{n:05d}.dcm"]))
        response = client.store_instances(datasets=[seg])
        assert not response.get("FailedSOPSequence"), response
        back = client.retrieve_instance(seg.StudyInstanceUID, seg.SeriesInstanceUID, seg.SOPInstanceUID)
        imported = labels_import_dicom(project=other_project, data=dataset_bytes(back), imported_by=users["manager"])
        assert imported.origin == Annotation.Origin.IMPORTED and imported.annotation.role == "imported"
        assert imported.annotation.case.study.study_instance_uid == case.study.study_instance_uid
        assert imported.annotation.case.project_id == other_project.pk
        mask = load_mask(imported.masks.get())
        assert mask.shape == _truth(revision).shape
        assert np.array_equal(mask, _truth(revision))
        record = LabelImport.objects.get(revision=imported)
        assert record.provenance["sop_instance_uid"] == seg.SOPInstanceUID
        assert record.provenance["modality"] == "SEG" and record.imported_by == users["manager"]


def test_rtstruct_imports_through_the_api_within_the_dice_bar(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    exported: dict[str, bytes],
    other_project: Project,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    manager = client_for(users["manager"])
    case, revision = adjudicated_cases[1]
    upload = io.BytesIO(exported["rtstruct/case_00002.dcm"])
    upload.name = "rtstruct.dcm"
    response = manager.post(f"/api/v1/projects/{other_project.slug}/label-imports/", {"file": upload})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["origin"] == "imported" and body["role"] == "imported"
    assert body["provenance"]["modality"] == "RTSTRUCT" and body["imported_by"] == "manager"
    imported = AnnotationRevision.objects.get(pk=body["revision"])
    mask, truth = load_mask(imported.masks.get()) > 0, _truth(revision) > 0
    dice = 2 * np.logical_and(mask, truth).sum() / (mask.sum() + truth.sum())
    assert dice == 1.0  # the bar: contours at level 0.5 filled by pixel centre give the mask back exactly


def test_a_label_for_a_series_the_project_does_not_have_is_refused_and_nothing_is_stored(
    exported: dict[str, bytes],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    empty = cast(Project, ProjectFactory(slug="empty-site", name="Empty"))
    MembershipFactory(project=empty, user=users["manager"], role=Role.MANAGER)
    schema_create_version(project=empty, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    before = AnnotationRevision.objects.count()
    for name in ("seg/case_00001.dcm", "rtstruct/case_00001.dcm"):
        upload = io.BytesIO(exported[name])
        upload.name = "label.dcm"
        response = client_for(users["manager"]).post(f"/api/v1/projects/{empty.slug}/label-imports/", {"file": upload})
        assert response.status_code == 400
        assert "does not have" in response.json()["detail"] and "ingest that series" in response.json()["detail"]
    assert AnnotationRevision.objects.count() == before and LabelImport.objects.count() == 0


def test_a_label_whose_geometry_does_not_fit_the_series_is_refused(
    exported: dict[str, bytes], other_project: Project, users: dict[str, User]
) -> None:
    seg = pydicom.dcmread(io.BytesIO(exported["seg/case_00001.dcm"]))
    # One frame now claims to be derived from an image that is not in the series.
    source = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    source.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    with pytest.raises(ImportRefused, match="geometry does not fit"):
        labels_import_dicom(project=other_project, data=dataset_bytes(seg), imported_by=users["manager"])
    rtstruct = pydicom.dcmread(io.BytesIO(exported["rtstruct/case_00001.dcm"]))
    contour = rtstruct.ROIContourSequence[0].ContourSequence[0]
    contour.ContourImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    with pytest.raises(ImportRefused, match="geometry does not fit"):
        labels_import_dicom(project=other_project, data=dataset_bytes(rtstruct), imported_by=users["manager"])
    broken = pydicom.dcmread(io.BytesIO(exported["seg/case_00001.dcm"]))
    del broken.SegmentSequence
    with pytest.raises(ImportRefused, match="cannot be read"):
        labels_import_dicom(project=other_project, data=dataset_bytes(broken), imported_by=users["manager"])
    with pytest.raises(ImportRefused, match="only DICOM SEG and RTSTRUCT"):
        labels_import_dicom(project=other_project, data=_study_files(101)[0], imported_by=users["manager"])
    assert LabelImport.objects.count() == 0


def test_an_rtstruct_in_the_projects_pacs_is_imported_by_its_uids(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    exported: dict[str, bytes],
    other_project: Project,
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    rtstruct = pydicom.dcmread(io.BytesIO(exported["rtstruct/case_00003.dcm"]))
    response = DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL")).store_instances(datasets=[rtstruct])
    assert not response.get("FailedSOPSequence"), response
    source = cast(DicomSource, DicomSourceFactory())
    body = {
        "source": source.name,
        "study_instance_uid": rtstruct.StudyInstanceUID,
        "series_instance_uid": rtstruct.SeriesInstanceUID,
        "sop_instance_uid": rtstruct.SOPInstanceUID,
    }
    manager = client_for(users["manager"])
    url = f"/api/v1/projects/{other_project.slug}/label-imports/pacs/"
    refused = manager.post(url, body, content_type="application/json")
    assert refused.status_code == 403 and "may not take studies from PACS" in refused.json()["detail"]
    assert LabelImport.objects.count() == 0
    other_project.import_sources.add(source)  # an administrator opens the PACS to the project
    created = manager.post(url, body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["provenance"]["source"] == f"pacs:{source.name}"
    imported = AnnotationRevision.objects.get(pk=created.json()["revision"])
    assert np.array_equal(load_mask(imported.masks.get()), _truth(adjudicated_cases[2][1]))
