"""Every kind of bad input, through the upload API and STOW-RS: the status, a message that names the
problem, and nothing new in the database or the storage directory."""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, JPEG2000MCLossless

from annotation.models import Project, Role
from imaging import dicom
from imaging.models import Instance, Series, Study
from tests.conftest import dataset_bytes, stored_files
from tests.conftest import testdata_bytes as read_testdata  # aliased: pytest would collect test*

UPLOAD_URL = "/api/v1/imaging/uploads/"
STOW_URL = "/dicomweb/projects/chest/studies"
BOUNDARY = "medlabel-test-boundary-7f3a9c"
FAILURE_CANNOT_UNDERSTAND = 0xC000
FAILURE_STUDY_MISMATCH = 0xA900


# --- Helpers ---------------------------------------------------------------------------------------------


def assert_nothing_stored(storage: Path) -> None:
    assert Study.objects.count() == 0
    assert Series.objects.count() == 0
    assert Instance.objects.count() == 0
    assert stored_files(storage) == []


def upload(client: Client, files: list[tuple[str, bytes]], project: str = "chest") -> Any:
    data = {"project": project, "files": [SimpleUploadedFile(name, content) for name, content in files]}
    return client.post(UPLOAD_URL, data)


def stow(client: Client, parts: list[bytes], url: str = STOW_URL, part_type: str = "application/dicom") -> Any:
    body = b"".join(f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n" for part in parts)
    body += f"--{BOUNDARY}--\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return client.post(url, data=body, content_type=content_type)


def stow_failures(response: Any) -> list[dict[str, Any]]:
    return list(response.json().get("00081198", {}).get("Value", []))


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            # A ZipInfo keeps the name exactly as given (absolute, "..", backslashes) where a str may not.
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def ct_dataset() -> Dataset:
    return pydicom.dcmread(io.BytesIO(read_testdata("CT_small.dcm")))


def without(keyword: str) -> bytes:
    ds = ct_dataset()
    delattr(ds, keyword)
    return dataset_bytes(ds)


def with_study_uid(value: str) -> bytes:
    ds = ct_dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UI value it is asked to write
        ds.StudyInstanceUID = value
        return dataset_bytes(ds)


def cut(name: str, fraction: float | None = None, at: int | None = None) -> bytes:
    data = read_testdata(name)
    return data[: at if at is not None else int(len(data) * (fraction or 0))]


def undecodable_ct() -> bytes:
    """CT_small re-labelled with a transfer syntax for which no decoder is installed here."""
    assert not dicom._decoder_available(UID(JPEG2000MCLossless)), "a decoder appeared: pick another syntax"
    ds = ct_dataset()
    ds.file_meta.TransferSyntaxUID = JPEG2000MCLossless
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return dataset_bytes(ds)


# (id, builder of the file's bytes, substring the message must contain)
BAD_FILES: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty", lambda: b"", "Empty file"),
    ("not-dicom", lambda: b"hello", "Not a DICOM Part 10 file"),
    ("text-with-dicm-at-128", lambda: b"x" * 128 + b"DICM", "Truncated"),
    ("truncated-half", lambda: cut("CT_small.dcm", 0.5), "Truncated DICOM: Pixel Data declares"),
    ("truncated-in-meta-300-bytes", lambda: cut("CT_small.dcm", at=300), "Truncated DICOM"),
    ("truncated-in-header-1000-bytes", lambda: cut("CT_small.dcm", at=1000), "Truncated DICOM"),
    ("truncated-compressed-j2k", lambda: cut("JPEG2000.dcm", 0.9), "Truncated DICOM"),
    ("truncated-compressed-rle", lambda: cut("MR_small_RLE.dcm", 0.6), "Truncated DICOM"),
    ("no-pixel-data", lambda: without("PixelData"), "No Pixel Data in an image object"),
    ("missing-study-uid", lambda: without("StudyInstanceUID"), "Missing StudyInstanceUID"),
    ("missing-series-uid", lambda: without("SeriesInstanceUID"), "Missing SeriesInstanceUID"),
    ("missing-sop-uid", lambda: without("SOPInstanceUID"), "Missing SOPInstanceUID"),
    # A leading zero and a letter; and a UID over 64 characters.
    ("malformed-uid", lambda: with_study_uid("1.2.03.x"), "Malformed StudyInstanceUID: '1.2.03.x'"),
    ("uid-too-long", lambda: with_study_uid("1.2." + "3" * 70), "Malformed StudyInstanceUID"),
    ("no-preamble", lambda: read_testdata("rtstruct.dcm"), "'DICM' prefix"),
]
BAD_FILE_PARAMS = [pytest.param(build, expected, id=name) for name, build, expected in BAD_FILES]


@pytest.fixture
def stow_client(manager: User, token_for: Callable[[User], str]) -> Client:
    """DICOMweb clients send a token, not a session."""
    return Client(HTTP_AUTHORIZATION=f"Token {token_for(manager)}")


# --- Bad files through the upload API and STOW-RS -------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("build", "expected"), BAD_FILE_PARAMS)
def test_upload_of_bad_file_is_400_and_stores_nothing(
    manager_client: Client, isolated_storage: Path, build: Callable[[], bytes], expected: str
) -> None:
    response = upload(manager_client, [("bad.dcm", build())])

    assert response.status_code == 400, response.content
    body = response.json()
    assert expected in body["detail"]
    assert body["detail"].startswith("bad.dcm: ")
    assert body["counts"] == {"stored": 0, "duplicate": 0, "rejected": 1}
    [outcome] = body["files"]
    assert outcome["status"] == "rejected"
    assert expected in outcome["reason"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
@pytest.mark.parametrize(("build", "expected"), BAD_FILE_PARAMS)
def test_stow_of_bad_file_fails_and_stores_nothing(
    stow_client: Client, isolated_storage: Path, build: Callable[[], bytes], expected: str
) -> None:
    response = stow(stow_client, [build()])

    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/dicom+json"
    [failure] = stow_failures(response)
    assert failure["00081197"]["Value"] == [FAILURE_CANNOT_UNDERSTAND]
    assert expected[:40] in failure["00000902"]["Value"][0]
    assert expected in response["Warning"]
    assert "00081199" not in response.json()
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_truncated_files_say_truncated_at_every_cut(manager_client: Client, isolated_storage: Path) -> None:
    """Cuts all through the header and the pixel data of an uncompressed and a compressed file."""
    for name in ("CT_small.dcm", "JPEG2000.dcm"):
        data = read_testdata(name)
        cuts = range(140, len(data) - 200, max(1, len(data) // 40))
        response = upload(manager_client, [(f"{name}-{n}", data[:n]) for n in cuts])
        assert response.status_code == 400
        reasons = [f["reason"] for f in response.json()["files"]]
        assert len(reasons) == len(cuts)
        assert all("truncated" in reason.lower() for reason in reasons), reasons
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_upload_of_undecodable_transfer_syntax_is_stored_and_flagged(
    manager_client: Client, isolated_storage: Path
) -> None:
    response = upload(manager_client, [("mcj2k.dcm", undecodable_ct())])

    assert response.status_code == 201
    [outcome] = response.json()["files"]
    assert outcome["status"] == "stored"
    assert "cannot be decoded" in outcome["warnings"][0]
    instance = Instance.objects.get()
    assert instance.is_decodable is False
    assert instance.transfer_syntax_uid == JPEG2000MCLossless
    assert stored_files(isolated_storage) == [isolated_storage / instance.file]
    assert instance.series.quality == Series.Quality.FAILED


@pytest.mark.django_db
def test_stow_of_undecodable_transfer_syntax_is_stored_with_a_warning(
    stow_client: Client, isolated_storage: Path
) -> None:
    response = stow(stow_client, [undecodable_ct()])

    assert response.status_code == 200
    [referenced] = response.json()["00081199"]["Value"]
    # The warning is a LO value, cut at 64 characters: it names the transfer syntax.
    assert referenced["00000902"]["Value"][0].startswith("Transfer syntax JPEG 2000 Part 2 Multi-component")
    assert Instance.objects.get().is_decodable is False
    assert len(stored_files(isolated_storage)) == 1


# --- Zips ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "member",
    ["/etc/evil.dcm", "../evil.dcm", "series/../../evil.dcm", "C:/evil.dcm", "..\\evil.dcm"],
    ids=["absolute", "parent", "nested-parent", "drive-letter", "backslash-parent"],
)
def test_zip_with_unsafe_member_path_is_400(manager_client: Client, isolated_storage: Path, member: str) -> None:
    response = upload(manager_client, [("bad.zip", zip_bytes([(member, read_testdata("CT_small.dcm"))]))])

    assert response.status_code == 400
    assert response.json()["code"] == "zip_unsafe_path"
    assert "Unsafe path in zip" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_zip_with_one_good_and_one_unsafe_member_stores_nothing(manager_client: Client, isolated_storage: Path) -> None:
    archive = zip_bytes(
        [("good/ct.dcm", read_testdata("CT_small.dcm")), ("../evil.dcm", read_testdata("MR_small.dcm"))]
    )

    response = upload(manager_client, [("mixed.zip", archive)])

    assert response.status_code == 400
    assert "'../evil.dcm'" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_good_file_next_to_an_unsafe_zip_stores_nothing(manager_client: Client, isolated_storage: Path) -> None:
    archive = zip_bytes([("/abs.dcm", read_testdata("MR_small.dcm"))])

    response = upload(manager_client, [("ct.dcm", read_testdata("CT_small.dcm")), ("bad.zip", archive)])

    assert response.status_code == 400
    assert "Unsafe path in zip" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_zip_over_the_uncompressed_size_limit_is_413(
    manager_client: Client, isolated_storage: Path, settings: Any
) -> None:
    settings.IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES = 60_000
    data = read_testdata("CT_small.dcm")
    padding = bytes(50_000)  # compresses to almost nothing, like a zip bomb
    archive = zip_bytes([("ct.dcm", data), ("padding.dcm", padding)])
    total = len(data) + len(padding)
    assert len(archive) < settings.IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES < total

    response = upload(manager_client, [("big.zip", archive)])

    assert response.status_code == 413
    assert response.json()["code"] == "zip_too_large"
    assert f"Zip expands to {total} bytes, more than the limit of 60000" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_zip_with_too_many_files_is_413(manager_client: Client, isolated_storage: Path, settings: Any) -> None:
    settings.IMAGING_MAX_ZIP_FILES = 2
    data = read_testdata("CT_small.dcm")
    archive = zip_bytes([(f"{k}.dcm", data) for k in range(3)])

    response = upload(manager_client, [("many.zip", archive)])

    assert response.status_code == 413
    assert response.json()["code"] == "zip_too_many_files"
    assert "Zip holds 3 files, more than the limit of 2" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_a_zip_bomb_is_413_naming_the_ratio_limit(manager_client: Client, isolated_storage: Path) -> None:
    # 17 MiB of zeros deflates to about 17 KiB: a thousand-fold, where DICOM images compress a few times.
    archive = zip_bytes([("ct.dcm", read_testdata("CT_small.dcm")), ("bomb.dcm", bytes(17 * 1024**2))])
    assert len(archive) < 100_000

    response = upload(manager_client, [("bomb.zip", archive)])

    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "zip_bomb"
    assert "Zip member 'bomb.dcm' expands" in body["detail"] and "IMAGING_MAX_ZIP_RATIO" in body["detail"]
    assert "refused as a zip bomb" in body["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_a_zip_inside_a_zip_is_named_as_such(manager_client: Client, isolated_storage: Path) -> None:
    inner = zip_bytes([("ct.dcm", read_testdata("CT_small.dcm"))])
    response = upload(manager_client, [("outer.zip", zip_bytes([("inner.zip", inner)]))])

    assert response.status_code == 400
    [outcome] = response.json()["files"]
    assert outcome["code"] == "nested_zip" and "zip inside the zip" in outcome["reason"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_a_huge_report_is_capped_and_says_how_many_more_were_refused(
    manager_client: Client, isolated_storage: Path, settings: Any
) -> None:
    settings.IMAGING_MAX_REPORTED_FILES = 5
    junk = [(f"junk-{k:02d}.txt", f"not dicom {k}".encode()) for k in range(12)]
    response = upload(manager_client, [("mixed.zip", zip_bytes([("ct.dcm", read_testdata("CT_small.dcm")), *junk]))])

    assert response.status_code == 201
    body = response.json()
    assert body["counts"] == {"stored": 1, "duplicate": 0, "rejected": 12}
    # The refused files come first: they are what the user has to act on.
    assert [f["file"] for f in body["files"]] == [name for name, _ in junk[:5]]
    assert body["files_not_listed"] == {"stored": 1, "duplicate": 0, "rejected": 7}

    refused = upload(manager_client, [("junk.zip", zip_bytes(junk))])
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert detail.count("Not a DICOM Part 10 file") == 10 and "and 2 more files refused" in detail
    assert len(refused.json()["files"]) == 5


@pytest.mark.django_db
def test_file_named_zip_that_is_not_a_zip_is_400(manager_client: Client, isolated_storage: Path) -> None:
    response = upload(manager_client, [("broken.zip", b"PK\x03\x04 not really a zip")])

    assert response.status_code == 400
    assert "Not a valid zip archive" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_zip_of_bad_files_reports_each_member(manager_client: Client, isolated_storage: Path) -> None:
    archive = zip_bytes([("a/junk.txt", b"hello"), ("a/empty.dcm", b""), ("__MACOSX/._x", b"resource fork")])

    response = upload(manager_client, [("junk.zip", archive)])

    assert response.status_code == 400
    files = response.json()["files"]
    assert [(f["file"], f["status"]) for f in files] == [("a/junk.txt", "rejected"), ("a/empty.dcm", "rejected")]
    assert "Not a DICOM Part 10 file" in files[0]["reason"]
    assert "Empty file" in files[1]["reason"]
    assert_nothing_stored(isolated_storage)


# --- Size limits ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_upload_over_the_size_limit_is_413(manager_client: Client, isolated_storage: Path, settings: Any) -> None:
    settings.IMAGING_MAX_UPLOAD_BYTES = 10_000

    response = upload(manager_client, [("ct.dcm", read_testdata("CT_small.dcm"))])

    assert response.status_code == 413
    assert "over the limit of 10000 bytes" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_stow_over_the_size_limit_is_413(stow_client: Client, isolated_storage: Path, settings: Any) -> None:
    settings.IMAGING_MAX_UPLOAD_BYTES = 10_000

    response = stow(stow_client, [read_testdata("CT_small.dcm")])

    assert response.status_code == 413
    assert "over the upload limit of 10000 bytes" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


# --- STOW-RS specifics -----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["application/dicom", "application/json", "multipart/form-data; boundary=x"])
def test_stow_with_wrong_content_type_is_415(stow_client: Client, isolated_storage: Path, content_type: str) -> None:
    response = stow_client.post(STOW_URL, data=read_testdata("CT_small.dcm"), content_type=content_type)

    assert response.status_code == 415
    assert "multipart/related" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_stow_part_of_wrong_type_is_415(stow_client: Client, isolated_storage: Path) -> None:
    response = stow(stow_client, [read_testdata("CT_small.dcm")], part_type="image/png")

    assert response.status_code == 415
    assert "'image/png'" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_stow_with_study_uid_in_url_not_matching_the_instance_fails(
    stow_client: Client, isolated_storage: Path
) -> None:
    other_study = "1.2.826.0.1.3680043.8.498.12345"

    response = stow(stow_client, [read_testdata("CT_small.dcm")], url=f"{STOW_URL}/{other_study}")

    assert response.status_code == 409
    [failure] = stow_failures(response)
    assert failure["00081197"]["Value"] == [FAILURE_STUDY_MISMATCH]
    assert failure["00081155"]["Value"] == [ct_dataset().SOPInstanceUID]
    assert f"is not {other_study} named in the URL" in response["Warning"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_stow_with_malformed_study_uid_in_url_is_400(stow_client: Client, isolated_storage: Path) -> None:
    response = stow(stow_client, [read_testdata("CT_small.dcm")], url=f"{STOW_URL}/1.2.abc")

    assert response.status_code == 400
    assert "Malformed Study Instance UID" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_stow_by_non_manager_is_403(
    project: Project, make_member: Callable[..., User], token_for: Callable[[User], str], isolated_storage: Path
) -> None:
    annotator = make_member(project, Role.ANNOTATOR)
    client = Client(HTTP_AUTHORIZATION=f"Token {token_for(annotator)}")

    response = stow(client, [read_testdata("CT_small.dcm")])

    assert response.status_code == 403
    assert "Only a manager" in response.json()["detail"]
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_stow_without_credentials_is_401(project: Project, isolated_storage: Path) -> None:
    response = stow(Client(), [read_testdata("CT_small.dcm")])

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert_nothing_stored(isolated_storage)


@pytest.mark.django_db
def test_stow_with_good_and_bad_parts_stores_the_good_one(stow_client: Client, isolated_storage: Path) -> None:
    response = stow(stow_client, [read_testdata("CT_small.dcm"), b"hello"])

    assert response.status_code == 202
    body = response.json()
    assert len(body["00081199"]["Value"]) == 1
    assert len(body["00081198"]["Value"]) == 1
    assert "part 2: Not a DICOM Part 10 file" in response["Warning"]
    assert Instance.objects.count() == 1
    assert len(stored_files(isolated_storage)) == 1
