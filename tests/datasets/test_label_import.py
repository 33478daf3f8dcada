"""Importing existing segmentations (issue 18, item 3), and the round trips of the acceptance: mask -> SEG ->
STOW-RS to the test run's Orthanc -> retrieved back -> imported into another project that holds the same
series -> the voxel-identical mask; the same for RTSTRUCT (Dice bar 1.0: see datasets/rtstruct.py). A file
that references a series the project does not have, or whose geometry does not fit, is a 400 that stores
nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import encode_mask, load_example_schema
from annotation.models import Annotation, AnnotationRevision, Case, CaseStatus, Project, Role
from annotation.services import cases_create, load_mask, schema_create_version
from datasets.label_import import ImportRefused, labels_import_dicom
from datasets.models import LabelImport
from datasets.services import export_create
from imaging.models import DicomSource
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import SyntheticStudy
from review.models import GoldCase, GoldScore
from review.services import policy_for
from tests.annotation.conftest import _study_files, chest_values
from tests.conftest import dataset_bytes, require_env
from tests.datasets.conftest import read, run_export, truth_values, zip_files
from tests.factories import DicomSourceFactory, MembershipFactory, ProjectFactory
from tests.review.conftest import save
from tests.review.test_gold_cases import shape


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
    with pytest.raises(ImportRefused, match="only DICOM SEG, RTSTRUCT and SR"):
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


# --- Imported as a gold reference (issue 18 item 3 with issue 14's gold cases) ---------------------------------


def next_raw(client: Client, slug: str) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/projects/{slug}/worklist/next/", data={"role": "first_reader"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return dict(response.json())


def worklist_row(client: Client, slug: str, case_id: int) -> dict[str, Any]:
    rows = client.get(f"/api/v1/projects/{slug}/worklist/", {"role": "first_reader"}).json()["assignments"]
    [row] = [r for r in rows if r["case"]["id"] == case_id]
    return dict(row)


def _case_of(project: Project, study_uid: str) -> Case:
    return Case.objects.get(project=project, study__study_instance_uid=study_uid)


def _upload(client: Client, slug: str, data: bytes, **fields: str) -> Any:
    upload = io.BytesIO(data)
    upload.name = "label.dcm"
    return client.post(f"/api/v1/projects/{slug}/label-imports/", {"file": upload, **fields})


def _stored() -> tuple[int, int, int]:
    return AnnotationRevision.objects.count(), LabelImport.objects.count(), GoldCase.objects.count()


def test_a_seg_imported_as_gold_reference_makes_the_case_gold_and_scores_readers_against_it_unseen(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    exported: dict[str, bytes],
    other_project: Project,
    ingested_studies: list[SyntheticStudy],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    MembershipFactory(project=other_project, user=users["annotator"], role=Role.ANNOTATOR)
    policy = policy_for(other_project)
    policy.gold_rate, policy.gold_feedback = 0.5, False
    policy.save()
    manager, reader = client_for(users["manager"]), client_for(users["annotator"])
    study = ingested_studies[2]
    gold_case = _case_of(other_project, study.study_uid)
    truth = _truth(adjudicated_cases[2][1])

    response = _upload(manager, other_project.slug, exported["seg/case_00003.dcm"], use="gold_reference")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["gold_case"] == gold_case.pk and body["case"] == gold_case.pk
    assert body["role"] == "gold_reference" and body["origin"] == "imported"
    assert body["provenance"]["use"] == "gold_reference" and body["provenance"]["modality"] == "SEG"
    gold = GoldCase.objects.get(case=gold_case)
    assert gold.source == GoldCase.Source.IMPORTED and gold.reference_id == body["revision"]
    assert gold.marked_by == users["manager"]
    assert LabelImport.objects.get(revision_id=gold.reference_id).case_id == gold_case.pk  # provenance kept
    assert np.array_equal(load_mask(gold.reference.masks.get()), truth)
    # The reference instead of an imported reading, not beside it.
    assert not Annotation.objects.filter(case=gold_case, role="imported").exists()
    manager_view = manager.get(f"/api/v1/cases/{gold_case.pk}/gold/").json()
    assert manager_view["source"] == "imported" and manager_view["reference_revision"] == gold.reference_id
    assert manager_view["label_import"] == body["id"]

    # Served at the gold rate like any case: first a normal one, then the gold one.
    first = next_raw(reader, other_project.slug)
    normal_id = int(first["case"]["id"])
    assert normal_id != gold_case.pk
    normal_case = Case.objects.get(pk=normal_id)
    normal_body = reader.get(f"/api/v1/cases/{normal_id}/").json()
    normal_saved = save(reader, normal_id, chest_values(normal_case, mask=True), role="first_reader")
    normal_row = worklist_row(reader, other_project.slug, normal_id)
    second = next_raw(reader, other_project.slug)
    assert int(second["case"]["id"]) == gold_case.pk
    gold_body = reader.get(f"/api/v1/cases/{gold_case.pk}/").json()
    # The reader paints the lesion but misses its first painted slice: a known Dice against the reference.
    painted = study.mask.copy()
    first_slice = int(np.flatnonzero(painted.reshape(painted.shape[0], -1).any(axis=1))[0])
    painted[first_slice] = 0
    values = truth_values(gold_case, study)
    [mask_item] = [item for item in values["items"] if item["label"] == "nodule_mask"]
    mask_item["mask"] = encode_mask(painted)
    gold_saved = save(reader, gold_case.pk, values, role="first_reader")
    gold_row = worklist_row(reader, other_project.slug, gold_case.pk)

    # Nothing the reader sees tells the gold case apart (the leak check of tests/review/test_gold_cases.py).
    for normal, seen in ((first, second), (normal_body, gold_body), (normal_saved, gold_saved), (normal_row, gold_row)):
        assert shape(normal) == shape(seen)
        text = json.dumps(seen).lower()
        assert "gold" not in text and "reference" not in text and "imported" not in text
    gold_annotations = reader.get(f"/api/v1/cases/{gold_case.pk}/annotations/").json()
    assert [a["role"] for a in gold_annotations] == ["first_reader"]
    assert shape(reader.get(f"/api/v1/cases/{normal_id}/annotations/").json()) == shape(gold_annotations)
    assert reader.get(f"/api/v1/cases/{gold_case.pk}/gold/").status_code in (403, 404)
    assert reader.get(f"/api/v1/cases/{gold_case.pk}/reading-feedback/").status_code == 204

    # Scored against the imported mask with the Dice the two masks give.
    reference, mine = truth > 0, painted > 0
    expected = 2 * np.logical_and(reference, mine).sum() / (reference.sum() + mine.sum())
    assert 0.5 < expected < 1.0
    score = GoldScore.objects.get(gold_case=gold, reader=users["annotator"])
    [mask_score] = [label for label in score.labels if label["key"] == "nodule_mask"]
    assert mask_score["dice"] == pytest.approx(expected, abs=1e-6)
    assert score.dice == pytest.approx(expected, abs=1e-6)
    # Measured on what the reference says (its mask), not counted wrong on the labels a SEG does not carry.
    assert [label["key"] for label in score.labels] == ["nodule_mask"]
    assert (score.labels_agreed, score.labels_compared) == (1, 1)
    assert (score.lesions_tp, score.lesions_fp, score.lesions_fn) == (0, 0, 0)
    gold_case.refresh_from_db()
    assert gold_case.status == CaseStatus.AWAITING_FIRST_READ  # a gold case does not move


def test_gold_reference_imports_that_are_refused_store_nothing(
    exported: dict[str, bytes],
    other_project: Project,
    ingested_studies: list[SyntheticStudy],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    MembershipFactory(project=other_project, user=users["annotator"], role=Role.ANNOTATOR)
    manager, reader = client_for(users["manager"]), client_for(users["annotator"])
    slug = other_project.slug
    seg1, seg2 = exported["seg/case_00001.dcm"], exported["seg/case_00002.dcm"]

    # Only managers; an unknown use is a 400 naming the choices.
    before = _stored()
    assert _upload(reader, slug, seg1, use="gold_reference").status_code == 403
    unknown = _upload(manager, slug, seg1, use="truth")
    assert unknown.status_code == 400 and "use" in unknown.content.decode() and "truth" in unknown.content.decode()
    # The same validation as an imported reading: a frame derived from an image outside the series.
    broken = pydicom.dcmread(io.BytesIO(seg1))
    broken.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[
        0
    ].ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    refused = _upload(manager, slug, dataset_bytes(broken), use="gold_reference")
    assert refused.status_code == 400 and "geometry does not fit" in refused.json()["detail"]
    assert _stored() == before

    # A case a reader has submitted a reading of: 409, nothing stored.
    read_case = _case_of(other_project, ingested_studies[0].study_uid)
    read(read_case, users["annotator"], "first_reader", chest_values(read_case))
    before = _stored()
    conflict = _upload(manager, slug, seg1, use="gold_reference")
    assert conflict.status_code == 409 and "submitted readings" in conflict.json()["detail"]
    assert _stored() == before

    # Through the PACS door: the case becomes gold; importing a reference for it again is a 409.
    seg = pydicom.dcmread(io.BytesIO(seg2))
    response = DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL")).store_instances(datasets=[seg])
    assert not response.get("FailedSOPSequence"), response
    source = cast(DicomSource, DicomSourceFactory())
    other_project.import_sources.add(source)
    pacs = {
        "source": source.name,
        "study_instance_uid": seg.StudyInstanceUID,
        "series_instance_uid": seg.SeriesInstanceUID,
        "sop_instance_uid": seg.SOPInstanceUID,
        "use": "gold_reference",
    }
    url = f"/api/v1/projects/{slug}/label-imports/pacs/"
    created = manager.post(url, pacs, content_type="application/json")
    assert created.status_code == 201, created.content
    gold_case = _case_of(other_project, ingested_studies[1].study_uid)
    assert GoldCase.objects.get(case=gold_case).reference_id == created.json()["revision"]
    assert created.json()["provenance"]["source"] == f"pacs:{source.name}"
    before = _stored()
    for again in (
        manager.post(url, pacs, content_type="application/json"),
        _upload(manager, slug, seg2, use="gold_reference"),
    ):
        assert again.status_code == 409 and "already a gold case" in again.json()["detail"]
    assert _stored() == before
    # An import as a reading (the default) of a gold case is no reference and changes nothing about it.
    assert _upload(manager, slug, seg2).json()["gold_case"] is None
    assert GoldCase.objects.get(case=gold_case).reference_id == created.json()["revision"]

    # A label imported earlier as a reading of an unread case may become its reference through the gold API.
    unread = _case_of(other_project, ingested_studies[2].study_uid)
    reading = _upload(manager, slug, exported["seg/case_00003.dcm"]).json()
    assert reading["role"] == "imported" and reading["gold_case"] is None
    marked = manager.post(
        f"/api/v1/cases/{unread.pk}/gold/", {"reference_revision": reading["revision"]}, content_type="application/json"
    )
    assert marked.status_code == 201, marked.content
    assert marked.json()["source"] == "imported" and marked.json()["label_import"] == reading["id"]
