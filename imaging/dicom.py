"""Reading one DICOM Part 10 file into what the index needs, rejecting what the store must not accept.

Parsing is header-only (``stop_before_pixels``); the Pixel Data element is located by hand so that its
byte offset can be stored and frames of uncompressed instances served with one seek.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from config.errors import ApplicationError

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
PIXEL_DATA_TAG = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF
ITEM_TAG = (0xFFFE, 0xE000)
SEQUENCE_DELIMITER_TAG = (0xFFFE, 0xE0DD)
# VRs whose explicit-VR header has two reserved bytes and a 4-byte length.
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
# Image storage SOP classes without one of these words in their name are treated as non-image
# objects (structured reports, RT structure sets, presentation states), which carry no pixels.
IMAGE_SOP_CLASS_WORDS = ("Image Storage", "Segmentation Storage")


class DicomRejected(ApplicationError):
    """A file the store refuses, with the reason a person can act on."""

    code = "rejected"


def is_valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and UID_PATTERN.match(value) is not None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    return str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(ds: Dataset, keyword: str) -> list[float] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        return None


def _per_frame_first(ds: Dataset, macro: str, keyword: str) -> Any:
    """A geometry attribute from the shared or first per-frame functional group of an enhanced object."""
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(group)
        if not seq:
            continue
        item = seq[0]
        inner = item.get(macro)
        if inner and keyword in inner[0]:
            return inner[0].get(keyword)
    return None


@dataclass
class ParsedInstance:
    """What the index stores about one file. ``data`` is the file as received."""

    data: bytes
    sha256: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    dataset: Dataset
    has_pixel_data: bool
    is_encapsulated: bool
    is_decodable: bool
    pixel_data_offset: int | None
    pixel_data_length: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int
    samples_per_pixel: int | None
    bits_allocated: int | None
    image_position: list[float] | None
    image_orientation: list[float] | None
    pixel_spacing: list[float] | None
    warnings: list[str] = field(default_factory=list)

    def full_dataset(self) -> Dataset:
        """The whole dataset, pixels included (the parse above stops before them)."""
        return pydicom.dcmread(io.BytesIO(self.data))

    @property
    def expected_native_length(self) -> int:
        bits = self.bits_allocated or 8
        total_bits = (
            (self.rows or 0) * (self.columns or 0) * (self.samples_per_pixel or 1) * self.number_of_frames * bits
        )
        return (total_bits + 7) // 8


def _locate_pixel_data(data: bytes, pos: int, implicit_vr: bool, little_endian: bool) -> tuple[int, int] | None:
    """Offset and length of the Pixel Data value, given the position where header parsing stopped.

    The length is UNDEFINED_LENGTH for encapsulated (compressed) pixel data.
    """
    if pos + 8 > len(data):
        return None
    endian = "<" if little_endian else ">"
    group, element = struct.unpack(endian + "HH", data[pos : pos + 4])
    if (group << 16) | element != PIXEL_DATA_TAG:
        return None
    if implicit_vr:
        (length,) = struct.unpack(endian + "L", data[pos + 4 : pos + 8])
        return pos + 8, length
    vr = data[pos + 4 : pos + 6]
    if vr in LONG_VRS:
        if pos + 12 > len(data):
            raise DicomRejected("Truncated DICOM: the file ends inside the Pixel Data header")
        (length,) = struct.unpack(endian + "L", data[pos + 8 : pos + 12])
        return pos + 12, length
    (length,) = struct.unpack(endian + "H", data[pos + 6 : pos + 8])
    return pos + 8, length


def _check_encapsulated_complete(data: bytes, offset: int, little_endian: bool) -> None:
    """Walk the fragment items up to the sequence delimiter; a file cut short never reaches it."""
    endian = "<" if little_endian else ">"
    pos = offset
    while True:
        if pos + 8 > len(data):
            raise DicomRejected("Truncated DICOM: the compressed pixel data ends before its last fragment")
        group, element, length = struct.unpack(endian + "HHL", data[pos : pos + 8])
        pos += 8
        if (group, element) == SEQUENCE_DELIMITER_TAG:
            return
        if (group, element) != ITEM_TAG:
            raise DicomRejected(f"Corrupt DICOM: unexpected tag ({group:04X},{element:04X}) in compressed pixel data")
        pos += length


def _check_header_complete(ds: Dataset, size: int, pos: int) -> None:
    """Reject a file cut short inside its header: pydicom stops quietly at the end of the data, even in the
    middle of an element, so the declared lengths are checked here."""
    meta_length = ds.file_meta.get("FileMetaInformationGroupLength")
    # 128-byte preamble, 'DICM' and the 12-byte group length element precede the rest of the meta group.
    if isinstance(meta_length, int) and 144 + meta_length > size:
        raise DicomRejected("Truncated DICOM: the file ends inside the file meta information")
    last: RawDataElement | None = None
    for tag in ds.keys():
        element = ds.get_item(tag)
        if not isinstance(element, RawDataElement):
            last = None
            continue
        last = element
        value = element.value
        if element.length != UNDEFINED_LENGTH and isinstance(value, bytes) and len(value) < element.length:
            raise DicomRejected(f"Truncated DICOM: the file ends inside the value of element {tag}")
    if pos < size:
        return  # parsing stopped at the Pixel Data element, which is checked separately
    if len(ds.keys()) == 0:
        raise DicomRejected("Truncated DICOM: the file ends after the file meta information, before any data set")
    if last is not None and last.length != UNDEFINED_LENGTH and last.value_tell + last.length < size:
        raise DicomRejected("Truncated DICOM: the file ends inside the header of a data element")


def _decoder_available(transfer_syntax: UID) -> bool:
    try:
        from pydicom.pixels import get_decoder

        return bool(get_decoder(transfer_syntax).is_available)
    except (NotImplementedError, ValueError, KeyError):
        return False


def is_image_sop_class(sop_class_uid: str) -> bool:
    name = UID(sop_class_uid).name
    return any(word in name for word in IMAGE_SOP_CLASS_WORDS)


def parse_part10(data: bytes) -> ParsedInstance:
    """Parse and validate one file; raise DicomRejected naming the problem."""
    if len(data) == 0:
        raise DicomRejected("Empty file")
    if len(data) < 132 or data[128:132] != b"DICM":
        raise DicomRejected("Not a DICOM Part 10 file: the 'DICM' prefix after the 128-byte preamble is missing")
    buffer = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(buffer, stop_before_pixels=True)
            pos = buffer.tell()
            # Offsets of a deflated data set are in the inflated stream, not in ``data``.
            syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
            if not (syntax.is_transfer_syntax and syntax.is_deflated):
                _check_header_complete(ds, len(data), pos)
            # Touch every element so that a value cut off by truncation fails here, not later.
            for _ in ds.iterall():
                pass
    except DicomRejected:
        raise
    except Exception as exc:  # untrusted bytes: any pydicom failure (e.g. BytesLengthException) is a rejection
        raise DicomRejected(f"Truncated or corrupt DICOM: {exc}") from exc

    meta = ds.file_meta
    transfer_syntax = meta.get("TransferSyntaxUID")
    if not transfer_syntax:
        raise DicomRejected("Missing Transfer Syntax UID in the file meta information")
    transfer_syntax = UID(str(transfer_syntax))
    if not transfer_syntax.is_transfer_syntax:
        raise DicomRejected(f"Unknown Transfer Syntax UID {transfer_syntax}")

    uids = {}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        value = _text(ds, keyword)
        if not value:
            # An image cut short exactly between two elements parses cleanly up to the cut.
            meta_class = str(meta.get("MediaStorageSOPClassUID", ""))
            cut_image = pos >= len(data) and is_valid_uid(meta_class) and is_image_sop_class(meta_class)
            hint = " (the file may be truncated: it ends before its Pixel Data)" if cut_image else ""
            raise DicomRejected(f"Missing {keyword}{hint}", code="missing_uid")
        if not is_valid_uid(value):
            raise DicomRejected(f"Malformed {keyword}: {value!r}", code="malformed_uid")
        uids[keyword] = value

    implicit = transfer_syntax.is_implicit_VR
    little = transfer_syntax.is_little_endian
    located = _locate_pixel_data(data, pos, implicit, little)
    has_pixels = located is not None
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames") or 1
    parsed_warnings: list[str] = []
    is_encapsulated = False
    offset: int | None = None
    length: int | None = None
    decodable = True

    if not has_pixels:
        if is_image_sop_class(uids["SOPClassUID"]):
            raise DicomRejected(
                f"No Pixel Data in an image object ({UID(uids['SOPClassUID']).name})", code="no_pixel_data"
            )
        decodable = False
    else:
        assert located is not None
        offset, length = located
        if not rows or not columns:
            raise DicomRejected("Pixel Data present but Rows or Columns missing", code="no_geometry")
        if length == UNDEFINED_LENGTH:
            is_encapsulated = True
            _check_encapsulated_complete(data, offset, little)
            length = None
        elif offset + length > len(data):
            raise DicomRejected(
                f"Truncated DICOM: Pixel Data declares {length} bytes but only {len(data) - offset} are present"
            )
        decodable = _decoder_available(transfer_syntax)
        if not decodable:
            parsed_warnings.append(
                f"Transfer syntax {transfer_syntax.name} ({transfer_syntax}) cannot be decoded here: "
                "stored, flagged as not decodable"
            )

    parsed = ParsedInstance(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        transfer_syntax_uid=str(transfer_syntax),
        dataset=ds,
        has_pixel_data=has_pixels,
        is_encapsulated=is_encapsulated,
        is_decodable=decodable,
        pixel_data_offset=offset,
        pixel_data_length=length,
        rows=rows,
        columns=columns,
        number_of_frames=frames,
        samples_per_pixel=_int(ds, "SamplesPerPixel"),
        bits_allocated=_int(ds, "BitsAllocated"),
        image_position=_floats(ds, "ImagePositionPatient")
        or _as_floats(_per_frame_first(ds, "PlanePositionSequence", "ImagePositionPatient")),
        image_orientation=_floats(ds, "ImageOrientationPatient")
        or _as_floats(_per_frame_first(ds, "PlaneOrientationSequence", "ImageOrientationPatient")),
        pixel_spacing=_floats(ds, "PixelSpacing")
        or _as_floats(_per_frame_first(ds, "PixelMeasuresSequence", "PixelSpacing")),
        warnings=parsed_warnings,
    )
    if has_pixels and not is_encapsulated and length is not None and length < parsed.expected_native_length:
        raise DicomRejected(
            f"Pixel Data holds {length} bytes, fewer than the {parsed.expected_native_length} that "
            f"{frames} frame(s) of {rows}x{columns} need"
        )
    return parsed


def _as_floats(value: Any) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        return None


def header_json(ds: Dataset) -> dict[str, Any]:
    """DICOM JSON of the header. Large binary values are left out; Pixel Data is added when served."""

    def drop_bulk(element: Any) -> str:
        return ""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result: dict[str, Any] = ds.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=drop_bulk)
    for tag, value in list(result.items()):
        if value.get("BulkDataURI") == "":
            del value["BulkDataURI"]
            result[tag] = value
    return result
