"""De-identification after DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

``BASIC_PROFILE`` is table E.1-1 written as data (attribute keyword -> action code). The actions:
``X`` remove, ``Z`` replace with a zero-length value, ``D`` replace with a dummy value, ``U`` replace a
UID with one that is consistent within the snapshot, ``K`` keep; combined codes (``X/Z``, ``X/D``,
``Z/D``, ``X/Z/D``, ``X/Z/U*``) are resolved to the strictest one this module can apply: remove when the
code allows it, otherwise remap (UIDs), empty, or a dummy. On top of the profile, with the options "Retain
Longitudinal Temporal Information with Modified Dates" and "Retain Patient Characteristics" off:
- every remaining date (DA, and the date part of DT) is shifted by a per-patient number of days, derived
  from the project's key, so intervals within a patient survive and the same patient shifts alike in
  every snapshot;
- patient name and id become the HMAC pseudonym of the original patient id (the per-project key);
- every UID that is not a DICOM-defined one (SOP classes, transfer syntaxes, coding schemes) is remapped,
  so references between objects of the snapshot stay consistent;
- private elements are removed except those on ``SAFE_PRIVATE_TAGS`` (creator, group, element byte);
- burned-in annotation (Burned In Annotation = YES, or image types that often carry it) is flagged.

``Deidentifier`` keeps the counts for the report: which attributes were removed, emptied, replaced,
shifted or remapped, and how often, without ever recording an original value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom import Dataset
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.tag import BaseTag, Tag

from imaging.services.ingest import IncomingFile

# --- Table E.1-1 of PS3.15 (attributes and their Basic Profile action) --------------------------------------
BASIC_PROFILE: dict[str, str] = {
    "AccessionNumber": "Z",
    "AcquisitionComments": "X",
    "AcquisitionContextSequence": "X",
    "AcquisitionDate": "X/Z",
    "AcquisitionDateTime": "X/D",
    "AcquisitionDeviceProcessingDescription": "X/D",
    "AcquisitionProtocolDescription": "X",
    "AcquisitionTime": "X/Z",
    "ActualHumanPerformersSequence": "X",
    "AdditionalPatientHistory": "X",
    "AdmissionID": "X",
    "AdmittingDate": "X",
    "AdmittingDiagnosesCodeSequence": "X",
    "AdmittingDiagnosesDescription": "X",
    "AdmittingTime": "X",
    "AffectedSOPInstanceUID": "X",
    "Allergies": "X",
    "AuthorObserverSequence": "X",
    "BranchOfService": "X",
    "CassetteID": "X",
    "CommentsOnThePerformedProcedureStep": "X",
    "ConcatenationUID": "U",
    "ConfidentialityConstraintOnPatientDataDescription": "X",
    "ConsultingPhysicianName": "X",
    "ConsultingPhysicianIdentificationSequence": "X",
    "ContentCreatorName": "Z",
    "ContentCreatorIdentificationCodeSequence": "X",
    "ContentDate": "Z/D",
    "ContentSequence": "X",
    "ContentTime": "Z/D",
    "ContextGroupExtensionCreatorUID": "U",
    "ContrastBolusAgent": "Z/D",
    "ContributionDescription": "X",
    "CountryOfResidence": "X",
    "CreatorVersionUID": "U",
    "CurrentPatientLocation": "X",
    "CustodialOrganizationSequence": "X",
    "DataSetTrailingPadding": "X",
    "DerivationDescription": "X",
    "DetectorID": "X",
    "DeviceDescription": "X",
    "DeviceLabel": "X",
    "DeviceSerialNumber": "X/Z/D",
    "DeviceUID": "U",
    "DigitalSignatureUID": "X",
    "DigitalSignaturesSequence": "X",
    "DimensionOrganizationUID": "U",
    "DischargeDiagnosisDescription": "X",
    "DistributionAddress": "X",
    "DistributionName": "X",
    "DoseReferenceUID": "U",
    "EndAcquisitionDateTime": "X/D",
    "EthnicGroup": "X",
    "ExpectedCompletionDateTime": "X",
    "FailedSOPInstanceUIDList": "U",
    "FiducialUID": "U",
    "FillerOrderNumberImagingServiceRequest": "Z",
    "FrameComments": "X",
    "FrameOfReferenceUID": "U",
    "GantryID": "X",
    "GeneratorID": "X",
    "HumanPerformerName": "X",
    "HumanPerformerOrganization": "X",
    "IconImageSequence": "X",
    "IdentifyingComments": "X",
    "ImageComments": "X",
    "ImagePresentationComments": "X",
    "ImagingServiceRequestComments": "X",
    "Impressions": "X",
    "InstanceCoercionDateTime": "X",
    "InstanceCreatorUID": "U",
    "InstitutionAddress": "X",
    "InstitutionCodeSequence": "X/Z/D",
    "InstitutionName": "X/Z/D",
    "InstitutionalDepartmentName": "X",
    "InsurancePlanIdentification": "X",
    "IntendedRecipientsOfResultsIdentificationSequence": "X",
    "InterpretationApproverSequence": "X",
    "InterpretationAuthor": "X",
    "InterpretationDiagnosisDescription": "X",
    "InterpretationIDIssuer": "X",
    "InterpretationRecorder": "X",
    "InterpretationText": "X",
    "InterpretationTranscriber": "X",
    "IrradiationEventUID": "U",
    "IssuerOfAdmissionID": "X",
    "IssuerOfPatientID": "X",
    "IssuerOfServiceEpisodeID": "X",
    "LargePaletteColorLookupTableUID": "U",
    "LastMenstrualDate": "X",
    "ManufacturerDeviceIdentifier": "X",
    "MediaStorageSOPInstanceUID": "U",
    "MedicalAlerts": "X",
    "MedicalRecordLocator": "X",
    "MilitaryRank": "X",
    "ModifiedAttributesSequence": "X",
    "ModifiedImageDescription": "X",
    "ModifyingDeviceID": "X",
    "ModifyingDeviceManufacturer": "X",
    "NameOfPhysiciansReadingStudy": "X",
    "NamesOfIntendedRecipientsOfResults": "X",
    "Occupation": "X",
    "OperatorIdentificationSequence": "X",
    "OperatorsName": "X/Z/D",
    "OrderCallbackPhoneNumber": "X",
    "OrderEnteredBy": "X",
    "OrderEntererLocation": "X",
    "OriginalAttributesSequence": "X",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "PaletteColorLookupTableUID": "U",
    "ParticipantSequence": "X",
    "PatientAddress": "X",
    "PatientAge": "X",
    "PatientBirthDate": "Z",
    "PatientBirthName": "X",
    "PatientBirthTime": "X",
    "PatientComments": "X",
    "PatientID": "Z",
    "PatientInstitutionResidence": "X",
    "PatientInsurancePlanCodeSequence": "X",
    "PatientMotherBirthName": "X",
    "PatientName": "Z",
    "PatientPrimaryLanguageCodeSequence": "X",
    "PatientPrimaryLanguageModifierCodeSequence": "X",
    "PatientReligiousPreference": "X",
    "PatientSex": "Z",
    "PatientSexNeutered": "X/Z",
    "PatientSize": "X",
    "PatientState": "X",
    "PatientTelephoneNumbers": "X",
    "PatientTransportArrangements": "X",
    "PatientWeight": "X",
    "PerformedLocation": "X",
    "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X",
    "PerformedProcedureStepID": "X",
    "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X",
    "PerformedStationAETitle": "X",
    "PerformedStationGeographicLocationCodeSequence": "X",
    "PerformedStationName": "X",
    "PerformedStationNameCodeSequence": "X",
    "PerformingPhysicianIdentificationSequence": "X",
    "PerformingPhysicianName": "X",
    "PersonAddress": "X",
    "PersonIdentificationCodeSequence": "D",
    "PersonName": "D",
    "PersonTelephoneNumbers": "X",
    "PhysicianApprovingInterpretation": "X",
    "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X",
    "PlacerOrderNumberImagingServiceRequest": "Z",
    "PlateID": "X",
    "PreMedication": "X",
    "PregnancyStatus": "X",
    "ProtocolName": "X/D",
    "ReasonForStudy": "X",
    "ReasonForTheImagingServiceRequest": "X",
    "ReferencedDigitalSignatureSequence": "X",
    "ReferencedFrameOfReferenceUID": "U",
    "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID": "U",
    "ReferencedImageSequence": "X/Z/U*",
    "ReferencedPatientAliasSequence": "X",
    "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X/Z/D",
    "ReferencedSOPInstanceMACSequence": "X",
    "ReferencedSOPInstanceUID": "U",
    "ReferencedStudySequence": "X/Z",
    "ReferringPhysicianAddress": "X",
    "ReferringPhysicianIdentificationSequence": "X",
    "ReferringPhysicianName": "Z",
    "ReferringPhysicianTelephoneNumbers": "X",
    "RegionOfResidence": "X",
    "RelatedFrameOfReferenceUID": "U",
    "RequestAttributesSequence": "X",
    "RequestedContrastAgent": "X",
    "RequestedProcedureComments": "X",
    "RequestedProcedureDescription": "X/Z",
    "RequestedProcedureID": "X",
    "RequestedProcedureLocation": "X",
    "RequestedSOPInstanceUID": "U",
    "RequestingPhysician": "X",
    "RequestingService": "X",
    "RequestingServiceCodeSequence": "X",
    "ResponsibleOrganization": "X",
    "ResponsiblePerson": "X",
    "ResultsComments": "X",
    "ResultsDistributionListSequence": "X",
    "ResultsIDIssuer": "X",
    "ReviewerName": "X/Z",
    "ScheduledHumanPerformersSequence": "X",
    "ScheduledPatientInstitutionResidence": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X",
    "ScheduledPerformingPhysicianName": "X",
    "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepEndDate": "X",
    "ScheduledProcedureStepEndTime": "X",
    "ScheduledProcedureStepLocation": "X",
    "ScheduledProcedureStepStartDate": "X",
    "ScheduledProcedureStepStartTime": "X",
    "ScheduledStationAETitle": "X",
    "ScheduledStationGeographicLocationCodeSequence": "X",
    "ScheduledStationName": "X",
    "ScheduledStationNameCodeSequence": "X",
    "ScheduledStudyLocation": "X",
    "ScheduledStudyLocationAETitle": "X",
    "SeriesDate": "X/D",
    "SeriesDescription": "X",
    "SeriesInstanceUID": "U",
    "SeriesTime": "X/D",
    "ServiceEpisodeDescription": "X",
    "ServiceEpisodeID": "X",
    "SmokingStatus": "X",
    "SOPInstanceUID": "U",
    "SourceImageSequence": "X/Z/U*",
    "SpecialNeeds": "X",
    "StationName": "X/Z/D",
    "StorageMediaFileSetUID": "U",
    "StudyComments": "X",
    "StudyDate": "Z",
    "StudyDescription": "X",
    "StudyID": "Z",
    "StudyIDIssuer": "X",
    "StudyInstanceUID": "U",
    "StudyTime": "Z",
    "SynchronizationFrameOfReferenceUID": "U",
    "TemplateExtensionCreatorUID": "U",
    "TemplateExtensionOrganizationUID": "U",
    "TextComments": "X",
    "TextString": "X",
    "TimezoneOffsetFromUTC": "X",
    "TopicAuthor": "X",
    "TopicKeywords": "X",
    "TopicSubject": "X",
    "TopicTitle": "X",
    "TransactionUID": "U",
    "UID": "U",
    "VerifyingObserverIdentificationCodeSequence": "Z",
    "VerifyingObserverName": "D",
    "VerifyingObserverSequence": "D",
    "VerifyingOrganization": "X",
    "VisitComments": "X",
}

# Attributes the profile empties that this module replaces instead, as the profile allows a dummy value:
# the pseudonym (so that a dataset can still be grouped by patient) and the shifted study date.
PSEUDONYMISED = {"PatientID", "PatientName"}
SHIFTED_DATES = {"StudyDate", "SeriesDate", "ContentDate", "AcquisitionDate"}

# Private elements that carry acquisition physics and nothing about the patient: (creator, group, element
# byte). Everything else private is removed.
SAFE_PRIVATE_TAGS: set[tuple[str, int, int]] = {
    ("SIEMENS MR HEADER", 0x0019, 0x0C),  # diffusion b-value
    ("GEMS_PARM_01", 0x0043, 0x39),  # slice intercept / b-value
}

# Modalities and SOP classes whose pixels often carry burned-in text (screen captures, ultrasound).
BURNED_IN_SUSPECT_MODALITIES = {"US", "OT", "SC", "XC", "ES", "DOC"}
DICOM_ROOT = "1.2.840.10008."
DEIDENTIFICATION_METHOD = "PS3.15 E.1 Basic Profile; Modified Dates Option"


def _tag(keyword: str) -> BaseTag:
    value = tag_for_keyword(keyword)
    if value is None:
        raise ValueError(f"{keyword} is not a DICOM keyword this pydicom knows")
    return Tag(value)


PROFILE_TAGS: dict[BaseTag, str] = {_tag(keyword): action for keyword, action in BASIC_PROFILE.items()}


def resolve_action(code: str) -> str:
    """The single action applied for a (possibly combined) code, the strictest it allows: X, then U, Z, D."""
    parts = {part.rstrip("*") for part in code.split("/")}
    for action in ("X", "U", "Z", "D"):
        if action in parts:
            return action
    return "K"


def keyed_digest(key: bytes, *parts: str) -> bytes:
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()


def patient_pseudonym(key: bytes, patient_id: str) -> str:
    """The same patient id gives the same pseudonym for the same project key, in every snapshot."""
    return "PSN-" + keyed_digest(key, "patient", patient_id).hex()[:16].upper()


def patient_day_shift(key: bytes, patient_id: str) -> int:
    """Days to subtract from every date of the patient: 30 to 3,679, fixed per project and patient."""
    return 30 + int.from_bytes(keyed_digest(key, "days", patient_id)[:4], "big") % 3650


def shift_date(value: str, days: int) -> str:
    """A DICOM DA (YYYYMMDD) moved back by ``days``; an unparseable value becomes empty (never kept)."""
    text = str(value).strip()
    try:
        day = dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return ""
    return (day - dt.timedelta(days=days)).strftime("%Y%m%d")


def _dummy(vr: str) -> Any:
    return {
        "PN": "ANONYMOUS^",  # with its caret: a family name, not the retired one-component form
        "DA": "19000101",
        "TM": "000000",
        "DT": "19000101000000",
        "UI": "",
        "IS": "0",
        "DS": "0",
        "SQ": [],
        "AS": "000Y",
    }.get(vr, "ANONYMISED" if vr in ("LO", "SH", "LT", "ST", "UT", "UC") else "")


@dataclass
class Deidentifier:
    """One snapshot's de-identification: the project key, the snapshot's UID salt, and the report counts."""

    key: bytes
    uid_salt: str
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (attribute, action) -> times
    private_removed: Counter[str] = field(default_factory=Counter)  # creator -> elements removed
    private_kept: Counter[str] = field(default_factory=Counter)
    burned_in: dict[str, str] = field(default_factory=dict)  # de-identified series UID -> why flagged
    datasets: int = 0
    _uids: dict[str, str] = field(default_factory=dict)
    _issued: set[str] = field(default_factory=set)

    # --- identifiers ---------------------------------------------------------------------------------

    def uid(self, original: str) -> str:
        """The snapshot's replacement for a UID: the same input always gives the same output; DICOM-defined
        UIDs and UIDs this de-identifier issued itself pass through."""
        original = str(original).strip().rstrip("\x00")
        if not original or original.startswith(DICOM_ROOT) or original in self._issued:
            return original
        new = self._uids.get(original)
        if new is None:
            digest = keyed_digest(self.key, "uid", self.uid_salt, original)
            new = f"2.25.{int.from_bytes(digest[:16], 'big')}"
            self._uids[original] = new
            self._issued.add(new)
        return new

    def issue_uid(self, *parts: str) -> str:
        """A new, reproducible UID for an object this snapshot creates (SEG series and instances)."""
        digest = keyed_digest(self.key, "new-uid", self.uid_salt, *parts)
        new = f"2.25.{int.from_bytes(digest[:16], 'big')}"
        self._issued.add(new)
        return new

    def issued(self, uid: str) -> bool:
        """Whether this de-identifier made the UID (a remapped or a new one)."""
        return uid in self._issued

    def pseudonym(self, patient_id: str) -> str:
        return patient_pseudonym(self.key, patient_id)

    def day_shift(self, patient_id: str) -> int:
        return patient_day_shift(self.key, patient_id)

    # --- datasets --------------------------------------------------------------------------------------

    def dataset(self, ds: Dataset, *, patient_id: str) -> Dataset:
        """De-identify ``ds`` in place (file meta included) and return it. ``patient_id`` is the original
        patient identifier the pseudonym and the date shift are derived from."""
        pseudonym = self.pseudonym(patient_id)
        days = self.day_shift(patient_id)
        self._walk(ds, pseudonym, days)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self.uid(meta.MediaStorageSOPInstanceUID)
            self.counts[("MediaStorageSOPInstanceUID", "U")] += 1
        self._flag_burned_in(ds)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
        code = Dataset()
        code.CodeValue = "113100"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = "Basic Application Confidentiality Profile"
        option = Dataset()
        option.CodeValue = "113107"
        option.CodingSchemeDesignator = "DCM"
        option.CodeMeaning = "Retain Longitudinal Temporal Information Modified Dates Option"
        ds.DeidentificationMethodCodeSequence = [code, option]
        self.datasets += 1
        return ds

    def _walk(self, ds: Dataset, pseudonym: str, days: int) -> None:
        for elem in list(ds):
            tag = elem.tag
            if tag.is_private:
                self._private(ds, elem)
                continue
            curve = tag.group & 0xFF00 == 0x5000
            overlay_text_or_data = tag.group & 0xFF00 == 0x6000 and tag.element in (0x3000, 0x4000)
            if curve or overlay_text_or_data:
                del ds[tag]
                self.counts[(f"({tag.group:04X},{tag.element:04X})", "X")] += 1
                continue
            code = PROFILE_TAGS.get(tag)
            name = keyword_for_tag(tag) or str(tag)
            if code is not None:
                self._apply(ds, elem, name, resolve_action(code), pseudonym, days)
                continue
            # Attributes the table does not name: shift dates, remap UIDs, clean nested items.
            if elem.VR == "SQ":
                for item in elem.value:
                    self._walk(item, pseudonym, days)
            elif elem.VR == "UI" and elem.value:
                self._remap(elem, name)
            elif elem.VR in ("DA", "DT") and elem.value:
                self._shift(elem, name, days)

    def _apply(self, ds: Dataset, elem: DataElement, name: str, action: str, pseudonym: str, days: int) -> None:
        if name in PSEUDONYMISED:
            # A person name needs a caret to read as one family-name component.
            elem.value = f"{pseudonym}^" if elem.VR == "PN" else pseudonym
            self.counts[(name, "pseudonym")] += 1
        elif name in SHIFTED_DATES and elem.value:
            self._shift(elem, name, days)
        elif action == "U":
            if elem.VR == "SQ":
                for item in elem.value:
                    self._walk(item, pseudonym, days)
            else:
                self._remap(elem, name)
        elif action == "X":
            del ds[elem.tag]
            self.counts[(name, "X")] += 1
        elif action == "Z":
            elem.value = [] if elem.VR == "SQ" else ""
            self.counts[(name, "Z")] += 1
        elif action == "D":
            if elem.VR == "SQ":
                for item in elem.value:
                    self._walk(item, pseudonym, days)
                    for sub in list(item):
                        if sub.VR in ("PN", "LO", "SH", "LT", "ST", "UT", "UC"):
                            sub.value = _dummy(sub.VR)
            else:
                elem.value = _dummy(elem.VR)
            self.counts[(name, "D")] += 1

    def _remap(self, elem: DataElement, name: str) -> None:
        if elem.VM > 1:
            elem.value = [self.uid(v) for v in elem.value]
        else:
            elem.value = self.uid(elem.value)
        self.counts[(name, "U")] += 1

    def _shift(self, elem: DataElement, name: str, days: int) -> None:
        values = elem.value if elem.VM > 1 else [elem.value]
        shifted = []
        for value in values:
            text = str(value)
            new = shift_date(text, days)
            shifted.append(new + text[8:] if elem.VR == "DT" and new else new)
        elem.value = shifted if elem.VM > 1 else shifted[0]
        self.counts[(name, "shifted")] += 1

    def _private(self, ds: Dataset, elem: DataElement) -> None:
        tag = elem.tag
        if tag.is_private_creator:
            return  # creators are dropped with their block below, or kept for a safe element
        creator_tag = Tag(tag.group, tag.element >> 8)
        creator = str(ds[creator_tag].value).strip() if creator_tag in ds else ""
        if (creator, tag.group, tag.element & 0xFF) in SAFE_PRIVATE_TAGS:
            self.private_kept[creator] += 1
            return
        del ds[tag]
        self.private_removed[creator or "(no creator)"] += 1
        # A creator whose block is now empty goes too.
        block = tag.element >> 8
        if creator_tag in ds and not any(
            t.group == tag.group and t.element >> 8 == block and t.element > 0xFF for t in ds.keys()
        ):
            del ds[creator_tag]

    def _flag_burned_in(self, ds: Dataset) -> None:
        series = str(ds.get("SeriesInstanceUID", ""))
        value = str(ds.get("BurnedInAnnotation", "")).upper()
        if value == "YES":
            self.burned_in[series] = "Burned In Annotation is YES: pixels may show identifying text"
        elif not value and str(ds.get("Modality", "")) in BURNED_IN_SUSPECT_MODALITIES:
            self.burned_in.setdefault(
                series, f"modality {ds.get('Modality')} often carries burned-in text and the flag is absent"
            )

    # --- report ----------------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        attributes: dict[str, dict[str, int]] = {}
        for (name, action), count in sorted(self.counts.items()):
            attributes.setdefault(name, {})[action] = count
        return {
            "profile": DEIDENTIFICATION_METHOD,
            "datasets": self.datasets,
            "attributes": attributes,
            "uids_remapped": len(self._uids),
            "private_removed": dict(sorted(self.private_removed.items())),
            "private_kept": dict(sorted(self.private_kept.items())),
            "burned_in_annotation": dict(sorted(self.burned_in.items())),
            "safe_private_tags": sorted(f"{c} ({g:04X},xx{e:02X})" for c, g, e in SAFE_PRIVATE_TAGS),
        }


def deidentify_for_ingest(ds: Dataset, *, key: bytes, uid_salt: str = "ingest") -> Dataset:
    """What an ingest path calls to store de-identified files: the same profile, UIDs remapped with a
    fixed salt (so every file of a study lands in the same remapped study), the project's pseudonym."""
    deid = Deidentifier(key=key, uid_salt=uid_salt)
    return deid.dataset(ds, patient_id=str(ds.get("PatientID", "")) or str(ds.get("StudyInstanceUID", "")))


def deidentify_incoming(files: Iterable[IncomingFile], *, key: bytes, uid_salt: str = "ingest") -> list[IncomingFile]:
    """Files in, de-identified files out, for any ingest door (upload, STOW-RS, ``manage.py ingest``) to call
    before ``imaging.services.ingest.ingest_files`` when a project wants nothing identifying stored at all. A
    file pydicom cannot parse is passed on unchanged, so that ingest rejects it with its usual reason."""
    deid = Deidentifier(key=key, uid_salt=uid_salt)
    result = []
    for incoming in files:
        try:
            ds = pydicom.dcmread(io.BytesIO(incoming.data))
        except Exception:  # not DICOM: ingest says why
            result.append(incoming)
            continue
        deid.dataset(ds, patient_id=str(ds.get("PatientID", "")) or str(ds.get("StudyInstanceUID", "")))
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        result.append(IncomingFile(incoming.name, buffer.getvalue()))
    return result
