"""DICOMweb against the local store, through a real HTTP server (``live_server``) and the real
dicomweb-client: STOW-RS into a project, QIDO-RS search, WADO-RS metadata, frames, instances, bulk data
and rendered images, compared with what pydicom reads from the files that were sent."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token

from annotation.models import Membership, Project, Role
from imaging.models import Instance, Study
from imaging.services.ingest import IncomingFile, ingest_files
from imaging.synthetic import generate_ct_study
from tests.conftest import dataset_bytes, stored_files
from tests.conftest import testdata_bytes as read_testdata
from tests.factories import place_studies

EXPLICIT_LE = "1.2.840.10008.1.2.1"
SLICES = 8


def read(name: str) -> Dataset:
    return pydicom.dcmread(io.BytesIO(read_testdata(name)))


def fresh(ds: Dataset) -> Dataset:
    """The same image under new Study, Series and SOP Instance UIDs."""
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def synthetic(seed: int) -> list[Dataset]:
    return list(generate_ct_study(seed=seed, rows=64, columns=64, slices=SLICES, n_lesions=0).datasets())


def path_of(url: str) -> str:
    """dicomweb-client sends ``Host`` without the port, so URLs the server builds lose it: compare paths."""
    return urlsplit(url).path


def server_url(live_server: Any) -> str:
    # An IPv4 literal: "localhost" may be tried as ::1 first, which costs every request a failed connect.
    return str(live_server.url).replace("://localhost:", "://127.0.0.1:")


def token_session(key: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {key}"
    return session


def frame_array(data: bytes, reference: np.ndarray) -> np.ndarray:
    """Native frame bytes read with the dtype (little endian) and shape of pydicom's decode."""
    return np.frombuffer(data, dtype=reference.dtype.newbyteorder("<")).reshape(reference.shape)


def png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@dataclass
class Stored:
    client: DICOMwebClient
    session: requests.Session
    root: str
    series: list[Dataset]
    ct: Dataset
    j2k: Dataset
    rle: Dataset
    response: Dataset

    @property
    def all(self) -> list[Dataset]:
        return [*self.series, self.ct, self.j2k, self.rle]

    def url(self, ds: Dataset) -> str:
        return f"{self.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


@pytest.fixture
def stored(live_server: Any, project: Project, manager: User, token_for: Callable[[User], str]) -> Stored:
    session = token_session(token_for(manager))
    root = f"{server_url(live_server)}/dicomweb/projects/{project.slug}"
    client = DICOMwebClient(url=root, session=session)
    series = synthetic(seed=11)
    ct, j2k, rle = read("CT_small.dcm"), read("JPEG2000.dcm"), read("SC_rgb_rle_2frame.dcm")
    response = client.store_instances([*series, ct, j2k, rle])
    return Stored(client, session, root, series, ct, j2k, rle, response)


# --- STOW-RS ---------------------------------------------------------------------------------------


def test_stow_reports_every_instance_and_stores_files(stored: Stored, isolated_storage: Path, project: Project):
    referenced = stored.response.ReferencedSOPSequence
    assert sorted(item.ReferencedSOPInstanceUID for item in referenced) == sorted(
        ds.SOPInstanceUID for ds in stored.all
    )
    assert "FailedSOPSequence" not in stored.response
    for item in referenced:
        assert path_of(item.RetrieveURL).startswith(path_of(stored.root) + "/studies/")
        assert item.RetrieveURL.endswith(f"/instances/{item.ReferencedSOPInstanceUID}")
    assert len(stored_files(isolated_storage)) == len(stored.all)
    linked = set(project.image_store.studies.values_list("study_instance_uid", flat=True))
    assert linked == {ds.StudyInstanceUID for ds in stored.all}


def test_stow_raw_response_has_referenced_sop_sequence(stored: Stored):
    ds = synthetic(seed=12)[0]
    boundary = "stow-boundary-1234"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + dataset_bytes(ds)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = stored.session.post(
        f"{stored.root}/studies",
        data=body,
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/dicom+json")
    payload = response.json()
    assert payload["00081199"]["vr"] == "SQ"
    assert payload["00081199"]["Value"][0]["00081155"]["Value"] == [ds.SOPInstanceUID]
    assert "00081198" not in payload


def test_stow_of_same_files_again_is_idempotent(stored: Stored, isolated_storage: Path):
    again = stored.client.store_instances([stored.ct, stored.series[0]])
    assert sorted(i.ReferencedSOPInstanceUID for i in again.ReferencedSOPSequence) == sorted(
        [stored.ct.SOPInstanceUID, stored.series[0].SOPInstanceUID]
    )
    assert Instance.objects.count() == len(stored.all)
    assert len(stored_files(isolated_storage)) == len(stored.all)


# --- QIDO-RS ---------------------------------------------------------------------------------------


def uids(results: list[dict[str, Any]], tag: str) -> list[str]:
    return [item[tag]["Value"][0] for item in results]


def test_search_for_studies_filters(stored: Stored):
    client = stored.client
    everything = {ds.StudyInstanceUID for ds in stored.all}
    assert set(uids(client.search_for_studies(), "0020000D")) == everything
    assert len(client.search_for_studies()) == 4

    syn = stored.series[0]
    by_id = client.search_for_studies(search_filters={"PatientID": syn.PatientID})
    assert uids(by_id, "0020000D") == [syn.StudyInstanceUID]
    assert by_id[0]["00201208"]["Value"] == [SLICES]
    assert by_id[0]["00201206"]["Value"] == [1]
    assert by_id[0]["00100010"]["Value"] == [{"Alphabetic": str(syn.PatientName)}]
    assert path_of(by_id[0]["00081190"]["Value"][0]) == path_of(f"{stored.root}/studies/{syn.StudyInstanceUID}")

    wildcard = client.search_for_studies(search_filters={"PatientName": "CompressedSamples^*"})
    assert set(uids(wildcard, "0020000D")) == {stored.ct.StudyInstanceUID, stored.j2k.StudyInstanceUID}
    single = client.search_for_studies(search_filters={"PatientName": "Synthetic^patient ?1"})
    assert uids(single, "0020000D") == [syn.StudyInstanceUID]
    assert client.search_for_studies(search_filters={"PatientName": "Nobody*"}) == []

    in_2004 = client.search_for_studies(search_filters={"StudyDate": "20040101-20041231"})
    assert set(uids(in_2004, "0020000D")) == {stored.ct.StudyInstanceUID, stored.j2k.StudyInstanceUID}
    since = client.search_for_studies(search_filters={"StudyDate": f"{stored.rle.StudyDate}-"})
    assert uids(since, "0020000D") == [stored.rle.StudyInstanceUID]
    exact = client.search_for_studies(search_filters={"StudyDate": stored.ct.StudyDate})
    assert uids(exact, "0020000D") == [stored.ct.StudyInstanceUID]

    by_modality = client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    assert set(uids(by_modality, "0020000D")) == {syn.StudyInstanceUID, stored.ct.StudyInstanceUID}


def test_search_for_studies_paging_and_includefield(stored: Stored):
    client = stored.client
    ordered = uids(client.search_for_studies(), "0020000D")
    dates = [ds.StudyDate for ds in sorted(stored.all[SLICES - 1 :], key=lambda d: d.StudyDate, reverse=True)]
    assert [r["00080020"]["Value"][0] for r in client.search_for_studies()] == dates
    first = uids(client.search_for_studies(limit=2), "0020000D")
    second = uids(client.search_for_studies(limit=2, offset=2), "0020000D")
    assert first == ordered[:2] and second == ordered[2:]
    assert client.search_for_studies(limit=2, offset=4) == []

    syn = stored.series[0]
    plain = client.search_for_studies(search_filters={"PatientID": syn.PatientID})[0]
    assert "00080070" not in plain  # Manufacturer is not a default study attribute
    included = client.search_for_studies(search_filters={"PatientID": syn.PatientID}, fields=["Manufacturer"])[0]
    assert included["00080070"]["Value"] == ["Synthetic"]
    assert "00180050" not in included  # only what was asked for
    everything = client.search_for_studies(search_filters={"PatientID": syn.PatientID}, fields=["all"])[0]
    assert everything["00080070"]["Value"] == ["Synthetic"]
    assert "00080060" not in everything  # a series attribute, not a study one


def test_search_for_series_and_instances(stored: Stored):
    client = stored.client
    syn = stored.series
    series = client.search_for_series(syn[0].StudyInstanceUID)
    assert uids(series, "0020000E") == [syn[0].SeriesInstanceUID]
    assert series[0]["00201209"]["Value"] == [SLICES]
    assert series[0]["00080060"]["Value"] == ["CT"]
    everything = client.search_for_series()
    assert {s["0020000E"]["Value"][0] for s in everything} == {ds.SeriesInstanceUID for ds in stored.all}
    assert len(everything) == 4
    ct_series = client.search_for_series(search_filters={"Modality": "CT"})
    assert set(uids(ct_series, "0020000E")) == {syn[0].SeriesInstanceUID, stored.ct.SeriesInstanceUID}
    by_patient = client.search_for_series(search_filters={"PatientID": stored.rle.PatientID})
    assert uids(by_patient, "0020000E") == [stored.rle.SeriesInstanceUID]

    instances = client.search_for_instances(syn[0].StudyInstanceUID, syn[0].SeriesInstanceUID)
    assert uids(instances, "00080018") == [ds.SOPInstanceUID for ds in syn]  # in InstanceNumber order
    assert [i["00200013"]["Value"][0] for i in instances] == list(range(1, SLICES + 1))
    assert all(i["00280010"]["Value"] == [64] for i in instances)
    page = client.search_for_instances(syn[0].StudyInstanceUID, syn[0].SeriesInstanceUID, limit=3, offset=3)
    assert uids(page, "00080018") == [ds.SOPInstanceUID for ds in syn[3:6]]
    in_study = client.search_for_instances(syn[0].StudyInstanceUID)
    assert len(in_study) == SLICES
    one = client.search_for_instances(search_filters={"SOPInstanceUID": stored.rle.SOPInstanceUID})
    assert uids(one, "00080018") == [stored.rle.SOPInstanceUID]
    assert one[0]["00280008"]["Value"] == [2]
    assert len(client.search_for_instances()) == len(stored.all)
    with_field = client.search_for_instances(
        syn[0].StudyInstanceUID, syn[0].SeriesInstanceUID, fields=["SliceLocation"], limit=1
    )
    assert float(with_field[0]["00201041"]["Value"][0]) == float(syn[0].SliceLocation)


# --- WADO-RS metadata ------------------------------------------------------------------------------


def assert_header_matches(item: dict[str, Any], ds: Dataset, stored: Stored):
    assert item["00080018"]["Value"] == [ds.SOPInstanceUID]
    assert item["00280010"]["Value"] == [ds.Rows]
    assert item["00280011"]["Value"] == [ds.Columns]
    assert item["00020010"]["Value"] == [ds.file_meta.TransferSyntaxUID]
    if "PixelSpacing" in ds:
        assert [float(v) for v in item["00280030"]["Value"]] == [float(v) for v in ds.PixelSpacing]
    if "ImagePositionPatient" in ds:
        assert [float(v) for v in item["00200032"]["Value"]] == [float(v) for v in ds.ImagePositionPatient]
    assert path_of(item["7FE00010"]["BulkDataURI"]) == path_of(f"{stored.url(ds)}/bulk/7FE00010")
    assert "Value" not in item["7FE00010"] and "InlineBinary" not in item["7FE00010"]


def test_metadata_matches_the_stored_files(stored: Stored):
    client = stored.client
    syn = stored.series
    by_uid = {ds.SOPInstanceUID: ds for ds in syn}
    study = client.retrieve_study_metadata(syn[0].StudyInstanceUID)
    assert sorted(item["00080018"]["Value"][0] for item in study) == sorted(by_uid)
    for item in study:
        assert_header_matches(item, by_uid[item["00080018"]["Value"][0]], stored)

    series = client.retrieve_series_metadata(stored.ct.StudyInstanceUID, stored.ct.SeriesInstanceUID)
    assert len(series) == 1
    assert_header_matches(series[0], stored.ct, stored)

    item = client.retrieve_instance_metadata(
        stored.j2k.StudyInstanceUID, stored.j2k.SeriesInstanceUID, stored.j2k.SOPInstanceUID
    )
    assert_header_matches(item, stored.j2k, stored)
    assert item["00100010"]["Value"] == [{"Alphabetic": "CompressedSamples^NM1"}]
    # The whole header, bulk data aside, survives: pydicom reads the JSON back into the same values.
    header = Dataset.from_json({k: v for k, v in item.items() if k not in ("7FE00010", "00020010")})
    for keyword in ("PatientID", "StudyDate", "BitsStored", "PixelRepresentation", "PhotometricInterpretation"):
        assert header[keyword].value == stored.j2k[keyword].value, keyword


def test_bulk_pixel_data_of_native_instance(stored: Stored):
    parts = stored.client.retrieve_bulkdata(f"{stored.url(stored.ct)}/bulk/7FE00010")
    assert b"".join(parts) == stored.ct.PixelData


# --- WADO-RS frames and instances ------------------------------------------------------------------


def test_native_frames_equal_pydicom_pixels(stored: Stored):
    client = stored.client
    for ds in [*stored.series, stored.ct]:
        (frame,) = client.retrieve_instance_frames(
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
            frame_numbers=[1],
            media_types=("application/octet-stream",),
        )
        assert np.array_equal(frame_array(frame, ds.pixel_array), ds.pixel_array), ds.SOPInstanceUID


def test_compressed_frame_decoded_on_request(stored: Stored):
    ds = stored.j2k
    (frame,) = stored.client.retrieve_instance_frames(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        frame_numbers=[1],
        media_types=(("application/octet-stream", EXPLICIT_LE),),
    )
    expected = ds.pixel_array
    assert len(frame) == expected.size * expected.itemsize
    assert np.array_equal(frame_array(frame, expected), expected)
    # Without the transfer syntax, the frame comes as stored: the JPEG 2000 codestream of the file.
    response = stored.session.get(
        f"{stored.url(ds)}/frames/1",
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
    )
    assert response.status_code == 200
    assert "1.2.840.10008.1.2.4.91" in response.text[:400] or b"1.2.840.10008.1.2.4.91" in response.content[:400]


def test_multiframe_frames_decoded(stored: Stored):
    ds = stored.rle
    frames = stored.client.retrieve_instance_frames(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        frame_numbers=[2, 1],
        media_types=(("application/octet-stream", EXPLICIT_LE),),
    )
    assert len(frames) == 2
    expected = ds.pixel_array  # (frames, rows, columns, samples)
    assert np.array_equal(frame_array(frames[0], expected[1]), expected[1])
    assert np.array_equal(frame_array(frames[1], expected[0]), expected[0])
    assert not np.array_equal(expected[0], expected[1])  # the check above tells the frames apart


def test_frames_of_other_native_syntaxes_are_little_endian(stored: Stored):
    """Implicit VR little endian frames are the stored bytes; big endian ones are byte-swapped."""
    big, implicit = fresh(read("MR_small_bigendian.dcm")), fresh(read("MR_small_implicit.dcm"))
    stored.client.store_instances([big, implicit])
    for ds, syntax in ((big, "1.2.840.10008.1.2.2"), (implicit, "1.2.840.10008.1.2")):
        meta = stored.client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert meta["00020010"]["Value"] == [syntax]
        response = stored.session.get(
            f"{stored.url(ds)}/frames/1",
            headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        )
        assert response.status_code == 200
        assert b"transfer-syntax=1.2.840.10008.1.2.1\r\n" in response.content[:300]
        (frame,) = stored.client.retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1], media_types=("application/octet-stream",)
        )
        expected = ds.pixel_array
        assert np.array_equal(frame_array(frame, expected), expected), syntax
        png = stored.client.retrieve_instance_rendered(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=("image/png",)
        )
        assert Image.open(io.BytesIO(png)).size == (ds.Columns, ds.Rows)
    # The two files hold the same image: rendered alike whatever the byte order.
    renders = [
        png_array(
            stored.client.retrieve_instance_rendered(
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=("image/png",)
            )
        )
        for ds in (big, implicit)
    ]
    assert np.array_equal(renders[0], renders[1])


@pytest.mark.parametrize("frames", ["0", "3", "1,3"])
def test_frame_number_out_of_range_is_404(stored: Stored, frames: str):
    response = stored.session.get(
        f"{stored.url(stored.rle)}/frames/{frames}",
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'},
    )
    assert response.status_code == 404
    body = response.json()
    assert "does not exist" in body["detail"] and "2 frame(s)" in body["detail"]


def test_retrieve_instance_equals_stored_file(stored: Stored):
    for ds in (stored.series[3], stored.ct, stored.j2k):
        retrieved = stored.client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert retrieved == ds
        assert retrieved.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
        assert retrieved.PixelData == ds.PixelData
    series = stored.client.retrieve_series(stored.series[0].StudyInstanceUID, stored.series[0].SeriesInstanceUID)
    assert sorted(d.SOPInstanceUID for d in series) == sorted(d.SOPInstanceUID for d in stored.series)


# --- Rendered --------------------------------------------------------------------------------------


def test_rendered_images(stored: Stored):
    client = stored.client
    ds = stored.series[4]
    png = client.retrieve_instance_rendered(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=("image/png",)
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (ds.Columns, ds.Rows)
    lung = png_array(
        client.retrieve_instance_rendered(
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
            media_types=("image/png",),
            params={"window": "-600,1500,linear"},
        )
    )
    assert np.array_equal(lung, png_array(png))  # the file's own window is lung (-600, 1500)
    soft = png_array(
        client.retrieve_instance_rendered(
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
            media_types=("image/png",),
            params={"window": "40,400,linear"},
        )
    )
    assert soft.shape == lung.shape and not np.array_equal(soft, lung)
    # In a soft-tissue window, air (-1000 HU) is black and bone (700 HU) is white.
    hu = ds.pixel_array.astype(float)
    assert soft[hu < -500].max() == 0 and soft[hu > 300].min() == 255

    jpeg = client.retrieve_instance_rendered(
        stored.j2k.StudyInstanceUID,
        stored.j2k.SeriesInstanceUID,
        stored.j2k.SOPInstanceUID,
        media_types=("image/jpeg",),
    )
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (stored.j2k.Columns, stored.j2k.Rows)


def test_rendered_frames_of_multiframe(stored: Stored):
    ds = stored.rle
    rendered = [
        png_array(
            stored.client.retrieve_instance_frames_rendered(
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [n], media_types=("image/png",)
            )
        )
        for n in (1, 2)
    ]
    assert rendered[0].shape == (ds.Rows, ds.Columns, 3)
    assert np.array_equal(rendered[0], ds.pixel_array[0])  # PNG is lossless, RGB 8 bit as stored
    assert np.array_equal(rendered[1], ds.pixel_array[1])
    for frame in ("0", "3"):
        response = stored.session.get(f"{stored.url(ds)}/frames/{frame}/rendered", headers={"Accept": "image/png"})
        assert response.status_code == 404, frame


# --- Errors ----------------------------------------------------------------------------------------


def test_unknown_study_is_404_json(stored: Stored):
    response = stored.session.get(f"{stored.root}/studies/1.2.3.4.5.6.7/metadata")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert "1.2.3.4.5.6.7" in response.json()["detail"]
    with pytest.raises(requests.HTTPError) as caught:
        stored.client.retrieve_instance_frames("1.2.3.4.5.6.7", "1.2.3.4.5.6.8", "1.2.3.4.5.6.9", [1])
    assert caught.value.response is not None and caught.value.response.status_code == 404
    ct = stored.ct
    unknown_instance = stored.session.get(
        f"{stored.root}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/1.2.3/metadata"
    )
    assert unknown_instance.status_code == 404 and "1.2.3" in unknown_instance.json()["detail"]


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("studies/1.2.abc/metadata", "1.2.abc"),
        ("studies/1.2.3/series/1.02.3/metadata", "1.02.3"),
        ("studies/1.2.3/series/1.2.4/instances/x.y/frames/1", "x.y"),
    ],
)
def test_malformed_uid_in_path_is_400(stored: Stored, path: str, bad: str):
    response = stored.session.get(f"{stored.root}/{path}")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "malformed_uid" and bad in body["detail"]


def test_unacceptable_frame_media_type_is_406(stored: Stored):
    response = stored.session.get(
        f"{stored.url(stored.ct)}/frames/1", headers={"Accept": 'multipart/related; type="image/jp2"'}
    )
    assert response.status_code == 406
    assert "application/octet-stream" in response.json()["detail"]


# --- QIDO edge cases with Django's test client ------------------------------------------------------


@pytest.fixture
def two_studies(project: Project) -> list[Dataset]:
    datasets = [synthetic(seed=21)[0], synthetic(seed=22)[0]]
    report = ingest_files([IncomingFile(name=f"f{i}", data=dataset_bytes(ds)) for i, ds in enumerate(datasets)])
    assert len(report.stored) == 2
    place_studies(project, report.study_uids)
    return datasets


def test_a_frame_costs_two_queries_the_token_and_one_indexed_instance_lookup_with_its_access_check(
    two_studies: list[Dataset], manager: User, token_for: Callable[[User], str], project: Project
):
    """Issue 19: a frame is the viewer's most frequent request; no lazy field or relation adds a query, and the
    user's stores are a subquery of the instance's lookup. Nothing of the access check is cached: a membership
    that ends, or a token that is deleted, stops the next frame."""
    token = token_for(manager)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    ds = two_studies[0]
    path = f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1"
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    for url in (f"/dicomweb/{path}", f"/dicomweb/projects/{project.slug}/{path}"):
        with CaptureQueriesContext(connection) as context:
            response = client.get(url, HTTP_ACCEPT=accept)
        assert response.status_code == 200, response.content
        assert ds.PixelData in response.content
        sql = [q["sql"] for q in context.captured_queries]
        assert len(sql) == 2, "\n".join(sql)
        assert "authtoken_token" in sql[0] and "imaging_instance" in sql[1] and "annotation_membership" in sql[1]

    Membership.objects.filter(user=manager, project=project).delete()
    for url in (f"/dicomweb/{path}", f"/dicomweb/projects/{project.slug}/{path}"):
        assert client.get(url, HTTP_ACCEPT=accept).status_code == 404
    Membership.objects.create(user=manager, project=project, role=Role.MANAGER)
    assert client.get(f"/dicomweb/{path}", HTTP_ACCEPT=accept).status_code == 200
    Token.objects.filter(key=token).delete()
    assert client.get(f"/dicomweb/{path}", HTTP_ACCEPT=accept).status_code == 401


def test_a_studys_series_search_fetches_the_users_stores_once(
    two_studies: list[Dataset], manager: User, token_for: Callable[[User], str], project: Project
):
    """Issue 19: the reader asks for a study's series once per case. The user's stores were fetched twice (once
    for a list of visible studies the search by study never used); now once, for the study's lookup. (Putting the
    access check inside that lookup's SQL saved one more query but cost more CPU: bench_requests, 1.1-1.3x.)
    Nothing is cached: a membership that ends stops the next search."""
    token = token_for(manager)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    ds = two_studies[0]
    counts = {}
    for name, url in (
        ("unscoped", f"/dicomweb/studies/{ds.StudyInstanceUID}/series"),
        ("scoped", f"/dicomweb/projects/{project.slug}/studies/{ds.StudyInstanceUID}/series"),
    ):
        with CaptureQueriesContext(connection) as context:
            response = client.get(url)
        assert response.status_code == 200, response.content
        assert [item["0020000E"]["Value"][0] for item in response.json()] == [ds.SeriesInstanceUID]
        counts[name] = len(context.captured_queries)
        assert "annotation_membership" in "".join(q["sql"] for q in context.captured_queries[:3])
    # The token, the user's stores, the study, the series with their sample instances.
    assert counts == {"unscoped": 4, "scoped": 4}, counts

    Membership.objects.filter(user=manager, project=project).delete()
    assert client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/series").status_code == 404
    assert client.get(f"/dicomweb/projects/{project.slug}/studies/{ds.StudyInstanceUID}/series").status_code == 404


def test_qido_unknown_attribute_is_400(manager_client: Client, two_studies: list[Dataset]):
    response = manager_client.get("/dicomweb/studies", {"FavouriteColour": "blue"})
    assert response.status_code == 400
    assert "FavouriteColour" in response.json()["detail"]
    response = manager_client.get("/dicomweb/studies", {"includefield": "NoSuchKeyword"})
    assert response.status_code == 400 and "NoSuchKeyword" in response.json()["detail"]
    response = manager_client.get("/dicomweb/studies", {"Modality": "CT"})  # a series attribute
    assert response.status_code == 400 and "Modality" in response.json()["detail"]


@pytest.mark.parametrize("value", ["2004-01-19", "20040119-2005", "yesterday", "-"])
def test_qido_bad_date_is_400(manager_client: Client, two_studies: list[Dataset], value: str):
    response = manager_client.get("/dicomweb/studies", {"StudyDate": value})
    assert response.status_code == 400
    assert value in response.json()["detail"]


def test_qido_limit_adds_warning_when_more(manager_client: Client, two_studies: list[Dataset]):
    response = manager_client.get("/dicomweb/studies", {"limit": "1"})
    assert response.status_code == 200
    assert len(response.json()) == 1
    assert "more results" in response["Warning"]
    rest = manager_client.get("/dicomweb/studies", {"limit": "1", "offset": "1"})
    assert len(rest.json()) == 1 and not rest.has_header("Warning")
    assert {response.json()[0]["0020000D"]["Value"][0], rest.json()[0]["0020000D"]["Value"][0]} == {
        ds.StudyInstanceUID for ds in two_studies
    }
    full = manager_client.get("/dicomweb/studies", {"limit": "2"})
    assert len(full.json()) == 2 and not full.has_header("Warning")
    bad = manager_client.get("/dicomweb/studies", {"limit": "0"})
    assert bad.status_code == 400
    assert Study.objects.count() == 2


# --- STOW with a chunked request body ----------------------------------------------------------------


def multipart_body(datasets: list[Dataset], boundary: str) -> bytes:
    body = b""
    for ds in datasets:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + dataset_bytes(ds) + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def chunked_post(client: Client, body: bytes, boundary: str, *, terminated: bool) -> Any:
    """A POST as a WSGI server hands over a chunked request: no CONTENT_LENGTH; gunicorn, which decodes the
    chunks, gives the body as wsgi.input and sets wsgi.input_terminated."""
    environ: dict[str, Any] = {
        "CONTENT_TYPE": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    return client.generic("POST", "/dicomweb/projects/chest/studies", **environ)


def test_stow_reads_a_chunked_body_decoded_by_the_server(manager_client: Client, isolated_storage: Path):
    # dicomweb-client sends anything over its chunk size (1 MB) this way.
    series = synthetic(seed=31)
    response = chunked_post(manager_client, multipart_body(series, "b0undary"), "b0undary", terminated=True)
    assert response.status_code == 200, response.content
    referenced = response.json()["00081199"]["Value"]
    assert sorted(r["00081155"]["Value"][0] for r in referenced) == sorted(ds.SOPInstanceUID for ds in series)
    assert len(stored_files(isolated_storage)) == SLICES


def test_stow_refuses_a_chunked_body_it_cannot_read(manager_client: Client, isolated_storage: Path):
    body = multipart_body(synthetic(seed=32)[:1], "b0undary")
    response = chunked_post(manager_client, body, "b0undary", terminated=False)
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]
    assert Instance.objects.count() == 0 and stored_files(isolated_storage) == []
