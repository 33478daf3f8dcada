"""DICOM SR Measurement Reports (TID 1500) through highdicom: each 2D box or polygon as a planar ROI on its
image with the region's numbers as measurements and its choices and grades as coded qualitative evaluations;
each 3D box as a volumetric ROI (TID 1411) made of one rectangle per slice it spans, each referencing that slice's
image (image coordinates, as the planar ROIs: what TID 1500 readers such as OHIF and dcmqi read), with the same
measurements and evaluations; the study-level choices as one group of qualitative evaluations.

The reader's drawn measurements (Cornerstone3D's Length, Bidirectional and EllipticalROI tools, stored with
their region: annotation/labels.py) follow their region's ROI group in a TID 1501 group of their own that tracks
the same finding (the region's Tracking Unique Identifier; TID 1410/1411 measurements may not carry coordinates),
as standard TID 300 measurements, each with the SCOORD it was drawn on (image coordinates, on the image it was
drawn on; a 3D box's on the slice it names) and the measurement's id as its tracking identifier: a length as
Length, a bidirectional as its Long axis and Short axis, an ellipse as its Area (the SCOORD an ELLIPSE) and the HU
statistics the browser took as Attenuation Coefficient with their derivation (mean, standard deviation, minimum,
maximum). The millimetres are computed again from the points and the referenced image's Pixel Spacing, as the
SCOORD and the image say (not the stored figures, rounded to 0.01 mm); without a Pixel Spacing the lengths are in
pixels (UCUM ``{pixel}``).

The label schema has no standard codes, so labels and their choices are coded in a private scheme
(``99MEDLBL``, the label or choice key as the code value, its English name as the meaning): readable by any
TID 1500 reader, and mapped back to the schema by key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

SCHEME = "99MEDLBL"
IMAGING_PROCEDURE = Code("363679005", "SCT", "Imaging")
QUALITATIVE_KINDS = {"single_choice", "ordinal", "multiple_choice"}


def _name(entry: dict[str, Any]) -> str:
    name = entry.get("name")
    if isinstance(name, dict):
        return str(name.get("en") or next(iter(name.values()), entry.get("key", "")))
    return str(name or entry.get("key") or entry.get("value"))


def label_code(label: dict[str, Any]) -> Code:
    return Code(str(label["key"]), SCHEME, _name(label)[:64])


def _choices(choices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    flat: dict[str, dict[str, Any]] = {}
    for choice in choices:
        flat[str(choice["key"])] = choice
        flat.update(_choices(choice.get("children", [])))
    return flat


def answer_codes(label: dict[str, Any], value: Any) -> list[Code]:
    """The coded answers of a choice or ordinal label (several for a multiple choice)."""
    if label["kind"] == "ordinal":
        scale = {int(step["value"]): step for step in label.get("scale", [])}
        step = scale.get(int(value), {"value": value})
        return [Code(str(value), SCHEME, _name(step)[:64])]
    choices = _choices(label.get("choices", []))
    values = value if isinstance(value, list) else [value]
    return [Code(str(v), SCHEME, _name(choices.get(str(v), {"key": v}))[:64]) for v in values]


def unit_code(label: dict[str, Any]) -> Code:
    unit = str(label.get("unit") or "")
    if unit == "mm":
        return codes.UCUM.Millimeter
    return Code(unit, "UCUM", unit) if unit else Code("1", "UCUM", "no units")


def _evaluations(labels: dict[str, dict[str, Any]], items: Sequence[dict[str, Any]]) -> list[Any]:
    result = []
    for item in items:
        label = labels.get(item["label"])
        if label is None or label["kind"] not in QUALITATIVE_KINDS or item.get("value") in (None, "", []):
            continue
        for answer in answer_codes(label, item["value"]):
            result.append(hd.sr.QualitativeEvaluation(name=label_code(label), value=answer))
    return result


def _region_graphic(geometry: dict[str, Any]) -> np.ndarray:
    """A closed polyline (first point repeated) in image pixel coordinates (column, row)."""
    if "points" in geometry:
        points = [[float(x), float(y)] for x, y in geometry["points"]]
    else:
        x, y, w, h = (float(geometry[n]) for n in ("x", "y", "width", "height"))
        points = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    return np.asarray([*points, points[0]], dtype=np.float64)


def _image_region(graphic: np.ndarray, image: Dataset) -> hd.sr.ImageRegion:
    return hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=graphic,
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=str(image.SOPClassUID),
            referenced_sop_instance_uid=str(image.SOPInstanceUID),
        ),
    )


PIXEL = Code("{pixel}", "UCUM", "pixel")
SQUARE_PIXEL = Code("{pixel2}", "UCUM", "square pixel")
# The drawn measurement kinds by the codes of their NUM items (what the import reads them back by).
DRAWN_CODES = {
    ("410668003", "SCT"): "length",
    ("103339001", "SCT"): "bidirectional",
    ("103340004", "SCT"): "bidirectional",
    ("42798000", "SCT"): "ellipse",
    ("112031", "DCM"): "ellipse",
}
HU_DERIVATIONS = {
    "mean": codes.SCT.Mean,
    "sd": codes.SCT.StandardDeviation,
    "min": codes.SCT.Minimum,
    "max": codes.SCT.Maximum,
}


def _spacing(image: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm from the image's Pixel Spacing, None when it has none."""
    spacing = image.get("PixelSpacing")
    if not spacing or len(spacing) != 2:
        return None
    return float(spacing[0]), float(spacing[1])


def _distance(ends: Sequence[list[float]], spacing: tuple[float, float] | None) -> float:
    """The length between two points [x, y]: in mm with the (row, column) spacing, else in pixels."""
    (ax, ay), (bx, by) = ends[0], ends[1]
    rows, columns = spacing or (1.0, 1.0)
    return float(np.hypot((ax - bx) * columns, (ay - by) * rows))


def drawn_measurements(
    measurements: Sequence[dict[str, Any]], images: Sequence[Dataset], uid: Any, region_id: str
) -> list[hd.sr.Measurement]:
    """The region's drawn measurements as TID 300 items; ``images``: the image each was drawn on, in order."""
    return [
        item
        for measurement, image in zip(measurements, images, strict=True)
        for item in _drawn(measurement, image, uid, region_id)
    ]


def _drawn(measurement: dict[str, Any], image: Dataset, uid: Any, region_id: str) -> list[hd.sr.Measurement]:
    ident = str(measurement["id"])
    points = [[float(x), float(y)] for x, y in measurement["points"]]
    spacing = _spacing(image)
    millimetres, area_unit = (codes.UCUM.Millimeter, codes.UCUM.SquareMillimeter) if spacing else (PIXEL, SQUARE_PIXEL)
    source = hd.sr.SourceImageForRegion(
        referenced_sop_class_uid=str(image.SOPClassUID),
        referenced_sop_instance_uid=str(image.SOPInstanceUID),
    )
    polyline, ellipse = hd.sr.GraphicTypeValues.POLYLINE, hd.sr.GraphicTypeValues.ELLIPSE

    def item(
        name: Code, value: float, unit: Code, graphic: list[list[float]], kind: Any, part: str, **more: Any
    ) -> hd.sr.Measurement:
        return hd.sr.Measurement(
            name=name,
            value=value,
            unit=unit,
            # The measurement's id, shared by its items (a bidirectional's two axes, an ellipse's area and HU).
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=uid("sr-measurement", region_id, ident, part), identifier=ident[:64]
            ),
            referenced_coordinates=[
                hd.sr.CoordinatesForMeasurement(
                    graphic_type=kind, graphic_data=np.asarray(graphic, dtype=np.float64), source_image=source
                )
            ],
            **more,
        )

    if measurement["kind"] == "length":
        return [item(codes.SCT.Length, _distance(points, spacing), millimetres, points, polyline, "length")]
    if measurement["kind"] == "bidirectional":
        long_axis, short_axis = sorted((points[:2], points[2:]), key=lambda axis: -_distance(axis, spacing))
        return [
            item(codes.SCT.LongAxis, _distance(long_axis, spacing), millimetres, long_axis, polyline, "long"),
            item(codes.SCT.ShortAxis, _distance(short_axis, spacing), millimetres, short_axis, polyline, "short"),
        ]
    if measurement["kind"] != "ellipse":
        return []
    # An ELLIPSE names its major axis first (in image coordinates, as its points are).
    major, minor = sorted((points[:2], points[2:]), key=lambda axis: -_distance(axis, None))
    graphic = [*major, *minor]
    area = float(np.pi * _distance(major, spacing) * _distance(minor, spacing) / 4)
    result = [item(codes.SCT.Area, area, area_unit, graphic, ellipse, "area")]
    hu = measurement.get("hu") or {}
    for name, derivation in HU_DERIVATIONS.items():
        if isinstance(hu.get(name), (int, float)):
            result.append(
                item(
                    codes.DCM.AttenuationCoefficient,
                    float(hu[name]),
                    codes.UCUM.HounsfieldUnit,
                    graphic,
                    ellipse,
                    f"hu-{name}",
                    derivation=derivation,
                )
            )
    return result


def build_measurement_report(
    *,
    sources: Sequence[Dataset],
    labels: dict[str, dict[str, Any]],
    regions: Sequence[dict[str, Any]],
    attributes: dict[str, list[dict[str, Any]]],
    study_items: Sequence[dict[str, Any]],
    observer: str,
    uid: Any,
    series_instance_uid: str,
    sop_instance_uid: str,
    description: str,
) -> hd.sr.Comprehensive3DSR:
    """``sources``: the images the regions are drawn on (as the report references them); ``regions``: box or
    polygon items with ``sop_instance_uid`` already mapped like the sources, or 3D boxes with ``slices``, the
    mapped SOP Instance UIDs of the slices they span in order; ``attributes``: region id -> its
    items; ``uid(*parts)``: a reproducible UID for each tracking identifier."""
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    groups: list[Any] = []
    for region in regions:
        region_id = str(region.get("id", len(groups) + 1))
        label = labels[region["label"]]
        own = attributes.get(region_id, [])
        measurements = [
            hd.sr.Measurement(
                name=label_code(labels[i["label"]]), value=float(i["value"]), unit=unit_code(labels[i["label"]])
            )
            for i in own
            if i["label"] in labels
            and labels[i["label"]]["kind"] == "number"
            and isinstance(i.get("value"), (int, float))
        ]
        tracking = hd.sr.TrackingIdentifier(
            uid=uid("sr-region", region_id), identifier=f"{label['key']} {region_id}"[:64]
        )
        graphic = _region_graphic(region["geometry"])
        common: dict[str, Any] = {
            "tracking_identifier": tracking,
            "finding_type": label_code(label),
            "measurements": measurements or None,
            "qualitative_evaluations": _evaluations(labels, own) or None,
        }
        if "slices" in region:
            # A 3D box: the same rectangle on every slice it spans, first to last.
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    referenced_regions=[_image_region(graphic, by_uid[sop]) for sop in region["slices"]], **common
                )
            )
        else:
            groups.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    referenced_region=_image_region(graphic, by_uid[region["sop_instance_uid"]]), **common
                )
            )
        drawn = region.get("measurements") or []
        if drawn:
            if "slices" in region:
                # A 3D box's measurement lies on the slice it names (counted like the box's z).
                first, slices = int(region["geometry"]["z"]), region["slices"]
                wrong = [m.get("id") for m in drawn if not 0 <= int(m.get("slice", -1)) - first < len(slices)]
                if wrong:
                    # Not a crash of the whole export: the case is left out of the SR with this reason.
                    raise ValueError(f"measurements {wrong} of 3D box {region_id} name no slice of the box")
                on = [by_uid[slices[int(m["slice"]) - first]] for m in drawn]
            else:
                on = [by_uid[region["sop_instance_uid"]]] * len(drawn)
            # TID 1410/1411 measurements are of the group's ROI and may not carry their own coordinates; a
            # drawn one has its own line or ellipse, so the region's drawn measurements form a TID 1501 group
            # of their own, tracking the same finding (the region's Tracking Unique Identifier and label).
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=uid("sr-region", region_id), identifier=f"{label['key']} {region_id}"[:64]
                    ),
                    finding_type=label_code(label),
                    measurements=drawn_measurements(drawn, on, uid, region_id),
                )
            )
    study_evaluations = _evaluations(labels, study_items)
    if study_evaluations:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=uid("sr-study"), identifier="study labels"),
                qualitative_evaluations=study_evaluations,
            )
        )
    context = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            # A one-component person name needs its caret to read as a family name, not a badly formed name.
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=observer if "^" in observer else f"{observer}^"
            ),
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=IMAGING_PROCEDURE,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(sources),
        content=report,
        series_instance_uid=series_instance_uid,
        series_number=902,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer="MedLabel QA",
        is_complete=True,
        is_final=True,
        series_description=description[:64],
    )
    # Declare the private coding scheme, so that a reader of the report knows where its codes come from.
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "MedLabel QA project label schema (label and choice keys)"
    scheme.CodingSchemeResponsibleOrganization = "MedLabel QA"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr
