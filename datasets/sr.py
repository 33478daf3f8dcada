"""DICOM SR Measurement Reports (TID 1500) through highdicom: each 2D box or polygon as a planar ROI on its
image with the region's numbers as measurements and its choices and grades as coded qualitative evaluations;
each 3D box as a volumetric ROI (TID 1411) made of one rectangle per slice it spans, each referencing that slice's
image (image coordinates, as the planar ROIs: what TID 1500 readers such as OHIF and dcmqi read), with the same
measurements and evaluations; the study-level choices as one group of qualitative evaluations.

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
