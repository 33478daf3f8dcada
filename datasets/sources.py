"""Source images as the DICOM objects of an export see them (SEG, RTSTRUCT, SR and the de-identified images
themselves): real-world files often lack Type 2 attributes, or a Frame of Reference, that highdicom copies
into every object it derives from them. These helpers complete them the way the standard allows, so that one
missing attribute does not cost a whole case."""

from __future__ import annotations

from pydicom import Dataset

from datasets.deid import keyed_digest

# Type 2 attributes of the Patient and General Study modules that derived objects copy from their sources:
# they must be present but may be empty (PS3.5 7.4.3). Many scanners and anonymisers leave them out.
TYPE_2_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


PATIENT_SEX_VALUES = ("M", "F", "O")


def complete_type_2(ds: Dataset) -> list[str]:
    """Add the missing Type 2 attributes of ``ds`` with no value, in place, and empty a Patient's Sex that is
    none of the standard's values (M, F, O: highdicom refuses any other); returns the keywords written empty."""
    added = []
    for keyword in TYPE_2_PATIENT_STUDY:
        if keyword not in ds:
            setattr(ds, keyword, "")
            added.append(keyword)
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    if sex not in ("", *PATIENT_SEX_VALUES):
        sex = ""
        added.append("PatientSex")
    if "PatientSex" in ds:
        ds.PatientSex = sex
    return added


def derived_frame_of_reference(key: bytes, series_instance_uid: str) -> str:
    """A Frame of Reference UID for a series whose images carry none: the same for every image of the series
    (their positions share one coordinate system, which is what the UID names) and in every export of the
    project, and unguessable without the project key."""
    digest = keyed_digest(key, "derived-frame-of-reference", series_instance_uid)
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"
