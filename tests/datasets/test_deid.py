"""De-identification: every attribute of the PS3.15 Basic Profile table (and private tags) seeded with an
identifying value, then checked absent from every byte written: for one dataset, and for a whole export in
every format (the bytes of each file in the zip, and of the gzipped NIfTI files once unzipped)."""

from __future__ import annotations

import gzip
import io
from typing import Any, cast

import pydicom
import pytest
from django.contrib.auth.models import User
from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword

from annotation.labels import load_example_schema
from annotation.models import Case, Project, Role
from annotation.services import cases_create, schema_create_version
from datasets.deid import (
    BASIC_PROFILE,
    SAFE_PRIVATE_TAGS,
    Deidentifier,
    deidentify_for_ingest,
    deidentify_incoming,
    patient_day_shift,
    patient_pseudonym,
)
from datasets.models import Export
from datasets.services import export_create
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import SyntheticStudy, generate_ct_study
from tests.conftest import dataset_bytes
from tests.datasets.conftest import adjudicate, other_values, run_export, truth_values, zip_files
from tests.dciodvfy import assert_valid_dicom
from tests.factories import MembershipFactory, ProjectFactory, place_studies

KEY = bytes(range(32))
# UIDs the ingest indexes (kept from the synthetic study, and checked separately).
STRUCTURAL = {
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "MediaStorageSOPInstanceUID",
}
# Attributes whose value is structural for the image and not seeded (pixel module, the ingest needs them).
NOT_SEEDED = STRUCTURAL | {"DataSetTrailingPadding"}


def seeded_value(index: int, keyword: str, vr: str) -> tuple[Any, list[bytes]]:
    """An identifying value for the attribute and the byte strings that must never appear in an output."""
    token = f"PHI{index:04d}"
    if vr == "PN":
        return f"{token}^NAME{index:04d}", [token.encode(), f"NAME{index:04d}".encode()]
    if vr == "DA":
        # All seeded dates fall in one 20-day window: a shift (30 days or more) cannot land on another one.
        value = f"200103{1 + index % 20:02d}"
        return value, [value.encode()]
    if vr == "TM":
        value = f"1{index % 10}{index % 60:02d}{(index * 7) % 60:02d}.{index:04d}"
        return value, [value.encode()]
    if vr == "DT":
        value = f"200103{1 + index % 20:02d}1{index % 10}{index % 60:02d}{(index * 7) % 60:02d}.{index:04d}"
        return value, [value.encode()]
    if vr == "UI":
        value = f"1.2.826.0.1.3680043.10.999.1{index:04d}"
        return value, [value.encode()]
    if vr == "AS":
        return "077Y", [b"077Y"]
    if vr == "DS":
        value = f"1{index:04d}.4321"
        return value, [value.encode()]
    if vr == "IS":
        value = f"8{index:04d}71"
        return value, [value.encode()]
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = token
        item.CodingSchemeDesignator = "99PHI"
        item.CodeMeaning = f"{token} meaning"
        item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.10.998.1{index:04d}"
        item.PersonName = f"{token}^SEQ"
        return [item], [token.encode(), item.ReferencedSOPInstanceUID.encode()]
    if vr in ("OB", "OW", "UN", "OB or OW"):
        return f"{token}BYTES".encode(), [f"{token}BYTES".encode()]
    if vr in ("US", "UL", "SS", "SL", "FL", "FD", "US or SS"):
        return None, []
    return token, [token.encode()]


def seed_phi(ds: Dataset, *, tag_patient: str) -> list[bytes]:
    """Put an identifying value into every attribute the profile names (except the indexed UIDs), plus two
    private elements: one identifying, one on the safe list. Returns the forbidden byte strings."""
    forbidden: list[bytes] = []
    for index, keyword in enumerate(sorted(BASIC_PROFILE)):
        if keyword in NOT_SEEDED:
            continue
        tag = tag_for_keyword(keyword)
        assert tag is not None
        if tag >> 16 in (0x0000, 0x0002):
            continue  # command and file-meta elements: not in a stored dataset's body
        vr = dictionary_VR(tag)
        value, marks = seeded_value(index, keyword, vr)
        if value is None:
            continue
        ds.add_new(tag, vr.split(" ")[0], value)
        forbidden += marks
    ds.PatientID = f"MRN-{tag_patient}"
    ds.PatientName = f"DOE^{tag_patient}"
    forbidden += [f"MRN-{tag_patient}".encode(), f"DOE^{tag_patient}".encode()]
    block = ds.private_block(0x0009, "ACME PHI", create=True)
    block.add_new(0x01, "LO", f"SECRET-{tag_patient}")
    forbidden.append(f"SECRET-{tag_patient}".encode())
    safe_creator, safe_group, safe_element = sorted(SAFE_PRIVATE_TAGS)[0]
    ds.private_block(safe_group, safe_creator, create=True).add_new(safe_element, "LO", "1000")
    return forbidden


def test_the_profile_table_covers_the_identifying_attributes_with_known_keywords() -> None:
    assert len(BASIC_PROFILE) > 200
    names = "PatientName PatientID PatientBirthDate AccessionNumber InstitutionName ReferringPhysicianName"
    names += " StudyInstanceUID OtherPatientIDsSequence PatientAddress"
    for keyword in names.split():
        assert keyword in BASIC_PROFILE
    assert all(tag_for_keyword(k) is not None for k in BASIC_PROFILE)


def test_a_dataset_seeded_in_every_profile_attribute_keeps_none_of_the_values() -> None:
    study = generate_ct_study(seed=5, rows=32, columns=32, slices=2, n_lesions=0)
    ds = next(study.datasets())
    forbidden = seed_phi(ds, tag_patient="A1")
    forbidden += [study.study_uid.encode(), study.series_uid.encode(), study.frame_of_reference_uid.encode()]
    original_study_date = str(ds.StudyDate)
    deid = Deidentifier(key=KEY, uid_salt="snapshot-1")
    deid.dataset(ds, patient_id="MRN-A1")
    data = io.BytesIO()
    pydicom.dcmwrite(data, ds, enforce_file_format=True)
    written = data.getvalue()
    leaked = [mark for mark in forbidden if mark in written]
    assert leaked == []
    back = pydicom.dcmread(io.BytesIO(written))
    assert back.PatientID == patient_pseudonym(KEY, "MRN-A1")
    assert back.PatientIdentityRemoved == "YES"
    # The study date is shifted by the patient's offset, not removed: intervals survive.
    shift = patient_day_shift(KEY, "MRN-A1")
    assert 30 <= shift < 3680
    assert back.StudyDate != original_study_date and len(back.StudyDate) == 8
    # The identifying private block is gone; the safe element stays.
    creator, group, element = sorted(SAFE_PRIVATE_TAGS)[0]
    assert str(back.private_block(group, creator)[element].value) == "1000"
    assert not any(elem.tag.group == 0x0009 for elem in back)
    report = deid.report()
    assert report["private_removed"] == {"ACME PHI": 1}
    assert report["attributes"]["PatientAddress"] == {"X": 1}
    assert report["attributes"]["StudyInstanceUID"] == {"U": 1}
    assert [mark for mark in forbidden if mark in repr(report).encode()] == []  # counts, never values


def test_uids_are_remapped_consistently_within_a_snapshot_and_pseudonyms_are_stable_per_project_key() -> None:
    one = Deidentifier(key=KEY, uid_salt="snapshot-1")
    two = Deidentifier(key=KEY, uid_salt="snapshot-2")
    uid = "1.2.826.0.1.3680043.10.5.1"
    assert one.uid(uid) == one.uid(uid) != uid
    assert one.uid(uid) != two.uid(uid)  # snapshots cannot be joined on UIDs
    assert one.uid("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage stays
    assert one.pseudonym("MRN-7") == two.pseudonym("MRN-7")  # same patient, same pseudonym across snapshots
    assert Deidentifier(key=b"other-key", uid_salt="snapshot-1").pseudonym("MRN-7") != one.pseudonym("MRN-7")
    assert one.day_shift("MRN-7") == two.day_shift("MRN-7")


def test_burned_in_annotation_is_flagged_in_the_report() -> None:
    ds = Dataset()
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.5.2"
    ds.BurnedInAnnotation = "YES"
    ds.Modality = "US"
    deid = Deidentifier(key=KEY, uid_salt="s")
    deid.dataset(ds, patient_id="p")
    assert list(deid.report()["burned_in_annotation"]) == [ds.SeriesInstanceUID]


@pytest.fixture
def phi_project(users: dict[str, User]) -> tuple[Project, list[Case], list[SyntheticStudy], list[bytes]]:
    """Two synthetic studies of two patients, every profile attribute seeded, ingested, adjudicated."""
    project = cast(Project, ProjectFactory(slug="phi", name="PHI test"))
    for role in ("annotator", "reviewer", "expert", "manager"):
        MembershipFactory(project=project, user=users[role], role=Role(role))
    forbidden: list[bytes] = []
    studies = []
    for n, seed in enumerate((301, 302)):
        study = generate_ct_study(seed=seed, rows=48, columns=48, slices=6, n_lesions=1, lesion_radius_mm=(3.0, 5.0))
        files = []
        for ds in study.datasets():
            marks = seed_phi(ds, tag_patient=f"P{n}")
            files.append(dataset_bytes(ds))
        forbidden += marks
        forbidden += [study.study_uid.encode(), study.series_uid.encode(), study.frame_of_reference_uid.encode()]
        forbidden += [uid.encode() for uid in study.sop_instance_uids()]
        report = ingest_files([IncomingFile(f"{seed}-{k}.dcm", data) for k, data in enumerate(files)])
        assert [f.status for f in report.files] == [STORED] * len(files), [f.reason for f in report.files]
        studies.append(study)
    place_studies(project, [s.study_uid for s in studies])
    schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    cases = cases_create(project=project, study_uids=[s.study_uid for s in studies])
    for case, study in zip(cases, studies, strict=True):
        case = Case.objects.select_related("project", "study").get(pk=case.pk)
        adjudicate(case, users, truth_values(case, study), other_values(case))
    return project, cases, studies, sorted(set(forbidden))


def test_an_export_in_every_format_contains_none_of_the_seeded_identifying_values(
    phi_project: tuple[Project, list[Case], list[SyntheticStudy], list[bytes]], users: dict[str, User]
) -> None:
    project, _cases, _studies, forbidden = phi_project
    assert len(forbidden) > 250
    export = run_export(
        export_create(
            project=project,
            created_by=users["manager"],
            formats=["monai", "dicom_seg", "coco", "csv", "json", "raw"],
            filters={"min_qa_level": "adjudicated"},
            split={"train": 0.5, "validation": 0.5, "test": 0.0},
            enqueue=False,
        )
    )
    files = zip_files(export)
    assert {name.split("/")[0] for name in files} >= {"imagesTr", "labelsTr", "seg", "coco", "raw", "labels.csv"}
    assert not [row for row in export.left_out], export.left_out
    leaks = []
    for name, data in files.items():
        views = [data] + ([gzip.decompress(data)] if name.endswith(".gz") else [])
        for view in views:
            leaks += [(name, mark) for mark in forbidden if mark in view]
    assert leaks == []
    # Also what the API shows: the stored report and left-out list carry no original value.
    shown = repr((export.deid_report, export.left_out, export.manifest)).encode()
    assert [mark for mark in forbidden if mark in shown] == []
    # The control: the same snapshot without de-identification carries the seeded values (the check can fail).
    plain = run_export(
        export_create(
            project=project, created_by=users["manager"], formats=["dicom_seg", "csv"], deidentify=False, enqueue=False
        )
    )
    plain_bytes = b"".join(zip_files(plain).values())
    assert b"MRN-P0" in plain_bytes and len([mark for mark in forbidden if mark in plain_bytes]) >= 5
    report = export.deid_report
    assert report["deidentified"] is True
    assert report["private_removed"]["ACME PHI"] >= 12  # one element per source image in the SEGs
    assert report["attributes"]["PatientName"]["pseudonym"] >= 12


def test_the_same_patient_gets_the_same_pseudonym_in_two_snapshots(
    phi_project: tuple[Project, list[Case], list[SyntheticStudy], list[bytes]], users: dict[str, User]
) -> None:
    project = phi_project[0]

    def patients(export: Export) -> list[str]:
        return sorted(row["patient"] for row in zip_snapshot(export)["cases"])

    first = run_export(export_create(project=project, created_by=users["manager"], formats=["csv"], enqueue=False))
    second = run_export(export_create(project=project, created_by=users["manager"], formats=["csv"], enqueue=False))
    assert (first.version, second.version) == (1, 2)
    assert patients(first) == patients(second)
    assert all(p.startswith("PSN-") for p in patients(first)) and len(set(patients(first))) == 2


def zip_snapshot(export: Export) -> dict[str, Any]:
    import json

    return cast(dict[str, Any], json.loads(zip_files(export)["snapshot.json"]))


def test_ingest_can_de_identify_files_before_storing_them(db: None) -> None:
    """``deidentify_for_ingest`` is what an ingest path calls per file: the files of one study stay one study
    (UIDs remapped alike), the patient becomes the project's pseudonym, and the index holds no original value."""
    from imaging.models import Instance, Study

    study = generate_ct_study(seed=9, rows=32, columns=32, slices=3, n_lesions=0)
    files = []
    for k, ds in enumerate(study.datasets()):
        forbidden = seed_phi(ds, tag_patient="ING")
        files.append(IncomingFile(f"{k}.dcm", dataset_bytes(ds)))
    # One file through the per-dataset function, the others through the files-in, files-out one.
    first = deidentify_for_ingest(pydicom.dcmread(io.BytesIO(files[0].data)), key=KEY)
    files = [IncomingFile("0.dcm", dataset_bytes(first)), *deidentify_incoming(files[1:], key=KEY)]
    for incoming in files[:2]:  # what the platform writes before it stores: the standard's checker agrees
        assert_valid_dicom(incoming.data, f"ingest-deidentified {incoming.name}")
    report = ingest_files(files)
    assert [f.status for f in report.files] == [STORED] * 3
    stored = Study.objects.get()
    assert stored.study_instance_uid != study.study_uid and stored.number_of_instances == 3
    assert stored.patient_id == patient_pseudonym(KEY, "MRN-ING")
    index = (
        repr(list(Instance.objects.values_list("metadata", flat=True))).encode()
        + repr(list(Study.objects.values())).encode()
    )
    assert [mark for mark in forbidden if mark in index] == []
