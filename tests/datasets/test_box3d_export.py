"""3D boxes in the exports (issue 15 item 4 follow-up): a case whose final label has only a 3D box is written to
the DICOM SR as a volumetric ROI (TID 1411, one rectangle per slice, each referencing that slice's image) and to
COCO as one annotation per slice tied by one ``lesion_id``; both reference the exported (de-identified) images, so
highdicom's parser and the exported slices give back the box's slice range and rectangle."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from django.contrib.auth.models import User

from annotation.models import AnnotationRevision, Case, LabelSchema, Project
from annotation.services import schema_create_version
from datasets.label_import import ImportRefused, labels_import_dicom
from datasets.models import LabelImport
from datasets.services import export_create
from datasets.sr import SCHEME
from imaging.models import Instance
from jobs.models import JobStatus
from tests.annotation.conftest import case_series, case_sops, chest_values
from tests.datasets.conftest import adjudicate, run_export, zip_files
from tests.datasets.test_sr import coded
from tests.dciodvfy import assert_valid_dicom

BOX3D = {
    "key": "nodule_volume",
    "name": {"en": "Nodule 3D box", "zh-hans": "结节三维框"},
    "level": "region",
    "kind": "box",
    "dimensions": 3,
}
GEOMETRY = {"x": 10, "y": 12, "z": 2, "width": 20, "height": 16, "depth": 3}


@pytest.fixture
def box3d_adjudicated(
    reading_project: Project, reading_cases: list[Case], users: dict[str, User]
) -> tuple[Case, AnnotationRevision]:
    """The first case adjudicated with a reading whose only region is a 3D box (slices 2 to 4) with its type and
    diameter."""
    latest = LabelSchema.objects.filter(project=reading_project).order_by("-version").first()
    assert latest is not None
    definition = copy.deepcopy(latest.definition)
    definition["labels"].append(BOX3D)
    for label in definition["labels"]:
        if "nodule_box" in label.get("applies_to", []):
            label["applies_to"] = [*label["applies_to"], "nodule_volume"]
    schema_create_version(project=reading_project, definition=definition, created_by=users["manager"])
    case = reading_cases[0]
    series = case_series(case)
    assert (series.number_of_slices or 0) >= GEOMETRY["z"] + GEOMETRY["depth"]
    volume = {
        "label": "nodule_volume",
        "id": "v1",
        "series_instance_uid": series.series_instance_uid,
        "geometry": GEOMETRY,
    }
    first = chest_values(case, box=False)
    first["items"] += [
        volume,
        {"label": "nodule_type", "region": "v1", "value": "solid"},
        {"label": "diameter", "region": "v1", "value": 7.5},
    ]
    second = chest_values(case, box=False, nodule_present="no")
    return case, adjudicate(case, users, first, second)


def export_files(case: Case, users: dict[str, User], formats: list[str], deidentify: bool) -> dict[str, bytes]:
    export = run_export(
        export_create(
            project=case.project,
            created_by=users["manager"],
            formats=formats,
            filters={"min_qa_level": "adjudicated"},
            deidentify=deidentify,
            enqueue=False,
        )
    )
    return zip_files(export)


def exported_slices(files: dict[str, bytes]) -> list[pydicom.Dataset]:
    """The exported images of the case's series, in slice order (their file names count slices from 1)."""
    names = sorted(n for n in files if n.startswith("dicom/case_00001/series_01/"))
    return [pydicom.dcmread(io.BytesIO(files[n])) for n in names]


def rectangle(geometry: dict[str, Any]) -> list[list[float]]:
    x, y, w, h = (float(geometry[k]) for k in ("x", "y", "width", "height"))
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]


@pytest.mark.parametrize("deidentify", [False, True], ids=["identified", "deidentified"])
def test_a_3d_box_is_a_volumetric_roi_in_the_sr_that_reads_back_as_the_same_slices_and_rectangle(
    box3d_adjudicated: tuple[Case, AnnotationRevision], users: dict[str, User], deidentify: bool
) -> None:
    case, _ = box3d_adjudicated
    files = export_files(case, users, ["dicom_sr", "dicom_images"], deidentify)
    name = "sr/case_00001.dcm"
    assert name in files, sorted(files)
    assert_valid_dicom(files[name], name)
    slices = exported_slices(files)
    original = case_series(case).series_instance_uid
    series_uids = {str(ds.SeriesInstanceUID) for ds in slices}
    assert len(series_uids) == 1
    if deidentify:
        assert series_uids != {original}
    z_of = {str(ds.SOPInstanceUID): z for z, ds in enumerate(slices)}

    sr = hd.sr.srread(io.BytesIO(files[name]))
    content = sr.content
    assert isinstance(content, hd.sr.MeasurementReport)
    assert content.get_planar_roi_measurement_groups() == []
    (group,) = content.get_volumetric_roi_measurement_groups()
    assert group.finding_type is not None and group.finding_type.value == "nodule_volume"
    regions = group.roi
    assert isinstance(regions, list) and len(regions) == GEOMETRY["depth"]
    referenced = [r.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID for r in regions]
    # Every slice's image is one of the exported images: the SR and the images share the UID mapping.
    zs = [z_of[uid] for uid in referenced]
    assert zs == list(range(GEOMETRY["z"], GEOMETRY["z"] + GEOMETRY["depth"]))
    for region in regions:
        assert np.allclose(region.value, rectangle(GEOMETRY))
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert {str(s.SeriesInstanceUID) for s in evidence} == series_uids
    [diameter] = group.get_measurements()
    assert diameter.name.value == "diameter" and diameter.name.scheme_designator == SCHEME
    assert diameter.value == pytest.approx(7.5)
    assert {e.name.value: coded(e) for e in group.get_qualitative_evaluations()} == {"nodule_type": "solid"}


@pytest.mark.parametrize("deidentify", [False, True], ids=["identified", "deidentified"])
def test_a_3d_box_is_one_coco_annotation_per_slice_tied_by_one_lesion_id(
    box3d_adjudicated: tuple[Case, AnnotationRevision], users: dict[str, User], deidentify: bool
) -> None:
    case, _ = box3d_adjudicated
    files = export_files(case, users, ["coco", "dicom_images"], deidentify)
    coco = json.loads(files["coco/annotations.json"])
    slices = exported_slices(files)
    categories = {c["name"]: c["id"] for c in coco["categories"]}
    assert "nodule_volume" in categories
    annotations = [a for a in coco["annotations"] if a["category_id"] == categories["nodule_volume"]]
    assert len(annotations) == GEOMETRY["depth"]
    assert {a["lesion_id"] for a in annotations} == {"case_00001/v1"}
    assert [a["slice_index"] for a in annotations] == list(range(GEOMETRY["z"], GEOMETRY["z"] + GEOMETRY["depth"]))
    images = {i["id"]: i for i in coco["images"]}
    for annotation in annotations:
        assert annotation["bbox"] == [10.0, 12.0, 20.0, 16.0]
        assert annotation["attributes"] == {"nodule_type": "solid", "diameter": 7.5}
        image = images[annotation["image_id"]]
        # The PNG is of the slice the annotation is on, and names the exported image's (mapped) UIDs.
        assert image["file_name"] in {n.removeprefix("coco/") for n in files}
        assert image["sop_instance_uid"] == str(slices[annotation["slice_index"]].SOPInstanceUID)
        assert image["series_instance_uid"] == str(slices[0].SeriesInstanceUID)
    assert len({a["image_id"] for a in annotations}) == GEOMETRY["depth"]


def test_a_3d_box_exported_as_sr_and_imported_back_is_the_same_box_with_its_answers(
    box3d_adjudicated: tuple[Case, AnnotationRevision], users: dict[str, User]
) -> None:
    case, revision = box3d_adjudicated
    files = export_files(case, users, ["dicom_sr"], deidentify=False)
    imported = labels_import_dicom(project=case.project, data=files["sr/case_00001.dcm"], imported_by=users["manager"])
    assert imported.annotation.role == "imported" and imported.annotation.case_id == case.pk
    assert LabelImport.objects.get(revision=imported).provenance["modality"] == "SR"

    def regional(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(
            (i for i in items if i["label"] != "nodule_present"), key=lambda i: (i["label"], i.get("region", ""))
        )

    (box,) = [i for i in imported.items if i["label"] == "nodule_volume"]
    assert box["geometry"] == {**GEOMETRY, "x": 10.0, "y": 12.0, "width": 20.0, "height": 16.0}
    assert box["series_instance_uid"] == case_series(case).series_instance_uid
    assert regional(imported.items) == regional(revision.items)


def test_an_sr_whose_volumetric_roi_skips_a_slice_is_refused_and_nothing_is_stored(
    box3d_adjudicated: tuple[Case, AnnotationRevision], users: dict[str, User]
) -> None:
    case, _ = box3d_adjudicated
    files = export_files(case, users, ["dicom_sr"], deidentify=False)
    ds = pydicom.dcmread(io.BytesIO(files["sr/case_00001.dcm"]))
    content = hd.sr.Comprehensive3DSR.from_dataset(ds).content
    assert isinstance(content, hd.sr.MeasurementReport)
    (group,) = content.get_volumetric_roi_measurement_groups()
    regions = group.roi
    assert isinstance(regions, list)
    used = {r.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID for r in regions}
    z_of = {sop: z for z, sop in enumerate(case_sops(case))}
    far = next(sop for sop, z in z_of.items() if z > GEOMETRY["z"] + GEOMETRY["depth"] and sop not in used)
    last = regions[-1].ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID

    def move(items: Any) -> None:  # the box's last rectangle now on a far slice (the content tree only)
        for item in items:
            for ref in item.get("ReferencedSOPSequence", []):
                if ref.ReferencedSOPInstanceUID == last:
                    ref.ReferencedSOPInstanceUID = far
            move(item.get("ContentSequence", []))

    move(ds.ContentSequence)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    before = (AnnotationRevision.objects.count(), LabelImport.objects.count())
    with pytest.raises(ImportRefused, match="skips slices"):
        labels_import_dicom(project=case.project, data=buffer.getvalue(), imported_by=users["manager"])
    assert (AnnotationRevision.objects.count(), LabelImport.objects.count()) == before


def test_a_3d_box_without_slice_order_is_left_out_of_sr_and_coco_for_the_same_reason(
    box3d_adjudicated: tuple[Case, AnnotationRevision], users: dict[str, User]
) -> None:
    """One lookup of a 3D box's series and slice layout serves the SR and COCO writers (they each had their own,
    with different reasons): a series whose images lost their positions leaves the box out of both, saying why
    in the same words."""
    case, _ = box3d_adjudicated
    Instance.objects.filter(series__study_id=case.study_id).update(image_position=None)
    export = run_export(
        export_create(
            project=case.project,
            created_by=users["manager"],
            formats=["dicom_sr", "coco"],
            filters={"min_qa_level": "adjudicated"},
            deidentify=False,
            enqueue=False,
        ),
        expect=JobStatus.PARTIAL,
    )
    reasons = {row["format"]: row["reason"] for row in export.left_out if row["case_id"] == case.pk}
    assert set(reasons) == {"dicom_sr", "coco"}
    assert reasons["dicom_sr"] == reasons["coco"]
    assert reasons["coco"].startswith("3D box v1: no slice order: series ")
    assert "lack position, orientation or pixel spacing" in reasons["coco"]
