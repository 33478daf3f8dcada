"""DICOMweb for studies whose pixels live in an upstream PACS: the real Orthanc that scripts/test.sh
starts. STOW through a project whose source is the PACS stores there and indexes here; reads are proxied;
pulls copy or index a study; a PACS that is down or slow is a quick 502 or 504, never a hang.

Orthanc keeps its data for the whole test run, so every test sends instances with UIDs of its own.

Orthanc is never asked to decode compressed pixel data here: the Debian Orthanc 1.10.1 with its GDCM 1.5
plugin crashes after a few JPEG 2000 or RLE decodes, which would take the PACS away from every later test
of the run. Compressed instances are stored, indexed, pulled and retrieved as they are; frames and
rendered images are checked on native ones (a synthetic CT series, CT_small, a two-frame RGB image)."""

from __future__ import annotations

import io
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from annotation.models import Project, Role
from imaging.models import DicomSource, Instance, Study
from imaging.services import upstream
from imaging.synthetic import generate_ct_study
from tests.conftest import require_env, stored_files
from tests.factories import DicomSourceFactory, ProjectFactory
from tests.imaging.test_dicomweb_local import (
    frame_array,
    fresh,
    png_array,
    read,
    server_url,
    token_session,
)

pytestmark = pytest.mark.services

EXPLICIT_LE = "1.2.840.10008.1.2.1"
SLICES = 4
_seeds = itertools.count(500)


def fresh_series(size: int = 64, slices: int = SLICES) -> list[Dataset]:
    """A synthetic CT series whose UIDs (which follow from the seed) are salted, so that no other test of
    this run (or data left in Orthanc) has them."""
    study = generate_ct_study(seed=next(_seeds), rows=size, columns=size, slices=slices, n_lesions=0)
    salt = str(generate_uid())
    datasets: list[Dataset] = list(study.datasets())
    for ds in datasets:
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[study.study_uid, salt])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[study.series_uid, salt])
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(ds.SOPInstanceUID), salt])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return datasets


def native_two_frames() -> Dataset:
    """SC_rgb_rle_2frame.dcm decoded to Explicit VR Little Endian: a native multi-frame RGB image."""
    ds = fresh(read("SC_rgb_rle_2frame.dcm"))
    ds.decompress()
    return ds


def instance_url(root: str, ds: Dataset) -> str:
    return f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on loopback that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=2)
    listener.close()
    for conn in held:
        conn.close()


@pytest.fixture
def orthanc() -> DICOMwebClient:
    return DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL"))


@pytest.fixture
def pacs(db: None) -> DicomSource:
    return cast(
        DicomSource,
        DicomSourceFactory(name="orthanc", base_url=require_env("ORTHANC_DICOMWEB_URL"), timeout_seconds=10),
    )


@dataclass
class Proxy:
    client: DICOMwebClient
    session: requests.Session
    root: str
    project: Project
    user: User


@pytest.fixture
def proxy(
    live_server: Any, pacs: DicomSource, make_member: Callable[..., User], token_for: Callable[[User], str]
) -> Proxy:
    project = cast(Project, ProjectFactory(slug="pacs-project", dicom_source=pacs))
    user = make_member(project, Role.MANAGER, "pacs-manager")
    session = token_session(token_for(user))
    root = f"{server_url(live_server)}/dicomweb/projects/{project.slug}"
    client = DICOMwebClient(url=root, session=session)
    client.set_http_retry_params(retry=False)  # a 504 must show, not be retried for half a minute
    return Proxy(client, session, root, project, user)


@dataclass
class Sent:
    series: list[Dataset]
    ct: Dataset
    two_frames: Dataset
    j2k: Dataset
    response: Dataset

    @property
    def all(self) -> list[Dataset]:
        return [*self.series, self.ct, self.two_frames, self.j2k]


@pytest.fixture
def sent(proxy: Proxy) -> Sent:
    """Stored through the proxy: a synthetic series, CT_small, a native two-frame RGB image and a JPEG 2000
    image (each in a study of its own)."""
    series = fresh_series()
    ct, two_frames, j2k = fresh(read("CT_small.dcm")), native_two_frames(), fresh(read("JPEG2000.dcm"))
    response = proxy.client.store_instances([*series, ct, two_frames, j2k])
    return Sent(series, ct, two_frames, j2k, response)


def assert_same_frames(client: DICOMwebClient, ds: Dataset, media_types: tuple[Any, ...]) -> None:
    expected = ds.pixel_array
    count = int(ds.get("NumberOfFrames", 1) or 1)
    numbers = list(range(count, 0, -1))  # in reverse, so that a server ignoring the list is caught
    frames = client.retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, numbers, media_types=media_types
    )
    assert len(frames) == count
    for number, frame in zip(numbers, frames, strict=True):
        reference = expected if count == 1 else expected[number - 1]
        assert np.array_equal(frame_array(frame, reference), reference), (ds.SOPInstanceUID, number)


# --- STOW through the proxy ------------------------------------------------------------------------


def test_stow_stores_in_the_pacs_and_indexes_without_files(
    sent: Sent, proxy: Proxy, orthanc: DICOMwebClient, pacs: DicomSource, isolated_storage: Path
):
    sop_uids = sorted(ds.SOPInstanceUID for ds in sent.all)
    assert sorted(i.ReferencedSOPInstanceUID for i in sent.response.ReferencedSOPSequence) == sop_uids
    assert "FailedSOPSequence" not in sent.response
    in_orthanc = [
        item["00080018"]["Value"][0]
        for ds in (sent.series[0], sent.ct, sent.two_frames, sent.j2k)
        for item in orthanc.search_for_instances(ds.StudyInstanceUID)
    ]
    assert sorted(in_orthanc) == sop_uids
    assert stored_files(isolated_storage) == []
    assert sorted(Instance.objects.values_list("sop_instance_uid", flat=True)) == sop_uids
    assert set(Instance.objects.values_list("file", flat=True)) == {""}
    assert set(Study.objects.values_list("source__name", flat=True)) == {pacs.name}
    linked = set(proxy.project.image_store.studies.values_list("study_instance_uid", flat=True))
    assert linked == {ds.StudyInstanceUID for ds in sent.all}


def test_search_and_metadata_through_the_proxy(sent: Sent, proxy: Proxy):
    client = proxy.client
    syn = sent.series
    studies = client.search_for_studies(search_filters={"PatientID": syn[0].PatientID})
    assert [s["0020000D"]["Value"][0] for s in studies] == [syn[0].StudyInstanceUID]
    assert studies[0]["00201208"]["Value"] == [SLICES]
    assert len(client.search_for_studies()) == 4
    instances = client.search_for_instances(syn[0].StudyInstanceUID, syn[0].SeriesInstanceUID)
    assert [i["00080018"]["Value"][0] for i in instances] == [ds.SOPInstanceUID for ds in syn]

    metadata = client.retrieve_series_metadata(syn[0].StudyInstanceUID, syn[0].SeriesInstanceUID)
    by_uid = {ds.SOPInstanceUID: ds for ds in syn}
    assert sorted(item["00080018"]["Value"][0] for item in metadata) == sorted(by_uid)
    for item in metadata:
        ds = by_uid[item["00080018"]["Value"][0]]
        assert item["00280010"]["Value"] == [ds.Rows]
        assert [float(v) for v in item["00280030"]["Value"]] == [float(v) for v in ds.PixelSpacing]
        assert [float(v) for v in item["00200032"]["Value"]] == [float(v) for v in ds.ImagePositionPatient]
        assert item["00020010"]["Value"] == [EXPLICIT_LE]
        assert item["7FE00010"]["BulkDataURI"].endswith(f"/instances/{ds.SOPInstanceUID}/bulk/7FE00010")
    j2k = sent.j2k
    item = client.retrieve_instance_metadata(j2k.StudyInstanceUID, j2k.SeriesInstanceUID, j2k.SOPInstanceUID)
    assert item["00020010"]["Value"] == ["1.2.840.10008.1.2.4.91"]
    assert item["00280011"]["Value"] == [j2k.Columns]
    assert item["00100010"]["Value"] == [{"Alphabetic": str(j2k.PatientName)}]


def test_frames_through_the_proxy_equal_pydicom_decode(sent: Sent, proxy: Proxy):
    for ds in sent.series:
        assert_same_frames(proxy.client, ds, ("application/octet-stream",))
    assert_same_frames(proxy.client, sent.ct, ("application/octet-stream",))
    assert_same_frames(proxy.client, sent.two_frames, (("application/octet-stream", EXPLICIT_LE),))
    response = proxy.session.get(
        f"{instance_url(proxy.root, sent.ct)}/frames/1",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        timeout=10,
    )
    assert response.status_code == 200
    assert b"transfer-syntax=1.2.840.10008.1.2.1\r\n" in response.content[:300]
    bulk = proxy.client.retrieve_bulkdata(f"{instance_url(proxy.root, sent.series[1])}/bulk/7FE00010")
    assert b"".join(bulk) == sent.series[1].PixelData
    for frames in ("0", "3", "1,3"):
        out_of_range = proxy.session.get(f"{instance_url(proxy.root, sent.two_frames)}/frames/{frames}", timeout=10)
        assert out_of_range.status_code == 404, frames
        assert "2 frame(s)" in out_of_range.json()["detail"]


def test_one_proxied_frame_is_the_pacs_body_passed_through_without_its_links(
    sent: Sent, proxy: Proxy, pacs: DicomSource
):
    """Issue 19: a frame is asked for without compression and its pixel bytes go through as the PACS sent
    them; only the part's header lines are ours (no Content-Location into the PACS)."""
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    for ds in (sent.series[1], sent.ct):
        frame_url = "/".join(instance_url(proxy.root, ds).split("/")[-6:]) + "/frames/1"
        ours = proxy.session.get(f"{proxy.root}/{frame_url}", headers={"Accept": accept}, timeout=10)
        theirs = requests.get(
            f"{pacs.base_url}/{frame_url}",
            headers={"Accept": upstream.FRAMES_ACCEPT, "Accept-Encoding": "identity"},
            timeout=10,
        )
        assert ours.status_code == theirs.status_code == 200
        assert int(ours.headers["Content-Length"]) == len(ours.content)  # one body, not chunked
        assert "Transfer-Encoding" not in ours.headers
        boundary = ours.headers["Content-Type"].split("boundary=")[1]
        assert ours.headers["Content-Type"].startswith('multipart/related; type="application/octet-stream"')
        their_boundary = theirs.headers["Content-Type"].split("boundary=")[1]  # a new one on each answer
        head, _, rest = ours.content.partition(b"\r\n\r\n")
        assert head == f"--{boundary}\r\nContent-Type: application/octet-stream; transfer-syntax={EXPLICIT_LE}".encode()
        assert rest == theirs.content.partition(b"\r\n\r\n")[2].replace(their_boundary.encode(), boundary.encode())
        assert rest.startswith(ds.PixelData[: ds.Rows * ds.Columns * ds.BitsAllocated // 8])
        assert b"Content-Location" not in ours.content[:400]
    # The proxy's connections to the PACS never ask for gzip (python-requests' default).
    assert upstream._session_for(pacs).headers["Accept-Encoding"] == "identity"


def test_native_frames_stored_in_another_byte_layout_come_through_as_explicit_little_endian(
    proxy: Proxy, pacs: DicomSource
):
    """A frame stored in Implicit VR Little Endian is asked for as stored (its pixel bytes are those of Explicit VR
    Little Endian: the PACS need not convert it) and one stored big endian is asked for converted; both reach the
    viewer as the same little-endian pixel values, labelled Explicit VR Little Endian (issue 19)."""
    implicit, big = fresh(read("MR_small_implicit.dcm")), fresh(read("MR_small_bigendian.dcm"))
    assert implicit.file_meta.TransferSyntaxUID == upstream.IMPLICIT_VR_LITTLE_ENDIAN
    proxy.client.store_instances([implicit, big])
    stored = dict(Instance.objects.values_list("sop_instance_uid", "transfer_syntax_uid"))
    assert stored == {implicit.SOPInstanceUID: "1.2.840.10008.1.2", big.SOPInstanceUID: "1.2.840.10008.1.2.2"}
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    for ds in (implicit, big):
        response = proxy.session.get(f"{instance_url(proxy.root, ds)}/frames/1", headers={"Accept": accept}, timeout=10)
        assert response.status_code == 200, response.content[:300]
        head, _, rest = response.content.partition(b"\r\n\r\n")
        assert head.endswith(f"Content-Type: application/octet-stream; transfer-syntax={EXPLICIT_LE}".encode())
        little_endian = ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<"))
        assert rest.startswith(little_endian.tobytes()), ds.file_meta.TransferSyntaxUID
        # The same frame through the normal view (more than one frame number: no pass-through).
        assert_same_frames(proxy.client, ds, ("application/octet-stream",))


def test_instances_and_rendered_through_the_proxy(sent: Sent, proxy: Proxy):
    client = proxy.client
    for ds in (sent.series[2], sent.ct, sent.j2k):
        retrieved = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert retrieved == ds
        assert retrieved.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID  # not transcoded
        assert retrieved.PixelData == ds.PixelData
    series = client.retrieve_series(sent.series[0].StudyInstanceUID, sent.series[0].SeriesInstanceUID)
    assert sorted(d.SOPInstanceUID for d in series) == sorted(d.SOPInstanceUID for d in sent.series)

    ds = sent.series[2]
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    png = client.retrieve_instance_rendered(*uids, media_types=("image/png",))
    assert Image.open(io.BytesIO(png)).size == (ds.Columns, ds.Rows)
    lung = png_array(
        client.retrieve_instance_rendered(*uids, media_types=("image/png",), params={"window": "-600,1500"})
    )
    soft = png_array(client.retrieve_instance_rendered(*uids, media_types=("image/png",), params={"window": "40,400"}))
    assert lung.shape == soft.shape == (ds.Rows, ds.Columns)
    assert not np.array_equal(lung, soft)
    jpeg = client.retrieve_instance_rendered(*uids, media_types=("image/jpeg",))
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"

    two = sent.two_frames
    rendered = [
        png_array(
            client.retrieve_instance_frames_rendered(
                two.StudyInstanceUID, two.SeriesInstanceUID, two.SOPInstanceUID, [n], media_types=("image/png",)
            )
        )
        for n in (1, 2)
    ]
    assert np.array_equal(rendered[0], two.pixel_array[0])
    assert np.array_equal(rendered[1], two.pixel_array[1])
    beyond = proxy.session.get(
        f"{instance_url(proxy.root, two)}/frames/3/rendered", headers={"Accept": "image/png"}, timeout=10
    )
    assert beyond.status_code == 404


def test_proxied_frames_are_offered_decoded_only(sent: Sent, proxy: Proxy):
    """The proxy asks the PACS for Explicit VR Little Endian frames, so it cannot offer the JPEG 2000
    codestream: asking for only that is a 406, answered without a call to the PACS."""
    response = proxy.session.get(
        f"{instance_url(proxy.root, sent.j2k)}/frames/1",
        headers={"Accept": 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.91'},
        timeout=10,
    )
    assert response.status_code == 406
    assert "1.2.840.10008.1.2.1" in response.json()["detail"]


# --- Pull ------------------------------------------------------------------------------------------


def into_orthanc(orthanc: DICOMwebClient) -> list[Dataset]:
    """A study put straight into the PACS: a synthetic series, a native two-frame image and a JPEG 2000 image."""
    series = fresh_series()
    two_frames, j2k = native_two_frames(), fresh(read("JPEG2000.dcm"))
    for ds in (two_frames, j2k):
        ds.StudyInstanceUID = series[0].StudyInstanceUID
        ds.PatientID, ds.PatientName = series[0].PatientID, series[0].PatientName
    result = orthanc.store_instances([*series, two_frames, j2k])
    assert len(result.ReferencedSOPSequence) == SLICES + 2
    return [*series, two_frames, j2k]


def pull(proxy: Proxy, pacs: DicomSource, study_uid: str, mode: str) -> requests.Response:
    url = proxy.root.split("/dicomweb/")[0] + "/api/v1/imaging/pull/"
    body = {"source": pacs.name, "study_instance_uid": study_uid, "project": proxy.project.slug, "mode": mode}
    return proxy.session.post(url, json=body, timeout=30)


def test_pull_copy_stores_files_with_identical_pixels(
    proxy: Proxy, pacs: DicomSource, orthanc: DICOMwebClient, isolated_storage: Path
):
    datasets = into_orthanc(orthanc)
    study_uid = datasets[0].StudyInstanceUID
    response = pull(proxy, pacs, study_uid, "copy")
    assert response.status_code == 201, response.text
    assert response.json()["study_instance_uid"] == study_uid

    files = stored_files(isolated_storage)
    assert len(files) == len(datasets)
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    for path in files:
        copy = pydicom.dcmread(path)
        original = by_uid.pop(copy.SOPInstanceUID)
        assert copy.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert np.array_equal(copy.pixel_array, original.pixel_array)
    assert by_uid == {}
    study = Study.objects.get(study_instance_uid=study_uid)
    assert study.source is None and study.number_of_instances == len(datasets)
    # Served from the local store now (which decodes the JPEG 2000 image itself).
    for ds in datasets[:-1]:
        assert_same_frames(proxy.client, ds, (("application/octet-stream", EXPLICIT_LE),))
    assert_same_frames(proxy.client, datasets[-1], (("application/octet-stream", EXPLICIT_LE),))


def test_pull_index_proxies_pixels_without_files(
    proxy: Proxy, pacs: DicomSource, orthanc: DICOMwebClient, isolated_storage: Path
):
    datasets = into_orthanc(orthanc)
    study_uid = datasets[0].StudyInstanceUID
    response = pull(proxy, pacs, study_uid, "index")
    assert response.status_code == 201, response.text
    assert stored_files(isolated_storage) == []
    study = Study.objects.get(study_instance_uid=study_uid)
    assert study.source == pacs and study.number_of_instances == len(datasets)
    assert study.patient_id == datasets[0].PatientID
    # Orthanc's metadata names no transfer syntax, and lists no Pixel Data for the JPEG 2000 image.
    j2k_row = Instance.objects.get(sop_instance_uid=datasets[-1].SOPInstanceUID)
    assert j2k_row.has_pixel_data and j2k_row.rows == 1024 and j2k_row.file == ""
    assert j2k_row.transfer_syntax_uid == "" and not j2k_row.is_encapsulated
    two_row = Instance.objects.get(sop_instance_uid=datasets[-2].SOPInstanceUID)
    assert two_row.number_of_frames == 2 and two_row.samples_per_pixel == 3

    found = proxy.client.search_for_instances(study_uid)
    assert sorted(i["00080018"]["Value"][0] for i in found) == sorted(ds.SOPInstanceUID for ds in datasets)
    metadata = proxy.client.retrieve_study_metadata(study_uid)
    assert len(metadata) == len(datasets)
    orthanc_url = require_env("ORTHANC_DICOMWEB_URL")
    orthanc_host = orthanc_url.split("//")[1].split("/")[0]
    for item in metadata:
        assert orthanc_host not in str(item)  # no links into the PACS
        assert "00020010" not in item  # unknown: left out rather than guessed
        assert "7FE00010" in item
    for ds in datasets[:-1]:  # not the JPEG 2000 image: Orthanc would decode it (see the module docstring)
        assert_same_frames(proxy.client, ds, ("application/octet-stream",))
    ds = datasets[1]
    png = proxy.client.retrieve_instance_rendered(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=("image/png",)
    )
    assert Image.open(io.BytesIO(png)).size == (ds.Columns, ds.Rows)


def test_frames_of_unknown_transfer_syntax_are_asked_as_stored_until_the_pacs_answers_compressed(
    proxy: Proxy, pacs: DicomSource, orthanc: DICOMwebClient
):
    """An index made from Orthanc's metadata knows no transfer syntax: frames are asked for as the PACS stores them
    (no conversion to do when that is native little endian); one it stores otherwise (big endian, which Orthanc
    refuses to send as stored, and deflated) is read the converting way; every frame reaches the viewer as
    little-endian pixel values (issue 19). (Not RLE or JPEG: see the module docstring.)"""
    implicit, big, deflated = (
        fresh(read(name)) for name in ("MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm")
    )
    for ds in (big, deflated):
        ds.StudyInstanceUID, ds.PatientID = implicit.StudyInstanceUID, implicit.PatientID
    assert len(orthanc.store_instances([implicit, big, deflated]).ReferencedSOPSequence) == 3
    assert pull(proxy, pacs, implicit.StudyInstanceUID, "index").status_code == 201
    assert set(Instance.objects.values_list("transfer_syntax_uid", flat=True)) == {""}
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    for ds in (implicit, big, deflated, implicit):  # the native one again, after the PACS refused one as stored
        response = proxy.session.get(f"{instance_url(proxy.root, ds)}/frames/1", headers={"Accept": accept}, timeout=10)
        assert response.status_code == 200, response.content[:300]
        head, _, rest = response.content.partition(b"\r\n\r\n")
        assert f"transfer-syntax={EXPLICIT_LE}".encode() in head
        little_endian = ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<"))
        assert rest.startswith(little_endian.tobytes()), ds.file_meta.TransferSyntaxUID


def test_pull_of_unknown_study_is_404(proxy: Proxy, pacs: DicomSource):
    for mode in ("copy", "index"):
        response = pull(proxy, pacs, str(generate_uid()), mode)
        assert response.status_code == 404, (mode, response.text)
        assert "orthanc" in response.json()["detail"]
    assert Study.objects.count() == 0


# --- A PACS that is down or slow -------------------------------------------------------------------


def timed_get(session: requests.Session, url: str, **kwargs: Any) -> tuple[requests.Response, float]:
    start = time.monotonic()
    response = session.get(url, timeout=30, **kwargs)
    return response, time.monotonic() - start


def test_pacs_down_is_a_quick_502(sent: Sent, proxy: Proxy, pacs: DicomSource):
    pacs.base_url = f"http://127.0.0.1:{closed_port()}/dicom-web"
    pacs.save()
    url = instance_url(proxy.root, sent.series[0])
    for path, accept in (
        ("/frames/1", 'multipart/related; type="application/octet-stream"'),
        ("/rendered", "image/png"),
        ("", 'multipart/related; type="application/dicom"'),
        ("/bulk/7FE00010", "*/*"),
    ):
        response, elapsed = timed_get(proxy.session, url + path, headers={"Accept": accept})
        assert response.status_code == 502, (path, response.status_code, response.text[:200])
        assert "orthanc" in response.json()["detail"] and "unreachable" in response.json()["detail"]
        assert elapsed < 5, path
    # The index still answers searches and metadata.
    metadata, _ = timed_get(proxy.session, url + "/metadata")
    assert metadata.status_code == 200


def test_stow_to_a_pacs_that_is_down_stores_nothing(proxy: Proxy, pacs: DicomSource, isolated_storage: Path):
    pacs.base_url = f"http://127.0.0.1:{closed_port()}/dicom-web"
    pacs.save()
    start = time.monotonic()
    with pytest.raises(requests.HTTPError) as caught:
        proxy.client.store_instances(fresh_series()[:1])
    assert time.monotonic() - start < 5
    response = caught.value.response
    assert response is not None and response.status_code == 502
    assert "orthanc" in response.json()["detail"]
    assert Instance.objects.count() == 0 and Study.objects.count() == 0
    assert stored_files(isolated_storage) == []


def test_pull_from_a_pacs_that_is_down_is_502(proxy: Proxy):
    down = cast(
        DicomSource, DicomSourceFactory(name="down-pacs", base_url=f"http://127.0.0.1:{closed_port()}/dicom-web")
    )
    proxy.project.import_sources.add(down)  # opened to the project by an administrator
    for mode in ("copy", "index"):
        start = time.monotonic()
        response = pull(proxy, down, str(generate_uid()), mode)
        assert response.status_code == 502, (mode, response.text)
        assert "down-pacs" in response.json()["detail"]
        assert time.monotonic() - start < 5


def test_slow_pacs_is_a_504_within_its_timeout(sent: Sent, proxy: Proxy, pacs: DicomSource, silent_server: int):
    pacs.base_url = f"http://127.0.0.1:{silent_server}/dicom-web"
    pacs.timeout_seconds = 1
    pacs.save()
    url = instance_url(proxy.root, sent.series[0])
    for path, accept in (
        ("/frames/1", 'multipart/related; type="application/octet-stream"'),
        ("/rendered", "image/png"),
        ("", 'multipart/related; type="application/dicom"'),
    ):
        response, elapsed = timed_get(proxy.session, url + path, headers={"Accept": accept})
        assert response.status_code == 504, (path, response.status_code, response.text[:200])
        assert response.json()["detail"] == "Upstream PACS 'orthanc' did not answer within 1 s"
        assert 0.9 < elapsed < 3, (path, elapsed)


def test_stow_and_pull_with_a_slow_pacs_are_504(proxy: Proxy, pacs: DicomSource, silent_server: int):
    pacs.base_url = f"http://127.0.0.1:{silent_server}/dicom-web"
    pacs.timeout_seconds = 1
    pacs.save()
    start = time.monotonic()
    with pytest.raises(requests.HTTPError) as caught:
        proxy.client.store_instances(fresh_series()[:1])
    assert caught.value.response is not None and caught.value.response.status_code == 504
    assert time.monotonic() - start < 3
    assert Instance.objects.count() == 0
    start = time.monotonic()
    response = pull(proxy, pacs, str(generate_uid()), "index")
    assert response.status_code == 504 and "did not answer" in response.json()["detail"]
    assert time.monotonic() - start < 3


def test_the_pacs_session_reads_proxy_settings_once_and_keeps_them(monkeypatch: pytest.MonkeyPatch, pacs: DicomSource):
    """requests would read every environment variable on each proxied frame to look for proxy settings (issue
    19): the PACS's session reads them once, when it is made, and keeps what they say for that PACS."""
    from imaging.services import upstream

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(upstream, "_local", threading.local())
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "")
    session = upstream._session_for(pacs)
    assert not session.trust_env
    assert session.proxies.get("http") == "http://proxy.invalid:3128"
    monkeypatch.setattr(upstream, "_local", threading.local())
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    assert "http" not in upstream._session_for(pacs).proxies


def test_a_proxied_frame_left_part_read_does_not_spoil_the_next_on_the_kept_alive_connection(
    sent: Sent, pacs: DicomSource
):
    """Frames are read from the PACS through one pool of kept-alive connections per thread (issue 19): a viewer
    that goes away mid-frame leaves its answer part-read, and the next frames on that thread must not read the
    rest of the old one as their answer (a broken status line: a 502). Its connection is closed (urllib3's
    pool would also drop a connection with unread bytes); frames read to the end keep theirs."""
    first, second = sent.series[0], sent.series[1]

    def frame(ds: Dataset) -> tuple[str, int, Iterator[bytes]]:
        passed = upstream.stream_frame(pacs, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, 1)
        assert passed is not None
        return passed

    _, _, body = frame(first)
    next(body)
    cast(Any, body).close()  # the viewer went away after the first chunk
    for ds in (second, first, second):
        content_type, length, body = frame(ds)
        data = b"".join(body)
        assert len(data) == length
        assert data.split(b"\r\n\r\n", 1)[1].startswith(ds.PixelData[: ds.Rows * ds.Columns * 2])
