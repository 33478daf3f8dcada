"""RT Structure Sets: contours from label masks, slice by slice, and masks from contours.

No kept library writes RTSTRUCT without heavy dependencies (rt-utils needs OpenCV), so the object is built
with pydicom; the contours come from contourpy's marching squares (already installed with matplotlib).

Contours are traced at level 0.5 of each slice's binary mask, so every vertex lies half-way between the
centre of a labelled pixel and the centre of an unlabelled neighbour. Filling them back by the rule "a pixel
belongs when its centre is inside" (even-odd, so that a contour nested in another is a hole, the usual
reading of RTSTRUCT) gives the original mask back; only what other tools do to contours (smoothing,
resampling) would make it lossy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import contourpy
import numpy as np
from pydicom import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
# The Study Component Management SOP Class: what RTReferencedStudySequence names by tradition (PS3.3 C.8.8.5).
STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.2"
IMPLEMENTATION_CLASS_UID = "2.25.157284094718274315082135098327051938401"
COPIED_FROM_SOURCE = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)


def mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Closed contours of a 2D binary mask as (N, 2) arrays of (column, row) pixel coordinates, without the
    repeated closing point and without vertices in the middle of straight runs."""
    if not mask.any():
        return []
    padded = np.pad(mask.astype(np.float64), 1)
    generator = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate)
    contours = []
    for line in generator.lines(0.5):
        points = np.asarray(line, dtype=np.float64) - 1.0
        if len(points) > 1 and np.allclose(points[0], points[-1]):
            points = points[:-1]
        points = _drop_collinear(points)
        if len(points) >= 3:
            contours.append(points)
    return contours


def _drop_collinear(points: np.ndarray) -> np.ndarray:
    previous = np.roll(points, 1, axis=0)
    following = np.roll(points, -1, axis=0)
    a, b = points - previous, following - points
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return points[np.abs(cross) > 1e-9]


def fill_contours(contours: Sequence[np.ndarray], rows: int, columns: int) -> np.ndarray:
    """The pixels whose centres lie inside the contours ((column, row) coordinates), by the even-odd rule."""
    inside = np.zeros((rows, columns), dtype=bool)
    ys = np.arange(rows, dtype=np.float64)
    xs = np.arange(columns, dtype=np.float64)
    for contour in contours:
        x0, y0 = contour[:, 0], contour[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        # Crossings of each row's centre line with each edge (half-open in y, so a vertex counts once).
        lower, upper = np.minimum(y0, y1), np.maximum(y0, y1)
        spans = (ys[:, None] >= lower[None, :]) & (ys[:, None] < upper[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (ys[:, None] - y0[None, :]) / (y1 - y0)[None, :]
        cross_x = x0[None, :] + t * (x1 - x0)[None, :]
        for r in np.nonzero(spans.any(axis=1))[0]:
            crossings = np.sort(cross_x[r, spans[r]])
            count = (xs[None, :] > crossings[:, None]).sum(axis=0)
            inside[r] ^= (count % 2).astype(bool)
    return inside


@dataclass(frozen=True)
class Roi:
    number: int
    name: str
    colour: tuple[int, int, int]
    mask: np.ndarray  # (slices, rows, columns) bool


def _pixel_to_patient(
    points: np.ndarray, position: np.ndarray, orientation: np.ndarray, spacing: Sequence[float]
) -> np.ndarray:
    """(column, row) pixel coordinates of one image -> patient coordinates (LPS, mm), flat [x, y, z, ...]."""
    row_cosine, column_cosine = orientation[:3], orientation[3:]
    row_spacing, column_spacing = float(spacing[0]), float(spacing[1])
    xyz = (
        position[None, :]
        + points[:, 0:1] * column_spacing * row_cosine[None, :]
        + points[:, 1:2] * row_spacing * column_cosine[None, :]
    )
    return xyz.reshape(-1)


def _ds_text(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def build_rtstruct(
    *,
    sources: Sequence[Dataset],
    rois: Sequence[Roi],
    series_instance_uid: str,
    sop_instance_uid: str,
    label: str,
    description: str,
    manufacturer: str,
    date: str,
) -> Dataset:
    """An RT Structure Set over ``sources`` (the series' images in slice order, the masks' first axis)."""
    first = sources[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(RT_STRUCTURE_SET_STORAGE)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    ds = Dataset()
    ds.file_meta = meta
    for keyword in COPIED_FROM_SOURCE:
        if keyword in first:
            ds[keyword] = first[keyword]
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = "000000"
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = 901
    ds.SeriesDescription = description[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = manufacturer
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDate = date
    ds.StructureSetTime = "000000"
    frames = {str(source.get("FrameOfReferenceUID", "")) for source in sources}
    if len(frames) != 1:
        raise ValueError(f"the images lie in {len(frames)} Frames of Reference; contours need one")
    frame_of_reference = str(first.FrameOfReferenceUID)
    # The Frame of Reference module (mandatory in the RT Structure Set IOD since 2019): the images' own.
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")

    def image_ref(source: Dataset) -> Dataset:
        item = Dataset()
        item.ReferencedSOPClassUID = source.SOPClassUID
        item.ReferencedSOPInstanceUID = source.SOPInstanceUID
        return item

    series_ref = Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    series_ref.ContourImageSequence = DicomSequence([image_ref(s) for s in sources])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = STUDY_COMPONENT_MANAGEMENT
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = DicomSequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = frame_of_reference
    frame_ref.RTReferencedStudySequence = DicomSequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_ref])

    structure_rois, roi_contours, observations = [], [], []
    for roi in rois:
        item = Dataset()
        item.ROINumber = roi.number
        item.ReferencedFrameOfReferenceUID = frame_of_reference
        item.ROIName = roi.name[:64]
        item.ROIGenerationAlgorithm = "MANUAL"
        structure_rois.append(item)
        contours: list[Dataset] = []
        for z, source in enumerate(sources):
            position = np.asarray(source.ImagePositionPatient, dtype=np.float64)
            orientation = np.asarray(source.ImageOrientationPatient, dtype=np.float64)
            for points in mask_contours(roi.mask[z]):
                contour = Dataset()
                contour.ContourImageSequence = DicomSequence([image_ref(source)])
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = len(points)
                contour.ContourNumber = len(contours) + 1
                coordinates = _pixel_to_patient(points, position, orientation, source.PixelSpacing)
                contour.ContourData = [_ds_text(v) for v in coordinates]
                contours.append(contour)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = roi.number
        roi_contour.ROIDisplayColor = list(roi.colour)
        roi_contour.ContourSequence = DicomSequence(contours)
        roi_contours.append(roi_contour)
        observation = Dataset()
        observation.ObservationNumber = roi.number
        observation.ReferencedROINumber = roi.number
        observation.RTROIInterpretedType = ""
        observation.ROIInterpreter = ""
        observations.append(observation)
    ds.StructureSetROISequence = DicomSequence(structure_rois)
    ds.ROIContourSequence = DicomSequence(roi_contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    return ds


def rtstruct_masks(rtstruct: Dataset, images: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """ROI name -> (slices, rows, columns) mask over ``images`` (the referenced series in slice order),
    filled from the contours. A contour on an image not in ``images`` raises ValueError naming it."""
    index = {str(image.SOPInstanceUID): z for z, image in enumerate(images)}
    rows, columns = int(images[0].Rows), int(images[0].Columns)
    names = {int(item.ROINumber): str(item.ROIName) for item in rtstruct.StructureSetROISequence}
    result: dict[str, np.ndarray] = {}
    for roi_contour in rtstruct.get("ROIContourSequence", []):
        name = names.get(int(roi_contour.ReferencedROINumber), str(roi_contour.ReferencedROINumber))
        per_slice: dict[int, list[np.ndarray]] = {}
        for contour in roi_contour.get("ContourSequence", []):
            uid = str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)
            if uid not in index:
                raise ValueError(f"a contour of ROI {name!r} lies on image {uid}, which is not in the series")
            image = images[index[uid]]
            position = np.asarray(image.ImagePositionPatient, dtype=np.float64)
            orientation = np.asarray(image.ImageOrientationPatient, dtype=np.float64)
            row_spacing, column_spacing = (float(v) for v in image.PixelSpacing)
            xyz = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3) - position[None, :]
            points = np.stack([xyz @ orientation[:3] / column_spacing, xyz @ orientation[3:] / row_spacing], axis=1)
            per_slice.setdefault(index[uid], []).append(points)
        mask = np.zeros((len(images), rows, columns), dtype=bool)
        for z, contours in per_slice.items():
            mask[z] = fill_contours(contours, rows, columns)
        result[name] = mask
    return result
