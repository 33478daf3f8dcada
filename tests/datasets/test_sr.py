"""DICOM SR measurement reports (TID 1500, issue 18, item 2): read back with highdicom, each box is a planar
ROI on the image it was drawn on, with the measured diameter, and the region's and the study's answers as
codes of the schema's keys; dciodvfy finds no error."""

from __future__ import annotations

import io
from typing import Any

import highdicom as hd
import numpy as np
import pytest
from django.contrib.auth.models import User

from annotation.models import AnnotationRevision, Case
from config.errors import ApplicationError
from datasets.label_import import labels_import_dicom
from datasets.services import export_create
from datasets.sr import SCHEME
from tests.datasets.conftest import run_export, zip_files
from tests.dciodvfy import assert_valid_dicom


def coded(evaluation: Any) -> str:
    """The code value of a qualitative evaluation's answer (highdicom types .value loosely)."""
    return str(evaluation.value.value)


@pytest.mark.parametrize("deidentify", [False, True], ids=["identified", "deidentified"])
def test_sr_measurements_read_back_by_highdicom_equal_what_was_measured(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User], deidentify: bool
) -> None:
    export = run_export(
        export_create(
            project=adjudicated_cases[0][0].project,
            created_by=users["manager"],
            formats=["dicom_sr"],
            filters={"min_qa_level": "adjudicated"},
            deidentify=deidentify,
            enqueue=False,
        )
    )
    files = zip_files(export)
    for n, (case, revision) in enumerate(adjudicated_cases, start=1):
        name = f"sr/case_{n:05d}.dcm"
        assert_valid_dicom(files[name], name)
        sr = hd.sr.srread(io.BytesIO(files[name]))
        if deidentify:
            assert sr.StudyInstanceUID != case.study.study_instance_uid
        box = next(i for i in revision.items if i["label"] == "nodule_box")
        answers = {i["label"]: i["value"] for i in revision.items if i.get("region") == box["id"]}
        content = sr.content
        assert isinstance(content, hd.sr.MeasurementReport)
        groups = content.get_planar_roi_measurement_groups()
        assert len(groups) == 1
        group = groups[0]
        [diameter] = group.get_measurements()
        assert diameter.name.value == "diameter" and diameter.name.scheme_designator == SCHEME
        assert diameter.value == pytest.approx(answers["diameter"])
        assert diameter.unit.value == "mm"
        evaluations = {e.name.value: coded(e) for e in group.get_qualitative_evaluations()}
        assert evaluations == {
            "nodule_type": answers["nodule_type"],
            "lobe": answers["lobe"],
            "malignancy": str(answers["malignancy"]),
        }
        geometry = box["geometry"]
        x, y, w, h = (float(geometry[k]) for k in ("x", "y", "width", "height"))
        region = group.roi
        assert region is not None
        assert np.allclose(region.value, [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]])
        referenced = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        if not deidentify:
            assert referenced == box["sop_instance_uid"]
        study_groups = content.get_image_measurement_groups()
        study_answers = {e.name.value: coded(e) for g in study_groups for e in g.get_qualitative_evaluations()}
        assert study_answers["nodule_present"] == next(
            i["value"] for i in revision.items if i["label"] == "nodule_present"
        )


def test_sr_needs_boxes_or_polygons_in_the_selected_labels(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User]
) -> None:
    with pytest.raises(ApplicationError, match="dicom_sr holds measurements"):
        export_create(
            project=adjudicated_cases[0][0].project,
            created_by=users["manager"],
            formats=["dicom_sr"],
            filters={"labels": ["nodule_mask"]},
            enqueue=False,
        )


def test_an_sr_of_2d_boxes_imports_back_as_the_same_boxes_and_answers(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User]
) -> None:
    case, revision = adjudicated_cases[0]
    export = run_export(
        export_create(
            project=case.project,
            created_by=users["manager"],
            formats=["dicom_sr"],
            filters={"min_qa_level": "adjudicated"},
            deidentify=False,
            enqueue=False,
        )
    )
    data = zip_files(export)["sr/case_00001.dcm"]
    imported = labels_import_dicom(project=case.project, data=data, imported_by=users["manager"])
    assert imported.annotation.case_id == case.pk and imported.annotation.role == "imported"
    # Everything the SR holds: the box on its image with its answers, and the study's choices (not the mask,
    # nor free text, which the report does not carry).
    carried = [i for i in revision.items if i["label"] not in ("nodule_mask", "comment")]
    assert sorted(imported.items, key=repr) == sorted(carried, key=repr)
