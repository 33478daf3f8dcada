"""Each format read back with its own ecosystem's reader and compared with the adjudicated labels in the
database: MONAI (load_decathlon_datalist + LoadImaged), highdicom and pydicom for DICOM SEG, pycocotools for
COCO, pandas for the CSV; and the same snapshot built twice gives the same bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any, cast

import highdicom as hd
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
from django.contrib.auth.models import User
from monai.data import load_decathlon_datalist
from monai.transforms import LoadImaged
from pycocotools.coco import COCO

from annotation.models import AnnotationRevision, Case, MaskFile
from annotation.services import load_mask
from datasets.models import Export
from datasets.services import export_create, export_write
from imaging.synthetic import SyntheticStudy
from tests.datasets.conftest import adjudicate, agree, other_values, run_export, truth_values, zip_bytes, zip_files
from tests.dciodvfy import assert_valid_dicom

ALL_FORMATS = ["monai", "dicom_seg", "coco", "csv", "json", "raw"]


def db_mask(revision: AnnotationRevision) -> np.ndarray:
    item = next(i for i in revision.items if i["label"] == "nodule_mask")
    return load_mask(MaskFile.objects.get(sha256=item["mask"]["sha256"]))


def db_box(revision: AnnotationRevision) -> dict[str, Any]:
    return next(i for i in revision.items if i["label"] == "nodule_box")


def extract(files: dict[str, bytes], root: Path) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def exported(project: Any, manager: User, **options: Any) -> Export:
    options.setdefault("formats", ALL_FORMATS)
    options.setdefault("filters", {"min_qa_level": "adjudicated"})
    options.setdefault("split", {"train": 0.34, "validation": 0.33, "test": 0.33, "seed": 7})
    return run_export(export_create(project=project, created_by=manager, enqueue=False, **options))


def test_monai_layout_loads_with_monai_and_masks_match_the_adjudicated_labels_voxel_for_voxel(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    ingested_studies: list[SyntheticStudy],
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    export = exported(adjudicated_cases[0][0].project, users["manager"])
    root = extract(zip_files(export), tmp_path / "out")
    snapshot = json.loads((root / "snapshot.json").read_text())
    key_of_case = {row["case_id"]: row["case"] for row in snapshot["cases"]}
    entries: dict[str, dict[str, Any]] = {}
    for split in ("training", "validation", "test"):
        for entry in load_decathlon_datalist(str(root / "dataset.json"), data_list_key=split, base_dir=str(root)):
            entries[entry["case"]] = entry
    assert len(entries) == 3
    loader = LoadImaged(keys=["image", "label"], image_only=False)
    for (case, winner), study in zip(adjudicated_cases, ingested_studies, strict=True):
        entry = entries[key_of_case[case.pk]]
        assert entry["qa_level"] == "adjudicated"
        data = loader(entry)
        label = np.asarray(data["label"])
        image = np.asarray(data["image"])
        expected = db_mask(winner)  # (slices, rows, columns)
        assert label.shape == expected.shape[::-1]
        assert np.array_equal(label, np.transpose(expected, (2, 1, 0)))
        assert np.array_equal(image, np.transpose(study.hu, (2, 1, 0)))
        # The affine MONAI reports is nibabel's, and it maps the lesion's centre voxel to its centre in mm.
        nifti = cast(nib.Nifti1Image, nib.load(str(entry["label"])))
        assert np.allclose(np.asarray(data["label_meta_dict"]["original_affine"]), nifti.affine)
        cz, cy, cx = study.lesions[0].center_voxel
        ras = nifti.affine @ np.array([cx, cy, cz, 1.0])
        lps = np.array([-ras[0], -ras[1], ras[2]])
        assert np.allclose(lps, study.lesions[0].center_mm, atol=1e-4)
        # And the first voxel is ImagePositionPatient of the first slice (LPS -> RAS).
        x0, y0, z0 = study.origin_mm
        assert np.allclose(nifti.affine[:3, 3], [-x0, -y0, z0])
        assert np.allclose(np.abs(np.diag(nifti.affine)[:3]), [*study.pixel_spacing[::-1], study.slice_spacing])


def test_dicom_seg_reads_back_with_highdicom_and_pydicom_identical_to_the_database_masks(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    ingested_studies: list[SyntheticStudy],
    users: dict[str, User],
) -> None:
    export = exported(adjudicated_cases[0][0].project, users["manager"], formats=["dicom_seg"])
    files = zip_files(export)
    snapshot = json.loads(files["snapshot.json"])
    key_of_case = {row["case_id"]: row["case"] for row in snapshot["cases"]}
    for (case, winner), study in zip(adjudicated_cases, ingested_studies, strict=True):
        data = files[f"seg/{key_of_case[case.pk]}.dcm"]
        assert_valid_dicom(data, f"seg/{key_of_case[case.pk]}.dcm")
        seg = hd.seg.segread(io.BytesIO(data))
        assert seg.SegmentationType == "BINARY"
        assert [s.SegmentLabel for s in seg.SegmentSequence] == ["nodule"]
        expected = db_mask(winner)
        # pydicom: frames with their plane positions; each frame goes to the slice at that z.
        ds = pydicom.dcmread(io.BytesIO(data))
        frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
        rebuilt = np.zeros_like(expected)
        z_of_position = {round(p[2], 3): k for k, p in enumerate(study.slice_positions())}
        for frame, group in zip(frames, ds.PerFrameFunctionalGroupsSequence, strict=True):
            z = z_of_position[round(float(group.PlanePositionSequence[0].ImagePositionPatient[2]), 3)]
            rebuilt[z] = frame
        assert np.array_equal(rebuilt, expected)
        # highdicom: the volume of segment 1 over the referenced source images.
        volume = seg.get_volume(combine_segments=True)
        assert int(np.asarray(volume.array).sum()) == int(expected.sum())
        # The SEG references the (de-identified) source series, never the original UIDs.
        referenced = ds.ReferencedSeriesSequence[0]
        assert len(referenced.ReferencedInstanceSequence) == expected.shape[0]
        assert referenced.SeriesInstanceUID != study.series_uid
        assert ds.StudyInstanceUID != study.study_uid
        assert ds.PatientID.startswith("PSN-")


def test_coco_loads_with_pycocotools_with_the_adjudicated_boxes_and_classes(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User], tmp_path: Path
) -> None:
    export = exported(adjudicated_cases[0][0].project, users["manager"], formats=["coco"])
    root = extract(zip_files(export), tmp_path / "coco")
    coco = COCO(str(root / "coco" / "annotations.json"))
    snapshot = json.loads((root / "snapshot.json").read_text())
    key_of_case = {row["case_id"]: row["case"] for row in snapshot["cases"]}
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["nodule_box"]
    assert len(coco.getAnnIds()) == 3
    for case, winner in adjudicated_cases:
        annotations = [a for a in coco.loadAnns(coco.getAnnIds()) if a["case"] == key_of_case[case.pk]]
        assert len(annotations) == 1
        box = db_box(winner)["geometry"]
        assert annotations[0]["bbox"] == [box["x"], box["y"], box["width"], box["height"]]
        assert coco.loadCats(annotations[0]["category_id"])[0]["name"] == "nodule_box"
        assert annotations[0]["attributes"]["nodule_type"] == "solid"
        image = coco.loadImgs(annotations[0]["image_id"])[0]
        assert (root / "coco" / image["file_name"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (image["width"], image["height"]) == (64, 64)


def test_csv_loads_with_pandas_one_row_per_case_and_label_with_provenance(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User]
) -> None:
    export = exported(adjudicated_cases[0][0].project, users["manager"], formats=["csv", "json", "raw"])
    files = zip_files(export)
    table = pd.read_csv(io.BytesIO(files["labels.csv"]), dtype=str, keep_default_na=False)
    snapshot = json.loads(files["snapshot.json"])
    key_of_case = {row["case_id"]: row["case"] for row in snapshot["cases"]}
    assert sorted(table["label"].unique()) == ["nodule_present"]  # comment (free text) dropped by de-identification
    for case, winner in adjudicated_cases:
        rows = table[table["case"] == key_of_case[case.pk]]
        assert len(rows) == 1
        row = rows.iloc[0]
        expected = next(i["value"] for i in winner.items if i["label"] == "nodule_present")
        assert row["value"] == expected
        assert row["qa_level"] == "adjudicated"
        assert row["final_label"] == "adjudicated"
        assert json.loads(row["panel_decision"]) == {"for": "first_reader", "tie_broken_by_chair": False}
        readers = row["readers"].split(";")
        assert [r.split(":")[1] for r in readers] == ["first_reader", "second_reader"]
        assert all(r.startswith("R-") for r in readers) and "annotator" not in row["readers"]
        votes = json.loads(row["panel_votes"])
        assert len(votes) == 1 and votes[0]["for"] == "first_reader" and votes[0]["expert"].startswith("R-")
        agreement = json.loads(row["agreement"])
        assert agreement["agreed"] is False
        raw = json.loads(files[f"raw/{key_of_case[case.pk]}.json"])
        roles = sorted(a["role"] for a in raw["annotations"])
        assert roles == ["adjudicated", "first_reader", "second_reader"]
        for annotation in raw["annotations"]:
            mask_item = next(i for i in annotation["revisions"][-1]["items"] if i["label"] == "nodule_mask")
            assert mask_item["mask"]["file"] in files
    rows = json.loads(files["labels.json"])
    assert [(r["case"], r["label"], r["value"]) for r in rows] == list(
        zip(table["case"], table["label"], table["value"], strict=True)
    )
    assert "comment" in json.loads(files["deid_report.json"])["text_labels_dropped"]


def test_the_manifest_lists_every_file_with_its_sha256_and_a_rebuild_gives_identical_bytes(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User], tmp_path: Path
) -> None:
    export = exported(adjudicated_cases[0][0].project, users["manager"])
    files = zip_files(export)
    manifest = json.loads(files["manifest.json"])["files"]
    assert set(manifest) == set(files) - {"manifest.json"}
    for name, entry in manifest.items():
        assert hashlib.sha256(files[name]).hexdigest() == entry["sha256"]
    assert export.manifest == manifest
    assert any(name.startswith("labelsTr/") for name in manifest) and any(name.startswith("seg/") for name in manifest)
    again = tmp_path / "again.zip"
    export_write(Export.objects.get(pk=export.pk), str(again))
    assert (
        hashlib.sha256(again.read_bytes()).hexdigest() == export.sha256 == hashlib.sha256(zip_bytes(export)).hexdigest()
    )
    with zipfile.ZipFile(again) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == files


def test_the_minimum_qa_level_selects_cases_and_the_final_label_of_each_level(
    reading_cases: list[Case], ingested_studies: list[SyntheticStudy], users: dict[str, User]
) -> None:
    from annotation.models import Annotation

    agreed_case, adjudicated_case, unread_case = reading_cases
    agree(agreed_case, users, truth_values(agreed_case, ingested_studies[0]))
    adjudicate(
        adjudicated_case, users, truth_values(adjudicated_case, ingested_studies[1]), other_values(adjudicated_case)
    )
    project = agreed_case.project

    def selected(level: str) -> dict[int, str]:
        export = export_create(
            project=project,
            created_by=users["manager"],
            formats=["csv"],
            filters={"min_qa_level": level},
            enqueue=False,
        )
        return {row["case"]: row["qa_level"] for row in export.selection}

    assert selected("adjudicated") == {adjudicated_case.pk: "adjudicated"}
    assert selected("agreed") == {agreed_case.pk: "agreed", adjudicated_case.pk: "adjudicated"}
    assert unread_case.pk not in selected("single_read")
    # The agreed case's exported mask is its consensus label.
    export = exported(project, users["manager"], formats=["monai"], filters={"min_qa_level": "agreed"})
    files = zip_files(export)
    key = next(r["case"] for r in json.loads(files["snapshot.json"])["cases"] if r["case_id"] == agreed_case.pk)
    consensus = Annotation.objects.get(case=agreed_case, role="consensus").current_revision
    assert consensus is not None
    label = np.asanyarray(nib.Nifti1Image.from_bytes(gzip.decompress(files[f"labelsTr/{key}.nii.gz"])).dataobj)
    assert np.array_equal(label, np.transpose(db_mask(consensus), (2, 1, 0)))
