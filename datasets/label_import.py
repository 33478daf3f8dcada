"""Segmentations that already exist (DICOM SEG or RTSTRUCT from a PACS, a viewer or another platform), and
measurement reports (DICOM SR, TID 1500, coded as datasets/sr.py writes them: 2D and 3D boxes, polygons and
their answers) brought into a project as a reading: matched to their source series by reference, placed on the
series' slices in the platform's order, stored as a revision with origin "imported" and a provenance record.

With "use": "gold_reference" the label is stored instead as the case's gold reference (review.gold): one
revision of role "gold_reference", origin "imported", that the new GoldCase points to and the LabelImport row
records, and no imported reading beside it (a second copy of the reference would be one more place for it to
leak from, e.g. into an export of imported readings). The case must be one nobody has read yet (see
review.gold.gold_case_check_unread): otherwise a 409, checked before anything is stored.

Everything is checked before anything is stored: a file that is neither SEG nor RTSTRUCT, one that references
a series the project does not have, or whose frames or contours do not fit the series' images, is a 400 that
says which."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from pydicom.errors import InvalidDicomError

from annotation.labels import LabelError, encode_mask, validate_values
from annotation.models import AnnotationRevision, Case, Project
from annotation.selectors import check_import_source, study_geometry
from annotation.services import annotation_save_imported, current_schema
from config.errors import ApplicationError
from config.messages import render
from config.types import User
from datasets.models import LabelImport
from datasets.rtstruct import rtstruct_masks
from datasets.sr import DRAWN_CODES, HU_DERIVATIONS, SCHEME
from datasets.volumes import GeometryMissing, SeriesLayout, read_dataset, series_layout
from imaging.models import DicomSource, Series
from imaging.services.upstream import retrieve_instance_bytes
from review.gold import GOLD_REFERENCE_ROLE, gold_case_check_unread, gold_case_mark

IMPORTED_ROLE = "imported"
USE_READING = "reading"
USE_GOLD_REFERENCE = "gold_reference"
USES = (USE_READING, USE_GOLD_REFERENCE)


class ImportRefused(ApplicationError):
    """A file that cannot be imported; the message is in the language of the request (gettext), its names,
    UIDs and the file's own words as given."""

    code = "label_import_refused"


def _listed(values: Any) -> str:
    return pgettext("list separator", ", ").join(str(v) for v in values)


def _referenced_series(ds: pydicom.Dataset) -> str:
    if ds.Modality == "SR":
        for study in ds.get("CurrentRequestedProcedureEvidenceSequence") or []:
            for series in study.get("ReferencedSeriesSequence") or []:
                return str(series.SeriesInstanceUID)
        return ""
    if ds.Modality == "SEG":
        refs = ds.get("ReferencedSeriesSequence") or []
        return str(refs[0].SeriesInstanceUID) if refs else ""
    for frame in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for study in frame.get("RTReferencedStudySequence") or []:
            for series in study.get("RTReferencedSeriesSequence") or []:
                return str(series.SeriesInstanceUID)
    return ""


def _segment_values(label: dict[str, Any], names: dict[int, str]) -> dict[int, int]:
    """Number in the file -> segment value of the mask label, by the segment's key (its name in the file)."""
    by_key = {str(s["key"]): int(s["value"]) for s in label.get("segments", [])}
    unknown = sorted(name for name in names.values() if name not in by_key)
    if unknown:
        said = {"names": _listed(repr(n) for n in unknown), "label": repr(label["key"])}
        if by_key:
            raise ImportRefused(
                _("segments %(names)s are not segments of label %(label)s (its segments: %(segments)s)")
                % {**said, "segments": _listed(by_key)}
            )
        raise ImportRefused(_("segments %(names)s are not segments of label %(label)s (it has no segments)") % said)
    return {number: by_key[name] for number, name in names.items()}


def _seg_referenced_images(ds: pydicom.Dataset) -> set[str]:
    """Every image the SEG says it was drawn on: its referenced series' instances and each frame's sources."""
    uids = {
        str(item.ReferencedSOPInstanceUID)
        for series in ds.get("ReferencedSeriesSequence") or []
        for item in series.get("ReferencedInstanceSequence") or []
    }
    for frame in ds.get("PerFrameFunctionalGroupsSequence") or []:
        for derivation in frame.get("DerivationImageSequence") or []:
            uids.update(str(src.ReferencedSOPInstanceUID) for src in derivation.get("SourceImageSequence") or [])
    return uids


def _seg_mask(ds: pydicom.Dataset, layout: SeriesLayout, label: dict[str, Any]) -> np.ndarray:
    seg = hd.seg.Segmentation.from_dataset(ds)
    if (int(seg.Rows), int(seg.Columns)) != (layout.shape[1], layout.shape[2]):
        said: dict[str, Any] = {
            "rows": seg.Rows,
            "columns": seg.Columns,
            "image_rows": layout.shape[1],
            "image_columns": layout.shape[2],
        }
        raise ImportRefused(
            _(
                "the SEG's frames are %(rows)sx%(columns)s pixels and the series' images "
                "%(image_rows)sx%(image_columns)s: the geometry does not fit"
            )
            % said
        )
    uids = [instance.sop_instance_uid for instance in layout.instances]
    referenced = _seg_referenced_images(ds)
    outside = sorted(referenced - set(uids))
    if outside:
        said = {"n": len(outside), "series": layout.series.series_instance_uid, "first": outside[0]}
        raise ImportRefused(
            _(
                "the SEG references %(n)s image(s) that are not in series %(series)s (first: %(first)s): "
                "the geometry does not fit"
            )
            % said
        )
    names = {int(item.SegmentNumber): str(item.SegmentLabel) for item in seg.SegmentSequence}
    values = _segment_values(label, names)
    numbers = sorted(names)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids,
        segment_numbers=numbers,
        combine_segments=False,
        assert_missing_frames_are_empty=True,
    )  # (slices, rows, columns, segments)
    mask = np.zeros(layout.shape, dtype=np.uint8)
    for channel, number in enumerate(numbers):
        mask[pixels[..., channel] > 0] = values[number]
    return mask


def _rtstruct_mask(ds: pydicom.Dataset, layout: SeriesLayout, label: dict[str, Any]) -> np.ndarray:
    images = [read_dataset(instance) for instance in layout.instances]
    try:
        per_roi = rtstruct_masks(ds, images)
    except ValueError as exc:
        raise ImportRefused(_("%(error)s: the geometry does not fit") % {"error": exc}) from exc
    values = _segment_values(label, dict(enumerate(per_roi)))
    mask = np.zeros(layout.shape, dtype=np.uint8)
    for number, roi in enumerate(per_roi.values()):
        mask[roi] = values[number]
    return mask


def _sr_items(ds: pydicom.Dataset, layout: SeriesLayout, labels: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of a TID 1500 measurement report as datasets/sr.py writes them: each planar ROI a 2D box or
    polygon on its image, each volumetric ROI (a rectangle on each of a run of slices) a 3D box, their
    measurements and coded answers the region's attributes, the study group's answers study labels. Codes are
    the schema's keys in the private scheme; a region whose label is not a box or polygon of the schema is
    refused, not dropped."""
    content = hd.sr.Comprehensive3DSR.from_dataset(ds).content
    if not isinstance(content, hd.sr.MeasurementReport):
        raise ImportRefused(_("the SR is not a TID 1500 measurement report"))
    z_of = layout.z_of_sop()
    items: list[dict[str, Any]] = []

    def answers(group: Any, region: str | None) -> None:
        chosen: dict[str, list[str]] = {}
        for evaluation in group.get_qualitative_evaluations():
            key = str(evaluation.name.value)
            if evaluation.name.scheme_designator == SCHEME and key in labels:
                chosen.setdefault(key, []).append(str(evaluation.value.value))
        for measurement in group.get_measurements() if region is not None else []:
            key = str(measurement.name.value)
            if measurement.name.scheme_designator == SCHEME and labels.get(key, {}).get("kind") == "number":
                items.append({"label": key, "region": region, "value": float(measurement.value)})
        for key, values in chosen.items():
            kind = labels[key]["kind"]
            value: Any = values if kind == "multiple_choice" else int(values[0]) if kind == "ordinal" else values[0]
            items.append({"label": key, **({"region": region} if region is not None else {}), "value": value})

    # Region items by their ROI group's Tracking Unique Identifier: the image measurement group of the same
    # finding holds the region's drawn measurements (datasets/sr.py).
    tracked: dict[str, dict[str, Any]] = {}
    groups = [*content.get_planar_roi_measurement_groups(), *content.get_volumetric_roi_measurement_groups()]
    for n, group in enumerate(groups, start=1):
        finding = group.finding_type
        key = str(finding.value) if finding is not None and finding.scheme_designator == SCHEME else ""
        label = labels.get(key)
        if label is None or label["kind"] not in ("box", "polygon"):
            raise ImportRefused(
                _("ROI %(n)s of the SR is not a box or polygon label of the schema (finding %(finding)s)")
                % {"n": n, "finding": repr(key)}
            )
        identifier = str(group.tracking_identifier or "")
        region_id = identifier.removeprefix(f"{key} ").strip() or f"r{n}"
        roi: Any = getattr(group, "roi", None)  # planar: one region; volumetric: one per slice
        rois = roi if isinstance(roi, list) else [roi]
        if not rois or any(roi is None for roi in rois):
            raise ImportRefused(
                _("ROI %(n)s of the SR (%(region)s) has no image region") % {"n": n, "region": region_id}
            )
        sops = [str(r.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for r in rois]
        strangers = [sop for sop in sops if sop not in z_of]
        if strangers:
            raise ImportRefused(
                _("ROI %(n)s of the SR (%(region)s) lies on images not in the series: %(images)s")
                % {"n": n, "region": region_id, "images": _listed(strangers[:3])}
            )
        points = np.asarray(rois[0].value, dtype=np.float64)[:-1]
        (x, y), (right, bottom) = points.min(axis=0), points.max(axis=0)
        rectangle = {"x": float(x), "y": float(y), "width": float(right - x), "height": float(bottom - y)}
        volumetric = isinstance(group, hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations)
        if volumetric != (label["kind"] == "box" and label.get("dimensions", 2) == 3):
            said = {"n": n, "region": region_id, "label": repr(key)}
            raise ImportRefused(
                (
                    _(
                        "ROI %(n)s of the SR (%(region)s) is a volumetric ROI (several slices), "
                        "and label %(label)s is not of that kind"
                    )
                    if volumetric
                    else _(
                        "ROI %(n)s of the SR (%(region)s) is a planar ROI (one image), "
                        "and label %(label)s is not of that kind"
                    )
                )
                % said
            )
        item: dict[str, Any] = {"label": key, "id": region_id}
        if volumetric:
            zs = sorted(z_of[sop] for sop in sops)
            if zs != list(range(zs[0], zs[-1] + 1)):
                raise ImportRefused(
                    _(
                        "ROI %(n)s of the SR (%(region)s) skips slices: a 3D box spans a run of slices, "
                        "these are %(slices)s"
                    )
                    % {"n": n, "region": region_id, "slices": zs}
                )
            item["series_instance_uid"] = layout.series.series_instance_uid
            item["geometry"] = {**rectangle, "z": zs[0], "depth": len(zs)}
        else:
            item["sop_instance_uid"] = sops[0]
            item["geometry"] = rectangle if label["kind"] == "box" else {"points": points.tolist()}
        items.append(item)
        answers(group, region_id)
        if group.tracking_uid:
            tracked[str(group.tracking_uid)] = item
    for study_group in content.get_image_measurement_groups():
        region_item = tracked.get(str(study_group.tracking_uid or ""))
        if region_item is not None:
            region_item["measurements"] = _drawn_measurements(study_group, region_item, z_of)
        else:
            answers(study_group, None)
    if not items:
        raise ImportRefused(_("the SR holds no answers coded with the project's label keys"))
    return items


def _tracking_text(measurement: hd.sr.Measurement) -> str:
    """A measurement's Tracking Identifier (DCM 112039): the drawn measurement's id."""
    for child in getattr(measurement[0], "ContentSequence", []):
        name = child.ConceptNameCodeSequence[0]
        if (name.CodeValue, name.CodingSchemeDesignator) == ("112039", "DCM"):
            return str(child.TextValue)
    return ""


def _drawn_measurements(group: Any, region: dict[str, Any], z_of: dict[str, int]) -> list[dict[str, Any]]:
    """The drawn measurements (Length, Bidirectional, EllipticalROI) of a region's image measurement group, as
    the reader stores them: id, kind, the points drawn (image coordinates) and, on a 3D box, the slice. The
    millimetres are not taken from the file: the label check computes them from the points, as for a drawing."""
    by_id: dict[str, dict[str, Any]] = {}
    hu_names = {(code.value, code.scheme_designator): name for name, code in HU_DERIVATIONS.items()}
    for measurement in group.get_measurements():
        code = (str(measurement.name.value), str(measurement.name.scheme_designator))
        kind = DRAWN_CODES.get(code)
        ident = _tracking_text(measurement)
        coordinates = measurement.referenced_coordinates
        if kind is None or not ident or not coordinates:
            continue
        scoord = coordinates[0]
        sop = str(scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        entry = by_id.setdefault(ident, {"id": ident, "kind": kind, "sop": sop, "parts": {}})
        if entry["kind"] != kind or entry["sop"] != sop:
            raise ImportRefused(
                _("measurement %(id)s of region %(region)s mixes kinds or images")
                % {"id": ident, "region": region["id"]}
            )
        drawn_points = [[float(x), float(y)] for x, y in np.asarray(scoord.value, dtype=np.float64)]
        derivation = measurement.derivation
        if code == ("112031", "DCM") and derivation is not None:
            name = hu_names.get((str(derivation.value), str(derivation.scheme_designator)))
            if name:
                entry.setdefault("hu", {})[name] = float(measurement.value)
        else:
            entry["parts"][code[0]] = drawn_points
    result: list[dict[str, Any]] = []
    for ident, entry in by_id.items():
        parts = entry["parts"]
        points: list[list[float]] | None
        if entry["kind"] == "length":
            points = parts.get("410668003")
        elif entry["kind"] == "bidirectional":
            long_axis, short_axis = parts.get("103339001"), parts.get("103340004")
            points = long_axis + short_axis if long_axis and short_axis else None
        else:
            points = parts.get("42798000")
        if not points:
            raise ImportRefused(
                _("measurement %(id)s of region %(region)s lacks its coordinates")
                % {"id": ident, "region": region["id"]}
            )
        drawn: dict[str, Any] = {"id": ident, "kind": entry["kind"], "points": points}
        if "series_instance_uid" in region:  # a 3D box: the slice the measurement was drawn on
            if entry["sop"] not in z_of:
                raise ImportRefused(
                    _("measurement %(id)s of region %(region)s lies on an image not in the series")
                    % {"id": ident, "region": region["id"]}
                )
            drawn["slice"] = z_of[entry["sop"]]
        elif entry["sop"] != region["sop_instance_uid"]:
            raise ImportRefused(
                _("measurement %(id)s of region %(region)s lies on another image than the region")
                % {"id": ident, "region": region["id"]}
            )
        if len(entry.get("hu", {})) == len(HU_DERIVATIONS):
            drawn["hu"] = entry["hu"]
        result.append(drawn)
    return result


def labels_import_dicom(
    *,
    project: Project,
    data: bytes,
    imported_by: User | None,
    source: str = "upload",
    mask_label: str = "",
    use: str = USE_READING,
) -> AnnotationRevision:
    """Import one DICOM SEG or RTSTRUCT as the "imported" reading of the case of the series it references, or
    (``use="gold_reference"``) as that case's gold reference."""
    if use not in USES:
        raise ImportRefused(_("use must be one of %(uses)s, not %(use)s") % {"uses": _listed(USES), "use": repr(use)})
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, TypeError) as exc:
        raise ImportRefused(_("not a DICOM file: %(error)s") % {"error": exc}) from exc
    modality = str(ds.get("Modality", ""))
    if modality not in ("SEG", "RTSTRUCT", "SR"):
        raise ImportRefused(
            _("only DICOM SEG, RTSTRUCT and SR (TID 1500) can be imported as labels; this file is %(modality)s")
            % {"modality": modality}
            if modality
            else _("only DICOM SEG, RTSTRUCT and SR (TID 1500) can be imported as labels; this file has no modality")
        )
    series_uid = _referenced_series(ds)
    if not series_uid:
        raise ImportRefused(
            _("the %(modality)s names no referenced series, so it cannot be placed on images") % {"modality": modality}
        )
    series = (
        Series.objects.filter(store=project.image_store, series_instance_uid=series_uid).select_related("study").first()
    )
    if series is None:
        said: dict[str, Any] = {"modality": modality, "series": series_uid, "project": repr(project.slug)}
        raise ImportRefused(
            _(
                "the %(modality)s references series %(series)s, which project %(project)s does not have: "
                "ingest that series into the project first"
            )
            % said
        )
    case = (
        Case.objects.filter(project=project, study=series.study)
        .filter(Q(series__isnull=True) | Q(series=series))
        .select_related("project", "study")
        .order_by("pk")
        .first()
    )
    if case is None:
        raise ImportRefused(
            _("project %(project)s has no case for the study of series %(series)s")
            % {"project": repr(project.slug), "series": series_uid}
        )
    if use == USE_GOLD_REFERENCE:
        gold_case_check_unread(case)  # a clear 409 before the file is worked on; checked again under the lock
    schema = current_schema(project)
    masks = [label for label in schema.definition["labels"] if label["kind"] == "mask"]
    label = (
        next((lab for lab in masks if lab["key"] == mask_label), None) if mask_label else (masks[0] if masks else None)
    )
    if modality == "SR":
        label = {}  # an SR names its labels itself
    if label is None:
        said = {"version": schema.version, "label": repr(mask_label)}
        raise ImportRefused(
            _("schema v%(version)s has no mask label %(label)s") % said
            if mask_label
            else _("schema v%(version)s has no mask label") % said
        )
    try:
        layout = series_layout(series)
    except GeometryMissing as exc:
        raise ImportRefused(
            _("no geometry to place the %(modality)s on: %(reason)s")
            % {"modality": modality, "reason": render(exc.message)}
        ) from exc
    try:
        if modality == "SR":
            items = _sr_items(ds, layout, {lab["key"]: lab for lab in schema.definition["labels"]})
        else:
            mask = _seg_mask(ds, layout, label) if modality == "SEG" else _rtstruct_mask(ds, layout, label)
            items = [{"label": label["key"], "series_instance_uid": series_uid, "mask": encode_mask(mask)}]
    except ImportRefused:
        raise
    except (AttributeError, KeyError, IndexError, ValueError, TypeError) as exc:
        # A malformed object (missing sequences, frames that do not decode): the sender's to fix, not a 500.
        said = {"modality": modality, "error": f"{type(exc).__name__}: {exc}"}
        raise ImportRefused(_("the %(modality)s cannot be read: %(error)s") % said) from exc
    try:
        validated = validate_values(schema.definition, {"items": items}, study_geometry(case), complete=False)
    except LabelError as exc:
        said = {"error": exc}
        raise ImportRefused(
            _("the imported labels do not fit the schema: %(error)s") % said
            if modality == "SR"
            else _("the imported mask does not fit the schema: %(error)s") % said
        ) from exc
    provenance = {
        "source": source,
        "modality": modality,
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "referenced_series_instance_uid": series_uid,
        "manufacturer": str(ds.get("Manufacturer", "")),
        "content_label": str(ds.get("ContentLabel", ds.get("StructureSetLabel", ""))),
        "content_creator": str(ds.get("ContentCreatorName", "")),
        "sha256": hashlib.sha256(data).hexdigest(),
        "use": use,
    }
    with transaction.atomic():
        if use == USE_GOLD_REFERENCE:
            # Under the case's lock, before the revision and its mask files are written.
            gold_case_check_unread(Case.objects.select_for_update(of=("self",)).get(pk=case.pk))
        revision = annotation_save_imported(
            case=case,
            role=GOLD_REFERENCE_ROLE if use == USE_GOLD_REFERENCE else IMPORTED_ROLE,
            schema=schema,
            items=validated.items,
            masks=validated.masks,
            model_version=f"{modality} {provenance['sop_instance_uid']}"[:128],
        )
        LabelImport.objects.create(
            project=project, case=case, revision=revision, imported_by=imported_by, provenance=provenance
        )
        if use == USE_GOLD_REFERENCE:
            gold_case_mark(case=case, marked_by=imported_by, reference_revision=revision)
    return revision


def labels_import_from_pacs(
    *,
    project: Project,
    source: DicomSource,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    imported_by: User,
    mask_label: str = "",
    use: str = USE_READING,
) -> AnnotationRevision:
    """Import a SEG or RTSTRUCT that lies in a PACS the project may take data from (its own, or one an
    administrator opened to it), retrieved as stored over WADO-RS."""
    check_import_source(imported_by, project, source)
    data = retrieve_instance_bytes(source, study_instance_uid, series_instance_uid, sop_instance_uid)
    return labels_import_dicom(
        project=project,
        data=data,
        imported_by=imported_by,
        source=f"pacs:{source.name}",
        mask_label=mask_label,
        use=use,
    )
