"""Pixel access for stored instances: raw frames by byte offset, decoded frames, and rendered images."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
from django.core.files.storage import default_storage
from PIL import Image
from pydicom.encaps import generate_frames

from config.errors import ApplicationError, NotFoundError
from imaging.models import Instance

NATIVE_TRANSFER_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"


def _meta_value(instance: Instance, tag: str, default: Any = None) -> Any:
    try:
        return instance.metadata[tag]["Value"][0]
    except (KeyError, IndexError, TypeError):
        return default


def check_frame_numbers(instance: Instance, frames: list[int]) -> None:
    if not instance.has_pixel_data:
        raise NotFoundError(f"Instance {instance.sop_instance_uid} has no pixel data")
    for number in frames:
        if number < 1 or number > instance.number_of_frames:
            raise NotFoundError(
                f"Frame {number} does not exist: instance {instance.sop_instance_uid} "
                f"has {instance.number_of_frames} frame(s)"
            )


def read_file(instance: Instance) -> bytes:
    with default_storage.open(instance.file, "rb") as handle:
        return handle.read()


def stored_frames(instance: Instance, frames: list[int]) -> list[bytes]:
    """Frames as stored: uncompressed bytes by offset, or the compressed bitstream of each frame."""
    check_frame_numbers(instance, frames)
    if not instance.is_encapsulated and instance.pixel_data_offset is not None:
        length = instance.frame_length
        result = []
        with default_storage.open(instance.file, "rb") as handle:
            for number in frames:
                handle.seek(instance.pixel_data_offset + (number - 1) * length)
                result.append(handle.read(length))
        return result
    data = read_file(instance)
    assert instance.pixel_data_offset is not None
    all_frames = list(generate_frames(data[instance.pixel_data_offset :], number_of_frames=instance.number_of_frames))
    return [all_frames[number - 1] for number in frames]


def decoded_frame(instance: Instance, number: int) -> np.ndarray:
    """One frame as an array of stored values (no rescale), decoded with pydicom."""
    check_frame_numbers(instance, [number])
    if not instance.is_decodable:
        raise ApplicationError(
            f"Pixel data of {instance.sop_instance_uid} cannot be decoded here ({instance.transfer_syntax_uid})",
            code="not_decodable",
        )
    if not instance.is_encapsulated and instance.transfer_syntax_uid != EXPLICIT_VR_BIG_ENDIAN:
        raw = stored_frames(instance, [number])[0]
        signed = int(_meta_value(instance, "00280103", 0)) == 1
        bits = instance.bits_allocated or 8
        dtype = np.dtype(f"{'i' if signed else 'u'}{max(bits // 8, 1)}").newbyteorder("<")
        samples = instance.samples_per_pixel or 1
        shape = (instance.rows or 0, instance.columns or 0) + ((samples,) if samples > 1 else ())
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    ds = pydicom.dcmread(io.BytesIO(read_file(instance)))
    return np.asarray(ds.pixel_array if instance.number_of_frames == 1 else ds.pixel_array[number - 1])


def native_frame_bytes(instance: Instance, number: int) -> bytes:
    """A frame as Explicit VR Little Endian bytes, decoding compressed (or byte-swapping big endian) data."""
    if not instance.is_encapsulated and instance.transfer_syntax_uid != EXPLICIT_VR_BIG_ENDIAN:
        return stored_frames(instance, [number])[0]
    array = decoded_frame(instance, number)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def parse_window(value: str | None) -> tuple[float, float] | None:
    if not value:
        return None
    parts = value.split(",")
    if len(parts) < 2:
        raise ApplicationError("window must be 'center,width[,function]'", code="bad_query")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise ApplicationError("window center and width must be numbers", code="bad_query") from exc
    if width <= 0:
        raise ApplicationError("window width must be positive", code="bad_query")
    return center, width


def render_frame(
    instance: Instance, number: int, media_type: str, window: tuple[float, float] | None, quality: int = 90
) -> bytes:
    """Render a frame as PNG or JPEG: rescale to modality units, apply the window, 8 bits per sample."""
    array = decoded_frame(instance, number)
    samples = instance.samples_per_pixel or 1
    if samples == 1:
        slope = float(_meta_value(instance, "00281053", 1.0) or 1.0)
        intercept = float(_meta_value(instance, "00281052", 0.0) or 0.0)
        values = array.astype(np.float64) * slope + intercept
        if window is None:
            center = _meta_value(instance, "00281050")
            width = _meta_value(instance, "00281051")
            if center is not None and width is not None and float(width) > 0:
                window = (float(center), float(width))
        if window is None:
            low, high = float(values.min()), float(values.max())
        else:
            # The linear VOI function of PS3.3 C.11.2.1.2, mapped to 0..255.
            center, width = window
            low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
        scale = 255.0 / max(high - low, 1e-6)
        out = np.clip((values - low) * scale, 0, 255).astype(np.uint8)
        if str(_meta_value(instance, "00280004", "")).upper() == "MONOCHROME1":
            out = 255 - out
        image = Image.fromarray(out, mode="L")
    else:
        image = Image.fromarray(np.asarray(array, dtype=np.uint8), mode="RGB")
    buffer = io.BytesIO()
    if media_type == "image/png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
