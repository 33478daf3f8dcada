"""The reader's drawn measurements in the DICOM SR (TID 1500): a Length as a Measurement in millimetres with the
SCOORD it was drawn on, referencing its image; a Bidirectional as its long and short axes; an EllipticalROI as
its area (and the HU statistics the browser took). Read back with highdicom, the figures and coordinates are the
drawn ones on the right SOP instance, dciodvfy finds no error, and importing the SR gives back the measurements."""

from __future__ import annotations

import io
import math
from typing import Any

import highdicom as hd
import numpy as np
import pytest
from django.contrib.auth.models import User
from pydicom.sr.codedict import codes

from annotation.models import AnnotationRevision, Case, LabelSchema, Project
from annotation.services import schema_create_version
from datasets.label_import import labels_import_dicom
from imaging.synthetic import SyntheticStudy
from tests.annotation.conftest import case_series, case_sops, chest_values
from tests.datasets.conftest import adjudicate, run_export, zip_files
from tests.datasets.test_box3d_export import BOX3D, GEOMETRY, exported_slices
from tests.dciodvfy import assert_valid_dicom

# Along one row: 20 columns apart, so the length is 20 column spacings whatever the row spacing.
LENGTH_POINTS = [[12.0, 30.0], [32.0, 30.0]]
LENGTH = {"id": "m1", "kind": "length", "points": LENGTH_POINTS}
BIDIRECTIONAL = {
    "id": "m2",
    "kind": "bidirectional",
    "points": [[20.0, 20.0], [30.0, 28.0], [22.0, 27.0], [27.0, 21.0]],
}
ELLIPSE = {
    "id": "m3",
    "kind": "ellipse",
    "points": [[18.0, 25.0], [34.0, 25.0], [26.0, 21.0], [26.0, 29.0]],
    "hu": {"mean": 35.5, "sd": 12.25, "min": -10.0, "max": 80.0},
}
SLICE = 3  # the 3D box's measurement: on slice 3 (from 0), one of the box's slices 2 to 4


def column_spacing(case: Case) -> float:
    return float(case_series(case).instances.order_by("pk").first().metadata["00280030"]["Value"][1])  # type: ignore[union-attr]


@pytest.fixture
def measured_case(
    reading_project: Project,
    reading_cases: list[Case],
    ingested_studies: list[SyntheticStudy],
    users: dict[str, User],
) -> tuple[Case, AnnotationRevision]:
    """The first case adjudicated with a nodule box carrying a length, a bidirectional and an ellipse."""
    case = reading_cases[0]
    first = chest_values(case, slice_index=4)
    box = next(i for i in first["items"] if i["label"] == "nodule_box")
    box["measurements"] = [LENGTH, BIDIRECTIONAL, ELLIPSE]
    second = chest_values(case, nodule_present="no", box=False)
    return case, adjudicate(case, users, first, second)


@pytest.fixture
def box3d_measured(
    reading_project: Project, reading_cases: list[Case], users: dict[str, User]
) -> tuple[Case, AnnotationRevision]:
    """The first case adjudicated with a 3D box (slices 2 to 4) carrying a length drawn on slice 3."""
    latest = LabelSchema.objects.filter(project=reading_project).order_by("-version").first()
    assert latest is not None
    definition = {**latest.definition, "labels": [*latest.definition["labels"], BOX3D]}
    schema_create_version(project=reading_project, definition=definition, created_by=users["manager"])
    case = reading_cases[0]
    first = chest_values(case, box=False)
    first["items"].append(
        {
            "label": "nodule_volume",
            "id": "v1",
            "series_instance_uid": case_series(case).series_instance_uid,
            "geometry": GEOMETRY,
            "measurements": [{**LENGTH, "slice": SLICE}],
        }
    )
    second = chest_values(case, box=False, nodule_present="no")
    return case, adjudicate(case, users, first, second)


def sr_of(case: Case, users: dict[str, User], deidentify: bool = False) -> tuple[bytes, dict[str, bytes]]:
    from datasets.services import export_create

    export = run_export(
        export_create(
            project=case.project,
            created_by=users["manager"],
            formats=["dicom_sr", "dicom_images"],
            filters={"min_qa_level": "adjudicated"},
            deidentify=deidentify,
            enqueue=False,
        )
    )
    files = zip_files(export)
    return files["sr/case_00001.dcm"], files


def drawn(content: hd.sr.MeasurementReport, group: Any, code: Any) -> list[hd.sr.Measurement]:
    """The measurements named ``code`` of the image measurement groups that track the same finding as ``group``
    (an ROI group's measurements may not carry coordinates of their own: TID 1410)."""
    assert group.tracking_uid
    return [
        m
        for tracked in content.get_image_measurement_groups(tracking_uid=group.tracking_uid)
        for m in tracked.get_measurements()
        if (m.name.value, m.name.scheme_designator) == (code.value, code.scheme_designator)
    ]


def coordinates(measurement: hd.sr.Measurement) -> tuple[np.ndarray, str, str]:
    """The SCOORD's points, its graphic type, and the SOP instance it references."""
    (scoord,) = measurement.referenced_coordinates
    sop = str(scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
    return np.asarray(scoord.value, dtype=np.float64), str(scoord.GraphicType), sop


def test_a_drawn_length_is_a_measurement_in_mm_with_the_scoord_it_was_drawn_on(
    measured_case: tuple[Case, AnnotationRevision], users: dict[str, User]
) -> None:
    case, revision = measured_case
    data, _ = sr_of(case, users)
    assert_valid_dicom(data, "sr with measurements")
    content = hd.sr.srread(io.BytesIO(data)).content
    assert isinstance(content, hd.sr.MeasurementReport)
    (group,) = content.get_planar_roi_measurement_groups()
    box = next(i for i in revision.items if i["label"] == "nodule_box")

    (length,) = drawn(content, group, codes.SCT.Length)
    assert length.unit.value == "mm" and length.unit.scheme_designator == "UCUM"
    assert length.value == pytest.approx(20 * column_spacing(case), abs=1e-6)
    points, graphic, sop = coordinates(length)
    assert graphic == "POLYLINE"
    assert np.allclose(points, LENGTH_POINTS)
    assert sop == box["sop_instance_uid"] == case_sops(case)[4]

    (long_axis,) = drawn(content, group, codes.SCT.LongAxis)
    (short_axis,) = drawn(content, group, codes.SCT.ShortAxis)
    stored = next(m for m in box["measurements"] if m["id"] == "m2")
    assert long_axis.value == pytest.approx(stored["long_mm"], abs=0.006)
    assert short_axis.value == pytest.approx(stored["short_mm"], abs=0.006)
    assert coordinates(long_axis)[2] == coordinates(short_axis)[2] == box["sop_instance_uid"]

    (area,) = drawn(content, group, codes.SCT.Area)
    assert area.unit.value == "mm2"
    stored = next(m for m in box["measurements"] if m["id"] == "m3")
    assert area.value == pytest.approx(stored["area_mm2"], abs=0.01)
    points, graphic, _ = coordinates(area)
    assert graphic == "ELLIPSE" and len(points) == 4
    hu = {m.derivation.meaning.lower(): m.value for m in drawn(content, group, codes.DCM.AttenuationCoefficient)}  # type: ignore[union-attr]
    assert hu == {"mean": 35.5, "standard deviation": 12.25, "minimum": -10.0, "maximum": 80.0}
    # The schema's own number field is there as before.
    assert [m.value for m in group.get_measurements() if m.name.value == "diameter"] == [6.5]


def test_a_length_on_a_3d_box_references_the_slice_it_was_drawn_on(
    box3d_measured: tuple[Case, AnnotationRevision], users: dict[str, User]
) -> None:
    case, _ = box3d_measured
    for deidentify in (False, True):
        data, files = sr_of(case, users, deidentify)
        assert_valid_dicom(data, "3D box sr with a length")
        content = hd.sr.srread(io.BytesIO(data)).content
        assert isinstance(content, hd.sr.MeasurementReport)
        (group,) = content.get_volumetric_roi_measurement_groups()
        (length,) = drawn(content, group, codes.SCT.Length)
        assert length.value == pytest.approx(20 * column_spacing(case), abs=1e-6)
        points, _, sop = coordinates(length)
        assert np.allclose(points, LENGTH_POINTS)
        slices = exported_slices(files)
        assert sop == str(slices[SLICE].SOPInstanceUID)
        assert GEOMETRY["z"] <= SLICE < GEOMETRY["z"] + GEOMETRY["depth"]


def test_the_sr_imports_back_with_the_same_measurements(
    measured_case: tuple[Case, AnnotationRevision], users: dict[str, User]
) -> None:
    case, revision = measured_case
    data, _ = sr_of(case, users)
    imported = labels_import_dicom(project=case.project, data=data, imported_by=users["manager"])
    original = next(i for i in revision.items if i["label"] == "nodule_box")
    back = next(i for i in imported.items if i["label"] == "nodule_box")
    by_id = {m["id"]: m for m in back["measurements"]}
    assert set(by_id) == {"m1", "m2", "m3"}
    for stored in original["measurements"]:
        again = by_id[stored["id"]]
        assert again["kind"] == stored["kind"]
        for name in ("length_mm", "long_mm", "short_mm", "area_mm2", "hu"):
            assert again.get(name) == stored.get(name), name
        if stored["kind"] == "ellipse":
            # The same ellipse: DICOM names its major axis first, so the two axes may come back swapped.
            assert sorted(map(tuple, again["points"])) == sorted(map(tuple, stored["points"]))
        else:
            assert again["points"] == stored["points"]
    assert math.isclose(by_id["m1"]["length_mm"], round(20 * column_spacing(case), 2))


def test_a_3d_box_measurement_imports_back_on_its_slice(
    box3d_measured: tuple[Case, AnnotationRevision], users: dict[str, User]
) -> None:
    case, revision = box3d_measured
    volume = next(i for i in revision.items if i["label"] == "nodule_volume")
    assert volume["measurements"][0]["slice"] == SLICE
    data, _ = sr_of(case, users)
    imported = labels_import_dicom(project=case.project, data=data, imported_by=users["manager"])
    back = next(i for i in imported.items if i["label"] == "nodule_volume")
    assert back["measurements"] == volume["measurements"]
    assert back["geometry"] == volume["geometry"]
