"""WADO-RS frames in their own media type (PS3.18 Table 8.7.3-5): compressed frames go as stored, labelled
image/jp2, image/jls, image/jpeg or image/dicom-rle when the client accepts that type (by name, a wildcard or
a higher quality), as application/octet-stream when the client names that, and decoded on request."""

from __future__ import annotations

import io

import pydicom
import pytest
from django.test import Client, RequestFactory
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from annotation.models import Project
from imaging.dicomweb.common import parse_multipart_related
from imaging.dicomweb.wado import ENCAPSULATED_MEDIA_TYPES, _frame_media
from imaging.models import Instance
from imaging.services.ingest import IncomingFile, ingest_files
from tests.conftest import dataset_bytes
from tests.conftest import testdata_bytes as read_testdata
from tests.factories import place_studies

EXPLICIT_LE = "1.2.840.10008.1.2.1"
FILES = {
    "j2k": "JPEG2000.dcm",  # 1.2.840.10008.1.2.4.91
    "j2k_lossless": "MR_small_jp2klossless.dcm",  # .90
    "jls": "MR_small_jpeg_ls_lossless.dcm",  # .80
    "jpeg": "SC_rgb_jpeg_dcmtk.dcm",  # .50
    "rle": "SC_rgb_rle_2frame.dcm",  # 1.2.840.10008.1.2.5, two frames
    "native": "CT_small.dcm",
}


@pytest.fixture
def samples(project: Project) -> dict[str, Dataset]:
    datasets: dict[str, Dataset] = {}
    for key, name in FILES.items():
        # New UIDs: two of the MR samples are one image under the same UIDs, compressed two ways.
        ds = pydicom.dcmread(io.BytesIO(read_testdata(name)))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        datasets[key] = ds
    report = ingest_files([IncomingFile(name=key, data=dataset_bytes(ds)) for key, ds in datasets.items()])
    assert len(report.stored) == len(FILES)
    place_studies(project, report.study_uids)
    return datasets


def get_frames(client: Client, ds: Dataset, accept: str | None, frames: str = "1") -> tuple[int, str, list]:
    url = (
        f"/dicomweb/projects/chest/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/{frames}"
    )
    response = client.get(url, headers={"Accept": accept} if accept is not None else {})
    if response.status_code != 200:
        return response.status_code, response.json()["detail"], []
    return 200, response["Content-Type"], parse_multipart_related(response.content, response["Content-Type"])


def stored_frames(ds: Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(getattr(ds, "NumberOfFrames", 1))))


@pytest.mark.parametrize(
    ("key", "media", "syntax"),
    [
        ("j2k", "image/jp2", "1.2.840.10008.1.2.4.91"),
        ("j2k_lossless", "image/jp2", "1.2.840.10008.1.2.4.90"),
        ("jls", "image/jls", "1.2.840.10008.1.2.4.80"),
        ("jpeg", "image/jpeg", "1.2.840.10008.1.2.4.50"),
        ("rle", "image/dicom-rle", "1.2.840.10008.1.2.5"),
    ],
)
def test_compressed_frame_is_labelled_with_its_own_media_type_when_asked_for_it(
    manager_client: Client, samples: dict[str, Dataset], key: str, media: str, syntax: str
):
    ds = samples[key]
    status, content_type, parts = get_frames(manager_client, ds, f'multipart/related; type="{media}"')
    assert status == 200, content_type
    assert f'type="{media}"' in content_type
    assert parts == [(f"{media}; transfer-syntax={syntax}", stored_frames(ds)[0])]
    # Naming the stored transfer syntax is the same request.
    named = get_frames(manager_client, ds, f'multipart/related; type="{media}"; transfer-syntax={syntax}')
    assert named[2] == parts


@pytest.mark.parametrize(
    "accept", [None, "*/*", 'multipart/related; type="*/*"', 'multipart/related; type="image/*"', "multipart/*"]
)
def test_a_wildcard_gets_the_compressed_frame_in_its_own_media_type(
    manager_client: Client, samples: dict[str, Dataset], accept: str | None
):
    ds = samples["j2k"]
    status, content_type, parts = get_frames(manager_client, ds, accept)
    assert status == 200, content_type
    assert parts == [("image/jp2; transfer-syntax=1.2.840.10008.1.2.4.91", stored_frames(ds)[0])]


def test_native_frames_stay_octet_stream_and_are_no_image_type(manager_client: Client, samples: dict[str, Dataset]):
    ds = samples["native"]
    status, _, parts = get_frames(manager_client, ds, "*/*")
    assert status == 200
    assert parts == [(f"application/octet-stream; transfer-syntax={EXPLICIT_LE}", ds.PixelData)]
    status, detail, _ = get_frames(manager_client, ds, 'multipart/related; type="image/*"')
    assert status == 406
    assert "application/octet-stream" in detail


def test_octet_stream_named_by_the_client_gets_the_stored_codestream(
    manager_client: Client, samples: dict[str, Dataset]
):
    """What OHIF and Cornerstone ask for: the stored bytes, told apart by the transfer-syntax parameter."""
    ds = samples["j2k"]
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    status, _, parts = get_frames(manager_client, ds, accept)
    assert status == 200
    assert parts == [("application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.91", stored_frames(ds)[0])]


def test_earlier_name_of_the_rle_type_is_answered_in_kind(manager_client: Client, samples: dict[str, Dataset]):
    ds = samples["rle"]
    status, content_type, parts = get_frames(manager_client, ds, 'multipart/related; type="image/x-dicom-rle"', "2,1")
    assert status == 200, content_type
    first, second = stored_frames(ds)
    label = "image/x-dicom-rle; transfer-syntax=1.2.840.10008.1.2.5"
    assert parts == [(label, second), (label, first)]
    assert first != second


def test_quality_values_choose_between_the_types_the_client_names(manager_client: Client, samples: dict[str, Dataset]):
    ds = samples["j2k"]
    decoded = f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT_LE}'
    # Listed second, preferred by quality.
    status, _, parts = get_frames(manager_client, ds, f'{decoded}; q=0.5, multipart/related; type="image/jp2"')
    assert status == 200
    assert parts[0][0].startswith("image/jp2;")
    # q=0 refuses a type: the frame is decoded instead.
    status, _, parts = get_frames(manager_client, ds, f'multipart/related; type="image/jp2"; q=0, {decoded}')
    assert status == 200
    assert parts[0][0] == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert len(parts[0][1]) == ds.Rows * ds.Columns * ds.SamplesPerPixel * (ds.BitsAllocated // 8)


def test_another_image_type_or_syntax_than_stored_is_406(manager_client: Client, samples: dict[str, Dataset]):
    ds = samples["j2k"]
    status, detail, _ = get_frames(manager_client, ds, 'multipart/related; type="image/jls"')
    assert status == 406
    assert "image/jp2" in detail and "1.2.840.10008.1.2.4.91" in detail
    # No transcoding between JPEG 2000 flavours: lossy-capable .91 is not served as lossless-only .90.
    status, _, _ = get_frames(
        manager_client, ds, 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90'
    )
    assert status == 406


# PS3.18 Table 8.7.3-5: the media type of each compressed transfer syntax that is sent frame by frame.
STANDARD_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.110": "image/jxl",
    "1.2.840.10008.1.2.4.111": "image/jxl",
    "1.2.840.10008.1.2.4.112": "image/jxl",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


@pytest.mark.parametrize(("syntax", "media"), sorted(STANDARD_MEDIA_TYPES.items()))
def test_every_compressed_transfer_syntax_has_its_media_type(syntax: str, media: str):
    """Also the syntaxes without a sample file here (JPEG 2000 Part 2, HTJ2K, JPEG XL)."""
    instance = Instance(transfer_syntax_uid=syntax, is_encapsulated=True)
    for accept in (f'multipart/related; type="{media}"', "*/*"):
        request = RequestFactory().get("/", headers={"Accept": accept})
        assert _frame_media(request, instance) == (media, syntax, False), accept


def test_no_media_type_beyond_the_standard_table():
    assert ENCAPSULATED_MEDIA_TYPES == STANDARD_MEDIA_TYPES


# --- Bulk data: the Pixel Data bulk data URI (.../bulk/7FE00010) ----------------------------------------------
# PS3.18 (8.7.3.3): uncompressed bulk data is one part of application/octet-stream; compressed pixel data is
# one part per frame, each in the frames' own media type when the client accepts it (or octet-stream in the
# stored transfer syntax when that is what it names), never the frames' codestreams joined into one part.


def get_bulk(client: Client, ds: Dataset, accept: str | None) -> tuple[int, str, list]:
    url = (
        f"/dicomweb/projects/chest/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/bulk/7FE00010"
    )
    response = client.get(url, headers={"Accept": accept} if accept is not None else {})
    if response.status_code != 200:
        return response.status_code, response.json()["detail"], []
    return 200, response["Content-Type"], parse_multipart_related(response.content, response["Content-Type"])


def test_bulk_pixel_data_of_a_compressed_multiframe_is_one_part_per_frame(
    manager_client: Client, samples: dict[str, Dataset]
):
    ds = samples["rle"]
    status, content_type, parts = get_bulk(manager_client, ds, 'multipart/related; type="image/dicom-rle"')
    assert status == 200, content_type
    assert 'type="image/dicom-rle"' in content_type
    assert parts == [
        (f"image/dicom-rle; transfer-syntax={ds.file_meta.TransferSyntaxUID}", f) for f in stored_frames(ds)
    ]
    assert len(parts) == 2


def test_bulk_pixel_data_compressed_for_a_wildcard_or_octet_stream(manager_client: Client, samples: dict[str, Dataset]):
    ds = samples["rle"]
    syntax = ds.file_meta.TransferSyntaxUID
    _, _, wildcard = get_bulk(manager_client, ds, "*/*")
    assert [part_type for part_type, _ in wildcard] == [f"image/dicom-rle; transfer-syntax={syntax}"] * 2
    _, content_type, octet = get_bulk(
        manager_client, ds, 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    )
    assert 'type="application/octet-stream"' in content_type
    assert octet == [(f"application/octet-stream; transfer-syntax={syntax}", f) for f in stored_frames(ds)]


def test_bulk_pixel_data_of_a_jpeg2000_image_is_labelled_image_jp2(manager_client: Client, samples: dict[str, Dataset]):
    ds = samples["j2k"]
    status, content_type, parts = get_bulk(manager_client, ds, 'multipart/related; type="image/jp2"')
    assert status == 200, content_type
    assert parts == [(f"image/jp2; transfer-syntax={ds.file_meta.TransferSyntaxUID}", stored_frames(ds)[0])]


def test_bulk_pixel_data_decoded_on_request_is_one_native_part(manager_client: Client, samples: dict[str, Dataset]):
    ds = samples["rle"]
    accept = f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT_LE}'
    status, _, parts = get_bulk(manager_client, ds, accept)
    assert status == 200
    ((part_type, body),) = parts
    assert part_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert body == ds.pixel_array.tobytes()


def test_bulk_pixel_data_of_a_native_image_stays_one_octet_stream_part(
    manager_client: Client, samples: dict[str, Dataset]
):
    ds = samples["native"]
    status, _, parts = get_bulk(manager_client, ds, None)
    assert status == 200
    assert parts == [(f"application/octet-stream; transfer-syntax={EXPLICIT_LE}", ds.PixelData)]


def test_bulk_pixel_data_in_an_image_type_the_instance_is_not_stored_in_is_406(
    manager_client: Client, samples: dict[str, Dataset]
):
    status, detail, _ = get_bulk(manager_client, samples["rle"], 'multipart/related; type="image/jp2"')
    assert status == 406 and "image/dicom-rle" in detail
