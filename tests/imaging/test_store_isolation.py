"""Image-store isolation, played as an attack through every ingest door and every UID case.

Two projects share the platform: B holds a study; A's manager sends DICOM through one door, borrowing one
of B's UIDs (or a byte-identical copy of one of B's instances). Every cell of the door x UID-case matrix
checks three things through every read door:

1. no access gained: afterwards A reads exactly what it read before, plus what it sent;
2. nothing of B changes: B's index (as B reads it), B's bytes and every file on disk are as before;
3. no oracle: A's answer has the same status and body shape (and timing class) as the answer to the same
   request with fresh UIDs, sent just before.

The doors are the HTTP upload (a file, a zip), STOW-RS, ``manage.py ingest``, the pull API (copy and index)
and project imports (copy and index); the last four go through the real Orthanc of the test run, where A
has put what it sends. Tests for explicit sharing (item 4) and patient consistency (item 5) follow.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pydicom
import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from annotation.models import Project, Role
from config.types import User
from imaging.models import DicomSource
from imaging.synthetic import generate_ct_study
from tests.conftest import dataset_bytes, require_env
from tests.factories import DicomSourceFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.services

B_PATIENT_ID = "B-PATIENT-7731"
B_PATIENT_NAME = "Victim^Beatrice"
A_PATIENT_ID = "A-PATIENT-0042"
A_PATIENT_NAME = "Mallory^Eve"

UID_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)+")
NUMBER_PATTERN = re.compile(r"[0-9]+")
_seed = iter(range(81000, 99999))


# --- Data --------------------------------------------------------------------------------------------


def ct_series(patient_id: str, patient_name: str, slices: int = 2) -> list[Dataset]:
    study = generate_ct_study(seed=next(_seed), rows=16, columns=16, slices=slices, n_lesions=0)
    datasets: list[Dataset] = list(study.datasets())
    # Fresh UIDs on every run: the seeds' own UIDs would meet the previous run's in a long-lived Orthanc.
    study_uid, series_uid = generate_uid(), generate_uid()
    for dataset in datasets:
        dataset.PatientID = patient_id
        dataset.PatientName = patient_name
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study_uid, series_uid
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return datasets


def crafted(
    template: Dataset, *, study: str | None = None, series: str | None = None, sop: str | None = None
) -> Dataset:
    """A new instance of A's patient, with fresh UIDs except the ones given."""
    dataset = copy.deepcopy(template)
    dataset.StudyInstanceUID = study or generate_uid()
    dataset.SeriesInstanceUID = series or generate_uid()
    dataset.SOPInstanceUID = sop or generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientID = A_PATIENT_ID
    dataset.PatientName = A_PATIENT_NAME
    return dataset


Triple = tuple[str, str, str]


def triples(datasets: list[Dataset]) -> set[Triple]:
    return {(str(d.StudyInstanceUID), str(d.SeriesInstanceUID), str(d.SOPInstanceUID)) for d in datasets}


# --- The world: projects A and B, B's study, A's manager -------------------------------------------


@dataclass
class World:
    a: Project
    b: Project
    a_manager: User
    b_manager: User
    b_study: list[Dataset]
    clients: dict[str, Client] = field(default_factory=dict)

    def client(self, user: User) -> Client:
        if user.username not in self.clients:
            client = Client()
            client.force_login(user)
            self.clients[user.username] = client
        return self.clients[user.username]


def upload(client: Client, project: str, files: list[tuple[str, bytes]]) -> Any:
    uploads = [SimpleUploadedFile(name, data, content_type="application/dicom") for name, data in files]
    return client.post("/api/v1/imaging/uploads/", {"project": project, "files": uploads})


@pytest.fixture
def world(db: None) -> World:
    a = cast(Project, ProjectFactory(slug="proj-a"))
    b = cast(Project, ProjectFactory(slug="proj-b"))
    a_manager = cast(User, UserFactory(username="a-manager"))
    b_manager = cast(User, UserFactory(username="b-manager"))
    MembershipFactory(project=a, user=a_manager, role=Role.MANAGER)
    MembershipFactory(project=b, user=b_manager, role=Role.MANAGER)
    world = World(a, b, a_manager, b_manager, ct_series(B_PATIENT_ID, B_PATIENT_NAME, slices=3))
    response = upload(
        world.client(b_manager), b.slug, [(f"b{i}.dcm", dataset_bytes(d)) for i, d in enumerate(world.b_study)]
    )
    assert response.status_code == 201, response.content
    return world


# --- What a user can read, through every read door ---------------------------------------------------


def qido(client: Client, path: str) -> list[dict[str, Any]]:
    response = client.get(path, {"includefield": "00100020,00100010"}, HTTP_ACCEPT="application/dicom+json")
    if response.status_code == 204:
        return []
    assert response.status_code == 200, (path, response.status_code, response.content[:300])
    return cast(list[dict[str, Any]], response.json())


def value(item: dict[str, Any], tag: str) -> str:
    element = item.get(tag, {}).get("Value", [""])[0]
    return str(element.get("Alphabetic", "") if isinstance(element, dict) else element)


def dicomweb_view(client: Client, project: str) -> set[tuple[str, ...]]:
    """Every instance the user can list over DICOMweb, unscoped and scoped, with its patient."""
    seen: set[tuple[str, ...]] = set()
    for root in ("/dicomweb", f"/dicomweb/projects/{project}"):
        for item in qido(client, f"{root}/instances"):
            seen.add((root, value(item, "0020000D"), value(item, "0020000E"), value(item, "00080018")))
        for study in qido(client, f"{root}/studies"):
            uid = value(study, "0020000D")
            seen.add((root, "study", uid, value(study, "00100020")))
            response = client.get(f"{root}/studies/{uid}/metadata", HTTP_ACCEPT="application/dicom+json")
            assert response.status_code == 200
            for item in response.json():
                seen.add((root, "meta", value(item, "00080018"), value(item, "00100020")))
    return seen


def rest_view(client: Client) -> set[tuple[str, ...]]:
    seen: set[tuple[str, ...]] = set()
    response = client.get("/api/v1/imaging/studies/", {"page_size": 500})
    assert response.status_code == 200
    body = response.json()
    for study in body["results"] if isinstance(body, dict) else body:
        uid = study["study_instance_uid"]
        detail = client.get(f"/api/v1/imaging/studies/{uid}/")
        assert detail.status_code == 200
        data = detail.json()
        seen.add(("rest", uid, data["patient_id"], data["patient_name"], str(data["number_of_instances"])))
        for series in data.get("series", []):
            seen.add(("rest-series", uid, series["series_instance_uid"], str(series["number_of_instances"])))
    return seen


def project_pages(client: Client, project: str) -> str:
    """The project-scoped read doors that show studies: cases, jobs, dashboards, exports."""
    bodies = []
    for path in (
        f"/api/v1/projects/{project}/cases/",
        f"/api/v1/jobs/?project={project}",
        f"/api/v1/projects/{project}/dashboard/",
        f"/api/v1/projects/{project}/exports/",
    ):
        response = client.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        bodies.append(response.content.decode())
    return "\n".join(bodies)


def response_bytes(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else bytes(response.content)


def b_view(world: World) -> dict[str, Any]:
    """B's study as B's manager reads it: the index and the bytes of every instance."""
    client = world.client(world.b_manager)
    uid = str(world.b_study[0].StudyInstanceUID)
    detail = client.get(f"/api/v1/imaging/studies/{uid}/").json()
    detail.pop("updated_at", None)
    listing = sorted(
        (value(i, "0020000E"), value(i, "00080018"), value(i, "00100020"))
        for i in qido(client, f"/dicomweb/projects/{world.b.slug}/studies/{uid}/instances")
    )
    hashes = {}
    for series, sop, _ in listing:
        response = client.get(
            f"/dicomweb/projects/{world.b.slug}/studies/{uid}/series/{series}/instances/{sop}",
            HTTP_ACCEPT='multipart/related; type="application/dicom"',
        )
        assert response.status_code == 200
        body = response_bytes(response)
        dataset = pydicom.dcmread(io.BytesIO(body.split(b"\r\n\r\n", 1)[1]), force=True)
        hashes[sop] = hashlib.sha256(dataset.PixelData).hexdigest() + str(dataset.PatientID)
    return {"detail": detail, "instances": listing, "hashes": hashes}


def disk(storage: Path) -> dict[str, str]:
    return {
        str(p.relative_to(storage)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in storage.rglob("*")
        if p.is_file()
    }


def b_instance_doors(world: World, sent: set[Triple]) -> Iterator[tuple[str, int, bytes]]:
    """A's requests for each of B's instances that A did not send itself, through every WADO door."""
    client = world.client(world.a_manager)
    for study, series, sop in sorted(triples(world.b_study) - sent):
        for root in ("/dicomweb", f"/dicomweb/projects/{world.a.slug}"):
            base = f"{root}/studies/{study}/series/{series}/instances/{sop}"
            for suffix, accept in (
                ("", 'multipart/related; type="application/dicom"'),
                ("/metadata", "application/dicom+json"),
                ("/frames/1", 'multipart/related; type="application/octet-stream"'),
                ("/rendered", "image/png"),
            ):
                response = client.get(base + suffix, HTTP_ACCEPT=accept)
                body = response_bytes(response)
                yield base + suffix, response.status_code, body
        if series not in {sent_series for _, sent_series, _ in sent}:
            response = client.get(f"/api/v1/imaging/series/{series}/")
            yield f"series {series}", response.status_code, response.content


# --- The doors ---------------------------------------------------------------------------------------


def put_in_orthanc(datasets: list[Dataset]) -> None:
    orthanc = require_env("ORTHANC_URL")
    for dataset in datasets:
        requests.post(f"{orthanc}/instances", data=dataset_bytes(dataset), timeout=30).raise_for_status()


def _multipart(datasets: list[Dataset]) -> tuple[bytes, str]:
    boundary = "isolation-boundary-8e1f"
    parts = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + dataset_bytes(d) + b"\r\n"
        for d in datasets
    )
    return parts + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def door_stow(world: World, datasets: list[Dataset], tmp: Path) -> tuple[int, Any]:
    body, content_type = _multipart(datasets)
    response = world.client(world.a_manager).post(
        f"/dicomweb/projects/{world.a.slug}/studies", data=body, content_type=content_type
    )
    return response.status_code, response.content.decode()


def door_upload(world: World, datasets: list[Dataset], tmp: Path) -> tuple[int, Any]:
    response = upload(
        world.client(world.a_manager), world.a.slug, [(f"a{i}.dcm", dataset_bytes(d)) for i, d in enumerate(datasets)]
    )
    return response.status_code, response.content.decode()


def door_upload_zip(world: World, datasets: list[Dataset], tmp: Path) -> tuple[int, Any]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, dataset in enumerate(datasets):
            archive.writestr(f"study/a{i}.dcm", dataset_bytes(dataset))
    return door_upload_raw(world, [("study.zip", buffer.getvalue())])


def door_upload_raw(world: World, files: list[tuple[str, bytes]]) -> tuple[int, Any]:
    response = upload(world.client(world.a_manager), world.a.slug, files)
    return response.status_code, response.content.decode()


def door_command(world: World, datasets: list[Dataset], tmp: Path) -> tuple[int, Any]:
    folder = tmp / f"cmd-{next(_seed)}"
    folder.mkdir()
    for i, dataset in enumerate(datasets):
        (folder / f"a{i}.dcm").write_bytes(dataset_bytes(dataset))
    out = io.StringIO()
    try:
        # Rejected files are listed on standard output, above the progress bar.
        with contextlib.redirect_stdout(out):
            call_command("ingest", str(folder), project=world.a.slug, stdout=out, stderr=io.StringIO())
    except Exception as exc:  # a CommandError is this door's answer
        return 1, str(exc).replace(str(folder), "FOLDER")
    return 0, out.getvalue().replace(str(folder), "FOLDER")


def _pull(mode: str) -> Callable[[World, list[Dataset], Path], tuple[int, Any]]:
    def door(world: World, datasets: list[Dataset], tmp: Path) -> tuple[int, Any]:
        put_in_orthanc(datasets)
        source = cast(DicomSource, DicomSourceFactory(name="isolation-pacs"))
        world.a.import_sources.add(source)  # A's own PACS, opened to it by an administrator
        response = world.client(world.a_manager).post(
            "/api/v1/imaging/pull/",
            {
                "source": source.name,
                "study_instance_uid": str(datasets[0].StudyInstanceUID),
                "project": world.a.slug,
                "mode": mode,
            },
            content_type="application/json",
        )
        body = response.json()
        if isinstance(body, dict):
            for volatile in ("created_at", "updated_at", "source"):
                body.pop(volatile, None)
        return response.status_code, body

    return door


def _import(mode: str) -> Callable[[World, list[Dataset], Path], tuple[int, Any]]:
    def door(world: World, datasets: list[Dataset], tmp: Path) -> tuple[int, Any]:
        from django.test import TestCase

        from config.celery import app
        from jobs.models import Job

        put_in_orthanc(datasets)
        source = cast(DicomSource, DicomSourceFactory(name="isolation-pacs"))
        world.a.import_sources.add(source)
        eager = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            with TestCase.captureOnCommitCallbacks(execute=True):
                response = world.client(world.a_manager).post(
                    f"/api/v1/projects/{world.a.slug}/imports/",
                    {"source": source.name, "study_uids": [str(datasets[0].StudyInstanceUID)], "mode": mode},
                    content_type="application/json",
                )
        finally:
            app.conf.task_always_eager = eager
        if response.status_code != 202:
            return response.status_code, response.json()
        job = Job.objects.get(pk=response.json()["id"])
        return response.status_code, {"status": job.status, "result": job.result}

    return door


DOORS: dict[str, Callable[[World, list[Dataset], Path], tuple[int, Any]]] = {
    "stow": door_stow,
    "upload": door_upload,
    "upload_zip": door_upload_zip,
    "ingest_command": door_command,
    "pull_copy": _pull("copy"),
    "pull_index": _pull("index"),
    "import_copy": _import("copy"),
    "import_index": _import("index"),
}


# --- The UID cases: (attack, control of the same shape with fresh UIDs) ----------------------------


def case_new_study(world: World) -> tuple[list[Dataset], list[Dataset]]:
    template = world.b_study[0]
    return [crafted(template)], [crafted(template)]


def case_borrowed_study(world: World) -> tuple[list[Dataset], list[Dataset]]:
    template = world.b_study[0]
    return [crafted(template, study=str(template.StudyInstanceUID))], [crafted(template)]


def case_borrowed_series(world: World) -> tuple[list[Dataset], list[Dataset]]:
    template = world.b_study[0]
    return [crafted(template, series=str(template.SeriesInstanceUID))], [crafted(template)]


def case_borrowed_sop(world: World) -> tuple[list[Dataset], list[Dataset]]:
    template = world.b_study[0]
    return [crafted(template, sop=str(template.SOPInstanceUID))], [crafted(template)]


def case_identical_copy(world: World) -> tuple[list[Dataset], list[Dataset]]:
    # B's instance byte for byte; the control is B's other instance, re-identified with fresh UIDs.
    control = copy.deepcopy(world.b_study[1])
    control.StudyInstanceUID, control.SeriesInstanceUID = generate_uid(), generate_uid()
    control.SOPInstanceUID = control.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return [copy.deepcopy(world.b_study[0])], [control]


CASES: dict[str, Callable[[World], tuple[list[Dataset], list[Dataset]]]] = {
    "new_study": case_new_study,
    "borrowed_study_uid": case_borrowed_study,
    "borrowed_series_uid": case_borrowed_series,
    "borrowed_sop_uid": case_borrowed_sop,
    "identical_copy": case_identical_copy,
}


def shape(status: int, body: Any) -> str:
    """The answer with every UID and number replaced: what an attacker can compare between two answers."""
    text = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
    text = text.replace(A_PATIENT_ID, "PATIENT").replace(B_PATIENT_ID, "PATIENT")
    text = re.sub(r"boundary=[0-9a-f]+", "boundary=X", text)
    return f"{status} " + NUMBER_PATTERN.sub("#", UID_PATTERN.sub("UID", text))


# --- The matrix --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("door", list(DOORS))
def test_ingest_never_reaches_or_changes_another_projects_study(
    door: str, case: str, world: World, isolated_storage: Path, tmp_path: Path
) -> None:
    attack, control = CASES[case](world)
    a_client = world.client(world.a_manager)

    started = time.perf_counter()
    control_answer = DOORS[door](world, control, tmp_path)
    control_seconds = time.perf_counter() - started
    assert control_answer[0] in (0, 200, 201, 202), control_answer

    a_before = dicomweb_view(a_client, world.a.slug) | rest_view(a_client)
    b_before = b_view(world)
    disk_before = disk(isolated_storage)

    started = time.perf_counter()
    attack_answer = DOORS[door](world, attack, tmp_path)
    attack_seconds = time.perf_counter() - started

    # 3. No oracle: the same answer as for fresh UIDs, in the same timing class.
    assert shape(*attack_answer) == shape(*control_answer)
    assert attack_seconds < max(1.5, 4 * control_seconds), (attack_seconds, control_seconds)

    # 1. No access gained: what A reads now is what it read before plus what it sent.
    sent = triples(attack)
    a_after = dicomweb_view(a_client, world.a.slug) | rest_view(a_client)
    gained = a_after - a_before
    sent_uids = {uid for triple in sent for uid in triple}
    for item in gained:
        uids = {part for part in item if UID_PATTERN.fullmatch(part)}
        assert uids <= sent_uids, f"A gained {item}, not part of what it sent"
        if case != "identical_copy":  # there A sent B's patient itself
            assert B_PATIENT_ID not in item and B_PATIENT_NAME not in item, item
    for where, status, body in b_instance_doors(world, sent):
        assert status == 404, (where, status)
        assert B_PATIENT_NAME.encode() not in body and B_PATIENT_ID.encode() not in body, where
    pages = project_pages(a_client, world.a.slug)
    for _study, _series, sop in triples(world.b_study) - sent:
        assert sop not in pages
    if case != "identical_copy":
        assert B_PATIENT_NAME not in pages and B_PATIENT_ID not in pages

    # 2. Nothing of B changes: B's index, B's bytes, and every file that was on disk.
    assert b_view(world) == b_before
    disk_after = disk(isolated_storage)
    assert {path: disk_after.get(path) for path in disk_before} == disk_before


# --- The same UIDs in two projects the caller manages ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("door", ["stow", "upload", "ingest_command", "pull_copy", "import_copy"])
def test_the_same_study_sent_to_two_projects_is_stored_in_each_and_shared_by_neither(
    door: str, world: World, tmp_path: Path
) -> None:
    c = cast(Project, ProjectFactory(slug="proj-c"))
    MembershipFactory(project=c, user=world.a_manager, role=Role.MANAGER)
    study = ct_series(A_PATIENT_ID, A_PATIENT_NAME, slices=2)
    status_a, body_a = DOORS[door](world, study, tmp_path)
    world_c = World(c, world.b, world.a_manager, world.b_manager, world.b_study, world.clients)
    status_c, body_c = DOORS[door](world_c, study, tmp_path)
    assert status_a in (0, 200, 201, 202) and status_c == status_a
    # "stored" in both, never "duplicate" (the answers differ only in the project they name)
    text_c = body_c if isinstance(body_c, str) else json.dumps(body_c, sort_keys=True)
    assert shape(status_a, body_a) == shape(status_c, text_c.replace("proj-c", "proj-a"))
    uid = str(study[0].StudyInstanceUID)
    client = world.client(world.a_manager)
    for slug in ("proj-a", "proj-c"):
        listed = qido(client, f"/dicomweb/projects/{slug}/studies/{uid}/instances")
        assert {value(i, "00080018") for i in listed} == {str(d.SOPInstanceUID) for d in study}
    # Each project holds its own copy: sending the study again to A is a duplicate there only.
    again = DOORS[door](world, study, tmp_path)
    if door in ("upload", "stow"):
        assert "duplicate" in again[1] or again[0] == 200
    from imaging.models import Study

    assert Study.objects.filter(study_instance_uid=uid).count() == 2


# --- Item 5: patient consistency within a store -----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("door", ["stow", "upload", "upload_zip", "ingest_command", "pull_copy", "import_copy"])
def test_an_instance_of_another_patient_is_refused_from_a_study_with_a_clear_409(
    door: str, world: World, isolated_storage: Path, tmp_path: Path
) -> None:
    study = ct_series(A_PATIENT_ID, A_PATIENT_NAME, slices=2)
    assert door_upload(world, study, tmp_path)[0] == 201
    intruder = crafted(study[0], study=str(study[0].StudyInstanceUID))
    intruder.PatientID, intruder.PatientName = "OTHER-PATIENT-99", "Other^Person"
    before = disk(isolated_storage)
    status, body = DOORS[door](world, [intruder], tmp_path)
    text = body if isinstance(body, str) else json.dumps(body)
    assert "OTHER-PATIENT-99" in text and A_PATIENT_ID in text, text  # the conflict, named
    if door == "ingest_command":
        assert "rejected 1" in text
    elif door == "import_copy":
        assert body["result"]["studies"][0]["status"] == "rejected"
    else:
        assert status == 409, (status, text)
    assert disk(isolated_storage) == before
    listed = qido(
        world.client(world.a_manager), f"/dicomweb/projects/proj-a/studies/{study[0].StudyInstanceUID}/instances"
    )
    assert {value(i, "00080018") for i in listed} == {str(d.SOPInstanceUID) for d in study}


@pytest.mark.django_db
def test_a_study_whose_own_files_disagree_on_the_patient_keeps_the_first_and_refuses_the_rest(
    world: World, tmp_path: Path
) -> None:
    study = ct_series(A_PATIENT_ID, A_PATIENT_NAME, slices=3)
    study[2].PatientID = "SOMEONE-ELSE"
    status, body = door_upload(world, study, tmp_path)
    report = json.loads(body)
    assert report["counts"] == {"stored": 2, "duplicate": 0, "rejected": 1}
    rejected = [f for f in report["files"] if f["status"] == "rejected"][0]
    assert rejected["code"] == "patient_mismatch" and "SOMEONE-ELSE" in rejected["reason"]


# --- Item 4: sharing is explicit ---------------------------------------------------------------------


def share(client: Client, to_project: str, body: dict[str, Any]) -> Any:
    return client.post(f"/api/v1/projects/{to_project}/shares/", body, content_type="application/json")


@pytest.mark.django_db
def test_a_manager_of_both_projects_shares_a_study_and_the_share_is_recorded(world: World, tmp_path: Path) -> None:
    from imaging.models import Instance, StudyShare

    uid = str(world.b_study[0].StudyInstanceUID)
    MembershipFactory(project=world.a, user=world.b_manager, role=Role.MANAGER)  # B's manager now manages A too
    b_client = world.client(world.b_manager)
    before = b_view(world)

    response = share(b_client, world.a.slug, {"from_project": world.b.slug, "study_uids": [uid], "reason": "emphysema"})

    assert response.status_code == 201, response.content
    [record] = response.json()
    assert record["from_project"] == "proj-b" and record["to_project"] == "proj-a"
    assert record["shared_by"] == "b-manager" and record["instances"] == 3 and record["reason"] == "emphysema"
    event = StudyShare.objects.get()
    assert event.study_instance_uid == uid and event.from_store == world.b.image_store
    # A now reads the study, pixels and all, from its own copy; the files on disk are B's, not duplicated.
    a_listed = qido(world.client(world.a_manager), f"/dicomweb/projects/proj-a/studies/{uid}/instances")
    assert {value(i, "00080018") for i in a_listed} == {str(d.SOPInstanceUID) for d in world.b_study}
    copies = Instance.objects.filter(sop_instance_uid=str(world.b_study[0].SOPInstanceUID))
    assert copies.count() == 2 and len(set(copies.values_list("file", flat=True))) == 1
    assert b_view(world) == before
    # The copy is independent: what A stores into it later is not B's.
    extra = crafted(world.b_study[0], study=uid)
    extra.PatientID, extra.PatientName = B_PATIENT_ID, B_PATIENT_NAME
    assert door_upload(world, [extra], tmp_path)[0] == 201
    assert b_view(world) == before
    # Sharing again is a clear 409, and the share log cannot be rewritten.
    again = share(b_client, world.a.slug, {"from_project": world.b.slug, "study_uids": [uid]})
    assert again.status_code == 409 and "already" in again.json()["detail"]
    listed = b_client.get(f"/api/v1/projects/{world.b.slug}/shares/")
    assert [s["study_instance_uid"] for s in listed.json()] == [uid]
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic():
        StudyShare.objects.filter(pk=event.pk).update(reason="rewritten")


@pytest.mark.django_db
def test_only_someone_who_manages_both_projects_may_share(world: World) -> None:
    from imaging.models import Study, StudyShare

    uid = str(world.b_study[0].StudyInstanceUID)
    a_client = world.client(world.a_manager)
    # A's manager is not in B: the same 404 as for a project that does not exist.
    refused = share(a_client, world.a.slug, {"from_project": world.b.slug, "study_uids": [uid]})
    missing = share(a_client, world.a.slug, {"from_project": "no-such-project", "study_uids": [uid]})
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["detail"] == missing.json()["detail"]
    # An annotator of B who manages A is refused too, naming why.
    MembershipFactory(project=world.b, user=world.a_manager, role=Role.ANNOTATOR)
    annotator = share(a_client, world.a.slug, {"from_project": world.b.slug, "study_uids": [uid]})
    assert annotator.status_code == 403 and "proj-b" in annotator.json()["detail"]
    # Only administrators share from the platform store.
    platform = share(a_client, world.a.slug, {"from_project": None, "study_uids": [uid]})
    assert platform.status_code == 403
    assert StudyShare.objects.count() == 0 and Study.objects.filter(study_instance_uid=uid).count() == 1

    admin = cast(User, UserFactory(username="root", is_superuser=True, is_staff=True))
    admin_client = Client()
    admin_client.force_login(admin)
    unknown = share(admin_client, world.a.slug, {"from_project": world.b.slug, "study_uids": [uid, "1.2.3.4"]})
    assert unknown.status_code == 404 and "1.2.3.4" in unknown.json()["detail"]
    assert StudyShare.objects.count() == 0  # all or nothing
    done = share(admin_client, world.a.slug, {"from_project": world.b.slug, "study_uids": [uid]})
    assert done.status_code == 201 and done.json()[0]["shared_by"] == "root"


@pytest.mark.django_db
def test_ingest_alone_never_shares(world: World, tmp_path: Path) -> None:
    from imaging.models import Study, StudyShare

    # B's manager also manages A and uploads B's very study into A: a second copy, not a link, and no share.
    MembershipFactory(project=world.a, user=world.b_manager, role=Role.MANAGER)
    response = upload(
        world.client(world.b_manager),
        world.a.slug,
        [(f"b{i}.dcm", dataset_bytes(d)) for i, d in enumerate(world.b_study)],
    )
    assert response.status_code == 201 and response.json()["counts"]["stored"] == 3
    uid = str(world.b_study[0].StudyInstanceUID)
    assert set(Study.objects.filter(study_instance_uid=uid).values_list("store_id", flat=True)) == {
        world.a.image_store_id,
        world.b.image_store_id,
    }
    assert StudyShare.objects.count() == 0


@pytest.mark.django_db
def test_a_uid_in_two_of_the_callers_projects_is_one_study_on_the_unscoped_doors(world: World, tmp_path: Path) -> None:
    c = cast(Project, ProjectFactory(slug="proj-c"))
    MembershipFactory(project=c, user=world.a_manager, role=Role.MANAGER)
    study = ct_series(A_PATIENT_ID, A_PATIENT_NAME, slices=2)
    uid = str(study[0].StudyInstanceUID)
    assert door_upload(world, study[:1], tmp_path)[0] == 201  # A holds the first slice
    world_c = World(c, world.b, world.a_manager, world.b_manager, world.b_study, world.clients)
    assert door_upload(world_c, study, tmp_path)[0] == 201  # C holds both
    client = world.client(world.a_manager)

    listed = [value(s, "0020000D") for s in qido(client, "/dicomweb/studies")]
    assert listed.count(uid) == 1
    # The unscoped doors answer with the oldest store's copy (A's, one instance); the scoped ones with each.
    assert len(qido(client, f"/dicomweb/studies/{uid}/instances")) == 1
    assert len(qido(client, f"/dicomweb/projects/proj-c/studies/{uid}/instances")) == 2
    assert client.get(f"/api/v1/imaging/studies/{uid}/").json()["number_of_instances"] == 1
    assert client.get(f"/api/v1/imaging/studies/{uid}/", {"project": "proj-c"}).json()["number_of_instances"] == 2
    series = client.get(f"/api/v1/imaging/series/{study[0].SeriesInstanceUID}/")
    assert series.status_code == 200 and series.json()["number_of_instances"] == 1
    in_c = client.get(f"/api/v1/imaging/series/{study[0].SeriesInstanceUID}/", {"project": "proj-c"})
    assert in_c.json()["number_of_instances"] == 2


@pytest.mark.django_db
def test_a_project_cannot_pull_another_projects_study_from_that_projects_pacs(
    world: World, isolated_storage: Path
) -> None:
    """B keeps its pixels in a PACS: its study is there. A's manager names that PACS and B's UID on the pull
    API and on an import: refused (403), since nobody opened B's PACS to A; nothing is stored or indexed."""
    from imaging.models import Study
    from jobs.models import Job

    pacs = cast(DicomSource, DicomSourceFactory(name="b-pacs"))
    world.b.dicom_source = pacs
    world.b.save()
    b_study = ct_series(B_PATIENT_ID, B_PATIENT_NAME, slices=2)
    body, content_type = _multipart(b_study)
    stored = world.client(world.b_manager).post(
        "/dicomweb/projects/proj-b/studies", data=body, content_type=content_type
    )
    assert stored.status_code == 200, stored.content
    uid = str(b_study[0].StudyInstanceUID)
    a_client = world.client(world.a_manager)
    before = disk(isolated_storage)

    for mode in ("copy", "index"):
        pulled = a_client.post(
            "/api/v1/imaging/pull/",
            {"source": "b-pacs", "study_instance_uid": uid, "project": "proj-a", "mode": mode},
            content_type="application/json",
        )
        assert pulled.status_code == 403 and "b-pacs" in pulled.json()["detail"]
    imported = a_client.post(
        "/api/v1/projects/proj-a/imports/", {"source": "b-pacs", "study_uids": [uid]}, content_type="application/json"
    )
    assert imported.status_code == 403
    assert not Job.objects.exists()
    assert not Study.objects.filter(store=world.a.image_store).exists()
    assert disk(isolated_storage) == before
    assert qido(a_client, "/dicomweb/studies") == []
