"""Writing a snapshot: one zip, case by case (one volume in memory at a time), in a fixed order with fixed
timestamps, so the same snapshot always gives the same bytes.

Layout of the zip:
- ``imagesTr/``, ``labelsTr/``, ``dataset.json``: MONAI / Medical Segmentation Decathlon (NIfTI, RAS affine);
- ``seg/<case>.dcm``: DICOM SEG per case (highdicom), referencing the (de-identified) source series;
- ``rtstruct/<case>.dcm``: RT Structure Set per case (contours of the same mask, slice by slice; see rtstruct.py);
- ``sr/<case>.dcm``: DICOM SR measurement report (TID 1500) per case: boxes and polygons as planar ROIs, 3D boxes
  as volumetric ROIs (a rectangle on each slice), with their measurements and coded answers, and the reader's
  drawn measurements (length, bidirectional, ellipse) with the coordinates they were drawn on (see sr.py);
- ``dicom/<case>/series_NN/NNNN.dcm``: the source images themselves, de-identified with the same profile and
  UID remapping as the SEG, RTSTRUCT and SR, which therefore reference images inside the snapshot;
- ``coco/annotations.json``, ``coco/images/``: COCO for 2D boxes and polygons, and 3D boxes slice by slice (one
  annotation per slice, tied by ``lesion_id``), PNG slices;
- ``labels.csv``, ``labels.json``: study/series/image-level labels, one row per case and label;
- ``raw/<case>.json``, ``raw/masks/``: every reading's revisions, for reader-variability research;
- ``snapshot.json`` (what was asked and chosen, splits, left-out cases), ``provenance.json``,
  ``deid_report.json``, and ``manifest.json`` (SHA-256 and size of every other file).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import highdicom as hd
import numpy as np
from django.contrib.auth.models import User
from django.utils.translation import gettext_noop as N_
from pydicom import Dataset
from pydicom.sr.codedict import codes

from annotation.models import Annotation, AnnotationRevision, Case, LabelSchema, MaskFile
from annotation.services import load_mask
from config.messages import Message, english, is_message, message
from datasets.deid import DICOM_ROOT, Deidentifier, keyed_digest
from datasets.models import Export
from datasets.rtstruct import Roi, build_rtstruct
from datasets.selectors import UID_PATTERN, ProvenanceRows, case_provenance, provenance_rows
from datasets.sources import complete_type_2, derived_frame_of_reference
from datasets.splits import SPLITS, split_patients
from datasets.sr import build_measurement_report
from datasets.volumes import GeometryMissing, SeriesLayout, load_volume, nifti_bytes, read_dataset, series_layout
from imaging.models import Instance, Series
from imaging.pixels import render_frame
from imaging.services.framecache import is_local_file
from jobs.messages import CASE_OF, job_text

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
GEOMETRY_2D_KINDS = {"polygon"}
TABULAR_LEVELS = {"study", "series", "image"}
MASK_FORMATS = {"monai", "dicom_seg", "dicom_rtstruct"}
# RGB display colours of RTSTRUCT ROIs, by ROI number.
ROI_COLOURS = ((255, 0, 0), (0, 170, 0), (0, 90, 255), (255, 160, 0), (170, 0, 255), (0, 200, 200))
Progress = Callable[..., None]

# Why a case is left out of a format, for people: English templates (gettext msgids) stored with their
# parameters beside the English text, and shown in the reader's language by the export API (config/messages.py).
QUALITY_FAILED = N_("series failed data-quality checks: %(detail)s")
BURNED_IN = N_("burned-in annotation: the pixels may show identifying text, so no image is exported")
NO_MASK = N_("the final label has no %(label)s mask")
MASK_SERIES_MISSING = N_("the mask refers to series %(series)s, which is not in the study")
NO_GEOMETRY_MASK = N_("no geometry to place the mask: %(reason)s")
UPSTREAM_PIXELS = N_("series %(series)s lives on an upstream PACS; pixels are exported from the local store")
MASK_SHAPE = N_("mask shape %(mask)s does not match the series (%(series)s)")
SEG_FAILED = N_("DICOM SEG could not be made: %(error)s")
RTSTRUCT_FAILED = N_("RTSTRUCT could not be made: %(error)s")
IMAGES_NOT_WRITTEN = N_("images not written: %(reason)s")
UPSTREAM_FILES = N_("images live on an upstream PACS; files come from the local store")
BOX_SERIES_MISSING = N_("3D box %(box)s refers to a missing series")
BOX_NO_SLICE_ORDER = N_("3D box %(box)s: no slice order: %(reason)s")
NO_REGIONS = N_("the final label has no box (2D or 3D) or polygon")
REGION_IMAGE_MISSING = N_("region %(region)s refers to a missing image")
NO_GEOMETRY_REGIONS = N_("no geometry to place the regions: %(reason)s")
UPSTREAM_SR = N_("images live on an upstream PACS; SR is made from the local store")
REGIONS_OUTSIDE = N_(
    "regions %(regions)s lie on images of another series, or past its %(slices)s slices "
    "(one report references one series)"
)
SR_FAILED = N_("DICOM SR could not be made: %(error)s")
UPSTREAM_PNG = N_("images live on an upstream PACS; PNGs are made from the local store")
MASKS_NOT_WRITTEN = N_("masks not written: %(reason)s")
MASK_VALUES_UNKNOWN = N_("mask values %(values)s are not segments of label %(label)s")
MASK_EMPTY = N_("the mask is empty")


class MaskUnfit(ValueError):
    """A mask the label's segments do not describe, or an empty one; ``message`` for the reader's language."""

    def __init__(self, msgid: str, **params: Any) -> None:
        self.message: Message = message(msgid, **params)
        super().__init__(english(self.message))


def _error(exc: Exception) -> Message | str:
    """An exception as a left-out parameter: its message when it has one, else its own (English) words."""
    return exc.message if isinstance(exc, MaskUnfit) else str(exc)


def dumps(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


class ZipWriter:
    """Entries with a fixed timestamp and mode, in the order written; the manifest grows as they go."""

    def __init__(self, path: str) -> None:
        self.zip = zipfile.ZipFile(path, "w", allowZip64=True)
        self.manifest: dict[str, dict[str, Any]] = {}

    def add(self, name: str, data: bytes, *, compress: bool = True) -> None:
        info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        info.create_system = 3
        self.zip.writestr(info, data, compresslevel=6 if compress else None)
        self.manifest[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    def close(self) -> None:
        self.zip.close()


@dataclass
class BuildResult:
    manifest: dict[str, dict[str, Any]]
    left_out: list[dict[str, Any]]
    deid_report: dict[str, Any]
    split_counts: dict[str, int]
    cases_written: int
    derived: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    case_keys: dict[int, str] = field(default_factory=dict)


def project_key_bytes(export: Export) -> bytes:
    from datasets.services import project_key

    return bytes.fromhex(project_key(export.project))


def _burned_in(series_ids: list[int]) -> dict[int, bool]:
    """Whether Burned In Annotation (0028,0301) is YES on each series (read from its first image's indexed
    header), for many series in one query."""
    firsts = (
        Instance.objects.filter(series_id__in=series_ids)
        .order_by("series_id", "pk")
        .distinct("series_id")
        .values_list("series_id", "metadata")
    )
    burned = dict.fromkeys(series_ids, False)
    for series_id, header in firsts:
        value = ((header or {}).get("00280301") or {}).get("Value") or [""]
        burned[series_id] = str(value[0]).upper() == "YES"
    return burned


def is_2d_geometry(label: dict[str, Any]) -> bool:
    return (label["kind"] == "box" and label.get("dimensions", 2) == 2) or label["kind"] in GEOMETRY_2D_KINDS


def is_3d_box(label: dict[str, Any]) -> bool:
    return label["kind"] == "box" and label.get("dimensions", 2) == 3


def is_box_or_polygon(label: dict[str, Any]) -> bool:
    """Labels the SR and COCO exports carry: 2D boxes and polygons, and 3D boxes (slice by slice)."""
    return is_2d_geometry(label) or is_3d_box(label)


class SnapshotBuilder:
    def __init__(self, export: Export, path: str, progress: Progress | None = None) -> None:
        self.export = export
        self.progress = progress
        self.out = ZipWriter(path)
        self.key = project_key_bytes(export)
        self.deid = Deidentifier(key=self.key, uid_salt=export.uid_salt)
        self.on = export.deidentify
        schema = LabelSchema.objects.get(project=export.project, version=export.schema_version)
        self.labels: dict[str, dict[str, Any]] = {label["key"]: label for label in schema.definition["labels"]}
        self.schema = schema.definition
        wanted = export.filters.get("labels") or []
        self.label_filter = set(wanted) if wanted else set(self.labels)
        self.mask_label = export.filters.get("mask_label") or next(
            (k for k, lab in self.labels.items() if lab["kind"] == "mask" and k in self.label_filter), None
        )
        self.left_out: list[dict[str, Any]] = []
        # Values the export had to supply for DICOM objects: derived Frame of Reference UIDs, and the Type 2
        # attributes written empty, per case (recorded in snapshot.json).
        self.derived: list[dict[str, Any]] = []
        self.type_2_empty: dict[str, list[str]] = {}
        self._sources: tuple[tuple[str, int], list[Dataset]] | None = None
        self.dropped_text: set[str] = set()
        self._readers: dict[int, str] = {}
        self.monai: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
        self.coco_images: list[dict[str, Any]] = []
        self.coco_annotations: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.provenance: dict[str, Any] = {}
        self.raw_masks_written: set[str] = set()
        self.modalities: set[str] = set()
        # The studies' series and the series' burned-in flags, read for every case of the snapshot at once
        # (they were two to three queries per case; issue 19).
        self._study_series: dict[int, list[Series]] = {}
        self._burned: dict[int, bool] | None = None
        self._provenance_rows: ProvenanceRows | None = None

    # --- identifiers ----------------------------------------------------------------------------------

    def uid(self, value: str) -> str:
        return self.deid.uid(value) if self.on and value else value

    def reader_id(self, user_id: int) -> str:
        if user_id not in self._readers:
            if self.on:
                self._readers[user_id] = "R-" + keyed_digest(self.key, "reader", str(user_id)).hex()[:10].upper()
            else:
                self._readers[user_id] = User.objects.get(pk=user_id).username
        return self._readers[user_id]

    def clean(self, text: str) -> str:
        """A reason for people, with every UID in it replaced by the snapshot's."""
        return UID_PATTERN.sub(lambda m: self.uid(m.group(0)), text) if self.on else text

    def _cleaned(self, value: Any) -> Any:
        if is_message(value):
            return message(value["msgid"], **{k: self._cleaned(v) for k, v in (value.get("params") or {}).items()})
        return self.clean(value) if isinstance(value, str) else value

    def leave_out(self, key: str, case_id: int, fmt: str, reason: Message) -> None:
        """Record that the case is not in ``fmt``: the reason in English (``reason``, as the snapshot says it) and
        as a message (``message``), which the export API shows in the reader's language."""
        cleaned = self._cleaned(reason)
        self.left_out.append(
            {"case": key, "case_id": case_id, "format": fmt, "reason": english(cleaned), "message": cleaned}
        )

    def out_item(self, item: dict[str, Any], masks: dict[str, str]) -> dict[str, Any] | None:
        label = self.labels.get(item["label"])
        if self.on and label is not None and label["kind"] == "text":
            self.dropped_text.add(item["label"])
            return None
        result = dict(item)
        for name in ("series_instance_uid", "sop_instance_uid"):
            if name in result:
                result[name] = self.uid(result[name])
        ref = result.get("mask")
        if isinstance(ref, dict):
            result["mask"] = {k: v for k, v in ref.items() if k != "sha256"}
            if ref.get("sha256") in masks:
                result["mask"]["file"] = masks[ref["sha256"]]
        return result

    # --- the build ------------------------------------------------------------------------------------

    def run(self) -> BuildResult:
        export = self.export
        selection = sorted(export.selection, key=lambda row: row["case"])
        cases = {c.pk: c for c in Case.objects.filter(pk__in=[r["case"] for r in selection]).select_related("study")}
        revisions = {
            r.pk: r
            for r in AnnotationRevision.objects.filter(pk__in=[r["revision"] for r in selection])
            .select_related("schema")
            .prefetch_related("masks")
        }
        keys = {row["case"]: f"case_{index:05d}" for index, row in enumerate(selection, start=1)}
        self._provenance_rows = provenance_rows(list(cases), export.created_at)
        for series in Series.objects.filter(study_id__in={case.study_id for case in cases.values()}):
            self._study_series.setdefault(series.study_id, []).append(series)
        patient_of: dict[int, str] = {}
        strata: dict[str, str | None] = {}
        stratify_by = export.split.get("stratify_by")
        for row in selection:
            study = cases[row["case"]].study
            original = study.patient_id or f"study:{study.study_instance_uid}"
            patient = self.deid.pseudonym(original) if self.on else original
            patient_of[row["case"]] = patient
            if patient not in strata:
                value = None
                if stratify_by:
                    found = [i.get("value") for i in revisions[row["revision"]].items if i["label"] == stratify_by]
                    value = json.dumps(found[0], sort_keys=True) if found else "(none)"
                strata[patient] = value
        fractions = {name: float(export.split.get(name, 0.0)) for name in SPLITS}
        split_of_patient = split_patients(strata, fractions, int(export.split.get("seed", 0)))
        split_counts = {name: 0 for name in SPLITS}

        for done, row in enumerate(selection, start=1):
            case = cases[row["case"]]
            key = keys[case.pk]
            split = split_of_patient[patient_of[case.pk]]
            self.case(case, key, revisions[row["revision"]], row["qa_level"], patient_of[case.pk], split)
            if not any(out["case"] == key and out["format"] == "all" for out in self.left_out):
                split_counts[split] += 1
            if self.progress is not None:
                self.progress(
                    done=done, total=len(selection), message=job_text(CASE_OF, done=done, total=len(selection))
                )

        written = self.finish(selection, keys, patient_of, split_of_patient, split_counts)
        return BuildResult(
            manifest={name: entry for name, entry in sorted(self.out.manifest.items()) if name != "manifest.json"},
            left_out=self.left_out,
            deid_report=self.deid_report(),
            split_counts=split_counts,
            cases_written=written,
            derived=self.derived,
            files=len(self.out.manifest),
            case_keys=keys,
        )

    def deid_report(self) -> dict[str, Any]:
        if not self.on:
            return {"deidentified": False}
        report = self.deid.report()
        report["deidentified"] = True
        report["text_labels_dropped"] = sorted(self.dropped_text)
        report["identifiers"] = (
            "patient ids and names replaced by HMAC pseudonyms of the project key; dates shifted back per patient; "
            "UIDs remapped within the snapshot; reader accounts replaced by pseudonymous reader ids"
        )
        return report

    def case(self, case: Case, key: str, final: AnnotationRevision, qa_level: str, patient: str, split: str) -> None:
        formats = set(self.export.formats)
        provenance = case_provenance(
            case,
            final,
            as_of=self.export.created_at,
            reader_id=self.reader_id,
            uid=self.uid,
            qa_level=qa_level,
            rows=self._provenance_rows,
        )
        self.provenance[key] = provenance
        study_series = self._study_series.get(case.study_id)
        if study_series is None:
            study_series = list(Series.objects.filter(study_id=case.study_id))
        case_series_list = [s for s in study_series if case.series_id is None or s.pk == case.series_id]
        bad = [s for s in case_series_list if s.is_flagged]
        if self.export.filters.get("exclude_quality_warnings"):
            bad += [s for s in case_series_list if s.quality == Series.Quality.WARNING]
        if bad:
            detail = "; ".join(
                f"{s.series_instance_uid} ({s.quality}: "
                + ", ".join(str(c.get("message", "")) for c in s.quality_checks if c.get("status") != "ok")
                + ")"
                for s in bad
            )
            self.leave_out(key, case.pk, "all", message(QUALITY_FAILED, detail=detail))
            return
        pixel_formats = formats & {"monai", "coco", "dicom_images"}
        if self.on and pixel_formats:
            if self._burned is None:
                self._burned = _burned_in([s.pk for ss in self._study_series.values() for s in ss])
            missing = [s.pk for s in case_series_list if s.pk not in self._burned]
            if missing:
                self._burned.update(_burned_in(missing))
            burned = [s for s in case_series_list if self._burned[s.pk]]
            for s in burned:
                self.deid.burned_in[self.uid(s.series_instance_uid)] = (
                    "Burned In Annotation is YES: pixels may show identifying text"
                )
            if burned:
                for fmt in sorted(pixel_formats):
                    self.leave_out(key, case.pk, fmt, message(BURNED_IN))
                formats = formats - pixel_formats
        items = [i for i in final.items if i["label"] in self.label_filter]
        masks_by_sha = {m.sha256: m for m in final.masks.all()}
        mask_item = next((i for i in items if i["label"] == self.mask_label and isinstance(i.get("mask"), dict)), None)
        common = {"case": key, "patient": patient, "split": split, "qa_level": qa_level}
        if formats & MASK_FORMATS:
            self.masks(case, key, items, mask_item, masks_by_sha, common, formats, study_series)
        if "coco" in formats:
            self.coco(case, key, items, common)
        if "dicom_sr" in formats:
            self.sr(case, key, final, items)
        if "dicom_images" in formats:
            self.images(case, key, case_series_list)
        if formats & {"csv", "json"}:
            self.tabular(case, key, items, provenance, common)
        if "raw" in formats:
            self.raw(case, key, common)

    # --- masks: MONAI and DICOM SEG ---------------------------------------------------------------------

    def masks(
        self,
        case: Case,
        key: str,
        items: list[dict[str, Any]],
        mask_item: dict[str, Any] | None,
        masks_by_sha: dict[str, MaskFile],
        common: dict[str, Any],
        formats: set[str],
        study_series: list[Series],
    ) -> None:
        wanted = sorted(formats & MASK_FORMATS)

        def skip(reason: Message) -> None:
            for fmt in wanted:
                self.leave_out(key, case.pk, fmt, reason)

        if mask_item is None or mask_item["mask"].get("sha256") not in masks_by_sha:
            skip(message(NO_MASK, label=str(self.mask_label)))
            return
        series = next((s for s in study_series if s.series_instance_uid == mask_item["series_instance_uid"]), None)
        if series is None:
            skip(message(MASK_SERIES_MISSING, series=mask_item["series_instance_uid"]))
            return
        try:
            layout = series_layout(series)
        except GeometryMissing as exc:
            skip(message(NO_GEOMETRY_MASK, reason=exc.message))
            return
        if not layout.has_local_files():
            skip(message(UPSTREAM_PIXELS, series=series.series_instance_uid))
            return
        mask = load_mask(masks_by_sha[mask_item["mask"]["sha256"]])
        if tuple(mask.shape) != layout.shape:
            skip(message(MASK_SHAPE, mask=str(list(mask.shape)), series=str(list(layout.shape))))
            return
        if "monai" in formats:
            self.modalities.add(series.modality or "CT")
            volume = load_volume(layout)
            image_name, label_name = f"imagesTr/{key}.nii.gz", f"labelsTr/{key}.nii.gz"
            self.out.add(image_name, nifti_bytes(volume, layout.affine_ras), compress=False)
            del volume
            self.out.add(label_name, nifti_bytes(mask.astype(np.uint8, copy=False), layout.affine_ras), compress=False)
            self.monai[common["split"]].append(
                {
                    **common,
                    "image": image_name,
                    "label": label_name,
                    "series_instance_uid": self.uid(series.series_instance_uid),
                    "study_instance_uid": self.uid(case.study.study_instance_uid),
                }
            )
        if not formats & {"dicom_seg", "dicom_rtstruct"}:
            return
        sources = self.source_datasets(case, key, layout)
        if "dicom_seg" in formats:
            try:
                self.out.add(f"seg/{key}.dcm", self.seg_bytes(key, sources, mask))
            except Exception as exc:  # highdicom refuses what it cannot encode: say so per case
                self.leave_out(key, case.pk, "dicom_seg", message(SEG_FAILED, error=_error(exc)))
        if "dicom_rtstruct" in formats:
            try:
                self.out.add(f"rtstruct/{key}.dcm", self.rtstruct_bytes(key, sources, mask))
            except ValueError as exc:
                self.leave_out(key, case.pk, "dicom_rtstruct", message(RTSTRUCT_FAILED, error=_error(exc)))

    def _segments(self, mask: np.ndarray) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """The mask label's segments by value, and value -> segment (ROI) number; ValueError for a mask the
        segments do not describe, or an empty one."""
        label = self.labels[str(self.mask_label)]
        segments = sorted(label.get("segments", []), key=lambda s: s["value"])
        number_of = {int(s["value"]): n for n, s in enumerate(segments, start=1)}
        present = {int(v) for v in np.unique(mask)} - {0}
        unknown = sorted(present - set(number_of))
        if unknown:
            raise MaskUnfit(MASK_VALUES_UNKNOWN, values=str(unknown), label=str(label["key"]))
        if not present:
            raise MaskUnfit(MASK_EMPTY)
        return segments, number_of

    def rtstruct_bytes(self, key: str, sources: list[Dataset], mask: np.ndarray) -> bytes:
        label = self.labels[str(self.mask_label)]
        segments, number_of = self._segments(mask)
        rois = [
            Roi(
                number=number_of[int(s["value"])],
                name=str(s["key"]),
                colour=ROI_COLOURS[(number_of[int(s["value"])] - 1) % len(ROI_COLOURS)],
                mask=mask == int(s["value"]),
            )
            for s in segments
            if (mask == int(s["value"])).any()
        ]
        ds = build_rtstruct(
            sources=sources,
            rois=rois,
            series_instance_uid=self.deid.issue_uid(key, "rtstruct-series"),
            sop_instance_uid=self.deid.issue_uid(key, "rtstruct-instance"),
            label=str(label["key"]),
            description=f"{label['key']} export v{self.export.version}",
            manufacturer="MedLabel QA",
            date=str(sources[0].get("StudyDate", "")) or "19000101",
        )
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()

    def seg_bytes(self, key: str, sources: list[Dataset], mask: np.ndarray) -> bytes:
        label = self.labels[str(self.mask_label)]
        segments, number_of = self._segments(mask)
        lut = np.zeros(max(number_of) + 1 if number_of else 1, dtype=np.uint8)
        for value, number in number_of.items():
            lut[value] = number
        labelmap = lut[mask]
        algorithm = "MANUAL"
        descriptions = [
            hd.seg.SegmentDescription(
                segment_number=number_of[int(s["value"])],
                segment_label=str(s["key"])[:64],
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.MorphologicallyAbnormalStructure,
                algorithm_type=algorithm,
            )
            for s in segments
        ]
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=labelmap,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=self.deid.issue_uid(key, "seg-series"),
            series_number=900,
            sop_instance_uid=self.deid.issue_uid(key, "seg-instance"),
            instance_number=1,
            manufacturer="MedLabel QA",
            manufacturer_model_name="dataset export",
            software_versions="1",
            device_serial_number="0",
            series_description=f"{label['key']} export v{self.export.version}"[:64],
        )
        self._freeze(seg, key, str(sources[0].get("StudyDate", "")) or "19000101")
        buffer = io.BytesIO()
        seg.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()

    def images(self, case: Case, key: str, series_list: list[Series]) -> None:
        """The case's source images themselves, prepared exactly as the SEG, RTSTRUCT and SR of the snapshot
        reference them (same de-identification, same UID remapping, same derived Frame of Reference), so that
        those objects point at images inside the snapshot."""
        for n, series in enumerate(sorted(series_list, key=lambda s: (s.series_number or 0, s.series_instance_uid))):
            try:
                layout = series_layout(series)
            except GeometryMissing as exc:
                self.leave_out(key, case.pk, "dicom_images", message(IMAGES_NOT_WRITTEN, reason=exc.message))
                continue
            if not layout.has_local_files():
                self.leave_out(key, case.pk, "dicom_images", message(UPSTREAM_FILES))
                continue
            for z, ds in enumerate(self.source_datasets(case, key, layout)):
                buffer = io.BytesIO()
                ds.save_as(buffer, enforce_file_format=True)
                self.out.add(f"dicom/{key}/series_{n + 1:02d}/{z + 1:04d}.dcm", buffer.getvalue())

    def source_datasets(self, case: Case, key: str, layout: SeriesLayout) -> list[Dataset]:
        """The series' images as the export's DICOM objects reference them: Type 2 attributes that real files
        leave out added empty (the standard allows it; highdicom copies them), a Frame of Reference derived
        for a series without one (recorded), then de-identified when the snapshot is. The last series read is
        kept, so the SEG, RTSTRUCT, SR and the images of one case read its files once."""
        cached = self._sources
        if cached is not None and cached[0] == (key, layout.series.pk):
            return cached[1]
        sources = self._read_sources(case, key, layout)
        self._sources = ((key, layout.series.pk), sources)
        return sources

    def _read_sources(self, case: Case, key: str, layout: SeriesLayout) -> list[Dataset]:
        patient_id = case.study.patient_id or f"study:{case.study.study_instance_uid}"
        series_uid = layout.series.series_instance_uid
        frames = {str(i.metadata.get("00200052", {}).get("Value", [""])[0] or "") for i in layout.instances}
        frame = next(iter(sorted(frames - {""})), "") or derived_frame_of_reference(self.key, series_uid)
        derived = "" in frames
        sources: list[Dataset] = []
        empty: set[str] = set()
        for instance in layout.instances:
            ds = read_dataset(instance)
            empty.update(complete_type_2(ds))
            if not ds.get("FrameOfReferenceUID"):
                ds.FrameOfReferenceUID = frame
            if self.on:
                self.deid.dataset(ds, patient_id=patient_id)
            sources.append(ds)
        if empty:
            self.type_2_empty[key] = sorted(empty)
        if derived and not any(row["case"] == key for row in self.derived):
            self.derived.append(
                {
                    "case": key,
                    "series_instance_uid": self.uid(series_uid),
                    "attribute": "FrameOfReferenceUID",
                    "value": str(sources[0].FrameOfReferenceUID),
                    "reason": (
                        "the series' images have no Frame of Reference UID; one was derived for the whole series "
                        "(the same in every export of the project) so that the labels written as DICOM name the "
                        "coordinate system of the images' positions"
                        if frames == {""}
                        else "some of the series' images have no Frame of Reference UID; they were given the "
                        "one the others carry"
                    ),
                }
            )
        return sources

    def _freeze(self, seg: Dataset, key: str, date: str, keep: set[str] | None = None) -> None:
        """Replace what highdicom draws at random or from the clock (dimension organisation UIDs, creation
        date and time) with values fixed for the snapshot, so a rebuild writes the same bytes."""
        fresh: dict[str, str] = {}
        keep = self._source_uids(seg) | (keep or set())

        def walk(ds: Dataset) -> None:
            for elem in ds:
                if elem.VR == "SQ":
                    for item in elem.value:
                        walk(item)
                elif not elem.value:
                    continue
                elif elem.VR == "UI" and elem.VM == 1:
                    value = str(elem.value)
                    if not value.startswith(DICOM_ROOT) and not self.deid.issued(value) and value not in keep:
                        if value not in fresh:
                            fresh[value] = self.deid.issue_uid(key, "seg-fixed", str(len(fresh)))
                        elem.value = fresh[value]
                elif elem.VR == "DA" and elem.keyword not in ("StudyDate", "PatientBirthDate"):
                    elem.value = date
                elif elem.VR == "TM" and elem.keyword not in ("StudyTime", "PatientBirthTime"):
                    elem.value = "000000"
                elif elem.VR == "DT":
                    elem.value = date + "000000"

        walk(seg)

    def _source_uids(self, seg: Dataset) -> set[str]:
        uids = {str(seg.get("StudyInstanceUID", "")), str(seg.get("FrameOfReferenceUID", ""))}
        for ref in seg.get("ReferencedSeriesSequence", []):
            uids.add(str(ref.SeriesInstanceUID))
            uids.update(str(i.ReferencedSOPInstanceUID) for i in ref.get("ReferencedInstanceSequence", []))
        return uids

    # --- DICOM SR (TID 1500) -----------------------------------------------------------------------------

    def _boxes_3d(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            i
            for i in items
            if i["label"] in self.labels
            and is_3d_box(self.labels[i["label"]])
            and "series_instance_uid" in i
            and isinstance(i.get("geometry"), dict)
        ]

    def _box_layout(self, case: Case, box: dict[str, Any]) -> SeriesLayout | Message:
        """The slice layout of the series a 3D box is drawn in, or why there is none (the reason to leave the
        box's case out of a format with). One lookup for the SR and COCO writers."""
        study_series = self._study_series.get(case.study_id)
        if study_series is None:
            study_series = list(Series.objects.filter(study_id=case.study_id))
        series = next((s for s in study_series if s.series_instance_uid == box["series_instance_uid"]), None)
        if series is None:
            return message(BOX_SERIES_MISSING, box=str(box.get("id")))
        try:
            return series_layout(series)
        except GeometryMissing as exc:
            return message(BOX_NO_SLICE_ORDER, box=str(box.get("id")), reason=exc.message)

    def sr(self, case: Case, key: str, final: AnnotationRevision, items: list[dict[str, Any]]) -> None:
        regions = [
            i
            for i in items
            if i["label"] in self.labels and is_2d_geometry(self.labels[i["label"]]) and "sop_instance_uid" in i
        ]
        boxes = self._boxes_3d(items)
        if not regions and not boxes:
            self.leave_out(key, case.pk, "dicom_sr", message(NO_REGIONS))
            return
        # One report references one series: the first region's (its layout read once, for every region).
        if regions:
            instance = (
                Instance.objects.filter(series__study_id=case.study_id, sop_instance_uid=regions[0]["sop_instance_uid"])
                .select_related("series")
                .first()
            )
            if instance is None:
                self.leave_out(
                    key, case.pk, "dicom_sr", message(REGION_IMAGE_MISSING, region=str(regions[0].get("id")))
                )
                return
            try:
                layout = series_layout(instance.series)
            except GeometryMissing as exc:
                self.leave_out(key, case.pk, "dicom_sr", message(NO_GEOMETRY_REGIONS, reason=exc.message))
                return
        else:
            placed = self._box_layout(case, boxes[0])
            if not isinstance(placed, SeriesLayout):
                self.leave_out(key, case.pk, "dicom_sr", placed)
                return
            layout = placed
        series = layout.series
        if not layout.has_local_files():
            self.leave_out(key, case.pk, "dicom_sr", message(UPSTREAM_SR))
            return
        in_series = {i.sop_instance_uid for i in layout.instances}
        outside = [r for r in regions if r["sop_instance_uid"] not in in_series] + [
            b
            for b in boxes
            if b["series_instance_uid"] != series.series_instance_uid
            or int(b["geometry"]["z"]) + int(b["geometry"]["depth"]) > len(layout.instances)
        ]
        if outside:
            self.leave_out(
                key,
                case.pk,
                "dicom_sr",
                message(REGIONS_OUTSIDE, regions=str([r.get("id") for r in outside]), slices=len(layout.instances)),
            )
            return
        # A 3D box's slices, as the report references them: the images of slices z to z + depth - 1.
        slices = {
            str(b.get("id")): [
                self.uid(layout.instances[z].sop_instance_uid)
                for z in range(int(b["geometry"]["z"]), int(b["geometry"]["z"]) + int(b["geometry"]["depth"]))
            ]
            for b in boxes
        }
        sources = self.source_datasets(case, key, layout)
        wanted = {self.uid(r["sop_instance_uid"]) for r in regions} | {u for uids in slices.values() for u in uids}
        evidence = [ds for ds in sources if str(ds.SOPInstanceUID) in wanted]
        attributes: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if "region" in item:
                attributes.setdefault(str(item["region"]), []).append(item)
        study_items = [i for i in items if self.labels.get(i["label"], {}).get("level") == "study"]
        reader = final.annotation.reader_id
        try:
            report = build_measurement_report(
                sources=evidence,
                labels=self.labels,
                regions=[{**r, "sop_instance_uid": self.uid(r["sop_instance_uid"])} for r in regions]
                + [{**b, "slices": slices[str(b.get("id"))]} for b in boxes],
                attributes=attributes,
                study_items=study_items,
                observer=self.reader_id(reader) if reader else "MedLabel QA",
                uid=lambda *parts: self.deid.issue_uid(key, *parts),
                series_instance_uid=self.deid.issue_uid(key, "sr-series"),
                sop_instance_uid=self.deid.issue_uid(key, "sr-instance"),
                description=f"measurements export v{self.export.version}",
            )
        except (ValueError, TypeError) as exc:
            self.leave_out(key, case.pk, "dicom_sr", message(SR_FAILED, error=str(exc)))
            return
        source_uids = {
            str(ds.get(name, "")) for ds in sources for name in ("SOPInstanceUID", "SeriesInstanceUID", "SOPClassUID")
        }
        self._freeze(report, key, str(sources[0].get("StudyDate", "")) or "19000101", keep=source_uids)
        buffer = io.BytesIO()
        report.save_as(buffer, enforce_file_format=True)
        self.out.add(f"sr/{key}.dcm", buffer.getvalue())

    # --- COCO ---------------------------------------------------------------------------------------------

    def coco(self, case: Case, key: str, items: list[dict[str, Any]], common: dict[str, Any]) -> None:
        """One COCO annotation per region on its image; a 3D box is 2D by COCO's nature, so it becomes one
        annotation per slice it spans, on each slice's image, all with the box's id as ``lesion_id`` (the same
        lesion, as a track of boxes) and ``slice_index`` (from 0, in the series' slice order)."""
        regions = [
            i
            for i in items
            if i["label"] in self.labels and is_2d_geometry(self.labels[i["label"]]) and "sop_instance_uid" in i
        ]
        boxes = self._boxes_3d(items)
        if not regions and not boxes:
            return
        attributes: dict[str, dict[str, Any]] = {}
        for item in items:
            if "region" in item:
                label = self.labels.get(item["label"])
                if label is not None and not (self.on and label["kind"] == "text"):
                    attributes.setdefault(item["region"], {})[item["label"]] = item.get("value")
        instances = {
            i.sop_instance_uid: i
            for i in Instance.objects.filter(
                series__study_id=case.study_id, sop_instance_uid__in={r["sop_instance_uid"] for r in regions}
            ).select_related("series")
        }
        # (region, its image or None when missing, frame, the 2D geometry on that image, extra fields)
        placed: list[tuple[dict[str, Any], Instance | None, int, dict[str, Any], dict[str, Any]]] = [
            (r, instances.get(r["sop_instance_uid"]), int(r.get("frame", 1)), r["geometry"], {}) for r in regions
        ]
        for box in boxes:
            layout = self._box_layout(case, box)
            if not isinstance(layout, SeriesLayout):
                self.leave_out(key, case.pk, "coco", layout)
                continue
            g = box["geometry"]
            flat = {n: g[n] for n in ("x", "y", "width", "height")}
            first, depth = int(g["z"]), int(g["depth"])
            for z in range(first, min(first + depth, len(layout.instances))):
                placed.append((box, layout.instances[z], 1, flat, {"slice_index": z}))
        image_ids: dict[tuple[str, int], int] = {}
        categories = self.coco_categories()
        for region, instance, frame, geometry, extra in placed:
            if instance is None:
                self.leave_out(key, case.pk, "coco", message(REGION_IMAGE_MISSING, region=str(region.get("id"))))
                continue
            if instance.series.is_flagged:
                continue
            if not is_local_file(instance.file):
                self.leave_out(key, case.pk, "coco", message(UPSTREAM_PNG))
                return
            image_key = (instance.sop_instance_uid, frame)
            if image_key not in image_ids:
                image_id = len(self.coco_images) + 1
                name = f"coco/images/{key}_{len(image_ids) + 1:03d}.png"
                self.out.add(name, render_frame(instance, frame, "image/png", None), compress=False)
                self.coco_images.append(
                    {
                        "id": image_id,
                        "file_name": name.removeprefix("coco/"),
                        "width": instance.columns,
                        "height": instance.rows,
                        "sop_instance_uid": self.uid(instance.sop_instance_uid),
                        "series_instance_uid": self.uid(instance.series.series_instance_uid),
                        "frame": frame,
                        **common,
                    }
                )
                image_ids[image_key] = image_id
            if "points" in geometry:
                points = [[float(x), float(y)] for x, y in geometry["points"]]
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                segmentation = [[v for p in points for v in p]]
                area = 0.5 * abs(sum(xs[k] * ys[k - 1] - xs[k - 1] * ys[k] for k in range(len(points))))
            else:
                x, y, w, h = (float(geometry[n]) for n in ("x", "y", "width", "height"))
                bbox = [x, y, w, h]
                segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
                area = w * h
            self.coco_annotations.append(
                {
                    "id": len(self.coco_annotations) + 1,
                    "image_id": image_ids[image_key],
                    "category_id": categories[region["label"]],
                    "bbox": bbox,
                    "area": area,
                    "segmentation": segmentation,
                    "iscrowd": 0,
                    "region_id": region.get("id"),
                    "lesion_id": f"{key}/{region.get('id')}",
                    **extra,
                    "attributes": attributes.get(str(region.get("id")), {}),
                    "case": key,
                }
            )

    def coco_categories(self) -> dict[str, int]:
        keys = [k for k, label in self.labels.items() if is_box_or_polygon(label) and k in self.label_filter]
        return {k: n for n, k in enumerate(keys, start=1)}

    # --- tables -----------------------------------------------------------------------------------------

    def tabular(
        self, case: Case, key: str, items: list[dict[str, Any]], provenance: dict[str, Any], common: dict[str, Any]
    ) -> None:
        study = case.study
        shift = self.deid.day_shift(study.patient_id or f"study:{study.study_instance_uid}")
        from datasets.deid import shift_date

        study_date = shift_date(study.study_date, shift) if self.on else study.study_date
        panel = provenance.get("panel") or {}
        for item in items:
            label = self.labels.get(item["label"])
            if (
                label is None
                or label["level"] not in TABULAR_LEVELS
                or label["kind"] in ("mask", "box", "polygon", "point")
            ):
                continue
            if self.on and label["kind"] == "text":
                self.dropped_text.add(label["key"])
                continue
            value = item.get("value")
            self.rows.append(
                {
                    **common,
                    "study_instance_uid": self.uid(study.study_instance_uid),
                    "series_instance_uid": self.uid(item.get("series_instance_uid", "")),
                    "sop_instance_uid": self.uid(item.get("sop_instance_uid", "")),
                    "frame": item.get("frame", ""),
                    "study_date": study_date,
                    "label": label["key"],
                    "level": label["level"],
                    "kind": label["kind"],
                    "value": value if isinstance(value, (str, int, float)) else json.dumps(value, sort_keys=True),
                    "final_label": provenance["final_label"]["role"],
                    "label_revision": provenance["final_label"]["revision"],
                    "schema_version": provenance["final_label"]["schema_version"],
                    "readers": ";".join(f"{r['reader']}:{r['role']}" for r in provenance["readers"]),
                    "agreement": json.dumps(provenance["agreement"], sort_keys=True) if provenance["agreement"] else "",
                    "panel_votes": json.dumps(panel.get("votes", []), sort_keys=True) if panel else "",
                    "panel_decision": json.dumps(panel.get("decision"), sort_keys=True) if panel else "",
                    "ai_model_versions": ";".join(provenance["ai_model_versions"]),
                }
            )

    # --- raw multi-reader annotations -------------------------------------------------------------------

    def raw(self, case: Case, key: str, common: dict[str, Any]) -> None:
        annotations = []
        layouts: dict[str, SeriesLayout | None] = {}
        for annotation in Annotation.objects.filter(case=case, created_at__lte=self.export.created_at).order_by(
            "role", "pk"
        ):
            revisions = []
            for revision in (
                AnnotationRevision.objects.filter(annotation=annotation, created_at__lte=self.export.created_at)
                .prefetch_related("masks")
                .order_by("number")
            ):
                masks: dict[str, str] = {}
                for item in revision.items:
                    ref = item.get("mask")
                    if isinstance(ref, dict) and ref.get("sha256"):
                        name = self.raw_mask(case, key, item, revision, layouts)
                        if name:
                            masks[ref["sha256"]] = name
                out = [o for o in (self.out_item(i, masks) for i in revision.items) if o is not None]
                revisions.append(
                    {
                        "number": revision.number,
                        "origin": revision.origin,
                        "model_version": revision.model_version,
                        "schema_version": revision.schema.version,
                        "is_submission": revision.is_submission,
                        "items": out,
                    }
                )
            annotations.append(
                {
                    "role": annotation.role,
                    "reader": self.reader_id(annotation.reader_id) if annotation.reader_id else None,
                    "status": annotation.status,
                    "revisions": revisions,
                }
            )
        self.out.add(f"raw/{key}.json", dumps({**common, "annotations": annotations}))

    def raw_mask(
        self,
        case: Case,
        key: str,
        item: dict[str, Any],
        revision: AnnotationRevision,
        layouts: dict[str, SeriesLayout | None],
    ) -> str | None:
        sha = item["mask"]["sha256"]
        series_uid = item.get("series_instance_uid", "")
        if series_uid not in layouts:
            series = Series.objects.filter(study_id=case.study_id, series_instance_uid=series_uid).first()
            try:
                layouts[series_uid] = series_layout(series) if series is not None else None
            except GeometryMissing as exc:
                self.leave_out(key, case.pk, "raw", message(MASKS_NOT_WRITTEN, reason=exc.message))
                layouts[series_uid] = None
        layout = layouts[series_uid]
        mask_row = next((m for m in revision.masks.all() if m.sha256 == sha), None)
        if layout is None or mask_row is None:
            return None
        name = f"raw/masks/{sha}.nii.gz"
        if name not in self.raw_masks_written:
            array = load_mask(mask_row)
            if tuple(array.shape) != layout.shape:
                return None
            self.out.add(name, nifti_bytes(array, layout.affine_ras), compress=False)
            self.raw_masks_written.add(name)
        return name

    # --- the files that describe the whole snapshot -----------------------------------------------------

    def finish(
        self,
        selection: list[dict[str, Any]],
        keys: dict[int, str],
        patient_of: dict[int, str],
        split_of_patient: dict[str, str],
        split_counts: dict[str, int],
    ) -> int:
        export = self.export
        formats = set(export.formats)
        fully_out = {row["case_id"] for row in self.left_out if row["format"] == "all"}
        if "monai" in formats:
            mask_label = self.labels.get(str(self.mask_label), {})
            labels = {"0": "background"} | {str(s["value"]): s["key"] for s in mask_label.get("segments", [])}
            modalities = sorted(self.modalities) or ["CT"]
            self.out.add(
                "dataset.json",
                dumps(
                    {
                        "name": export.project.slug,
                        "description": f"MedLabel QA snapshot v{export.version} of project {export.project.slug}",
                        "reference": "MedLabel QA",
                        "licence": "see project",
                        "release": str(export.version),
                        "tensorImageSize": "3D",
                        "modality": {str(n): m for n, m in enumerate(modalities)},
                        "labels": labels,
                        "numTraining": len(self.monai["train"]),
                        "numValidation": len(self.monai["validation"]),
                        "numTest": len(self.monai["test"]),
                        "training": self.monai["train"],
                        "validation": self.monai["validation"],
                        "test": self.monai["test"],
                    }
                ),
            )
        if "coco" in formats:
            self.out.add(
                "coco/annotations.json",
                dumps(
                    {
                        "info": {
                            "description": f"{export.project.slug} snapshot v{export.version}",
                            "version": str(export.version),
                        },
                        "images": self.coco_images,
                        "annotations": self.coco_annotations,
                        "categories": [
                            {"id": n, "name": k, "supercategory": self.labels[k]["kind"]}
                            for k, n in self.coco_categories().items()
                        ],
                    }
                ),
            )
        columns = [
            "case", "patient", "split", "qa_level", "study_instance_uid", "series_instance_uid", "sop_instance_uid",
            "frame", "study_date", "label", "level", "kind", "value", "final_label", "label_revision",
            "schema_version", "readers", "agreement", "panel_votes", "panel_decision", "ai_model_versions",
        ]  # fmt: skip
        if "csv" in formats:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            self.out.add("labels.csv", buffer.getvalue().encode())
        if "json" in formats:
            self.out.add("labels.json", dumps(self.rows))
        cases_out = [
            {
                "case": keys[row["case"]],
                "case_id": row["case"],
                "patient": patient_of[row["case"]],
                "split": split_of_patient[patient_of[row["case"]]],
                "qa_level": row["qa_level"],
                "label_revision_id": row["revision"],
            }
            for row in selection
            if row["case"] not in fully_out
        ]
        self.out.add("provenance.json", dumps(self.provenance))
        self.out.add("deid_report.json", dumps(self.deid_report()))
        self.out.add(
            "snapshot.json",
            dumps(
                {
                    "project": export.project.slug,
                    "version": export.version,
                    "created_at": export.created_at.isoformat(),
                    "schema_version": export.schema_version,
                    "schema": self.schema,
                    "filters": export.filters,
                    "formats": sorted(formats),
                    "split": export.split,
                    "split_counts": split_counts,
                    "deidentified": export.deidentify,
                    "cases": cases_out,
                    # In English, as the reasons were written (the message templates stay in the database).
                    "left_out": [{k: v for k, v in row.items() if k != "message"} for row in self.left_out],
                    "derived": self.derived,
                    "type_2_written_empty": self.type_2_empty,
                }
            ),
        )
        self.out.add("manifest.json", dumps({"files": dict(sorted(self.out.manifest.items()))}))
        self.out.close()
        return len(cases_out)


def build_snapshot(export: Export, path: str, progress: Progress | None = None) -> BuildResult:
    return SnapshotBuilder(export, path, progress).run()
