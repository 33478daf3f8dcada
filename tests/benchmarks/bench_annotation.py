"""Annotation benchmarks.

1. Mask revisions: saving a revision with a 300x512x512 uint8 label mask (five spheres, segments 1..3,
   slightly changed on every save) through the ``annotation_save`` service, sent as gzip-base64 and as
   rle-base64: median and p95 latency, the check alone and the bytes stored, against writing the same array
   with nibabel as .nii.gz in the same run; then the same saves through the HTTP API (encode + POST to
   gunicorn). A short run: bash scripts/bench.sh annotation --only masks --saves 3 --api-saves 2
2. Worklist under load: 10,000 cases, 50 readers with their own tokens, gunicorn (2 workers, 4 threads)
   on 127.0.0.1; 50 client threads each loop (20 iterations or 60 s, whichever comes first) over
   POST worklist/next, GET cases/?limit=50 and POST a submitted reading of the claimed case. Submitting is
   what frees the reader for the next claim (an unfinished assignment is handed back by "next" as it is),
   so every iteration makes a real claim rather than re-reading the same one. p50/p95/max per endpoint,
   errors, and the checks: no request over 1 s, no errors, no two readers on one slot.

Run with: bash scripts/bench.sh annotation [--saves 20] [--cases 10000] [--readers 50] [--only masks|worklist]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, cast

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import requests  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from annotation import services  # noqa: E402
from annotation.labels import check_mask, encode_mask, encode_mask_rle, load_example_schema  # noqa: E402
from annotation.models import Assignment, Case, MaskFile, Membership, Project, Role  # noqa: E402
from imaging.models import Study  # noqa: E402
from imaging.services.ingest import IncomingFile, ingest_files  # noqa: E402
from imaging.synthetic import generate_ct_study  # noqa: E402
from tests.benchmarks.bench_imaging import start_server, stop_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIRST = "first_reader"
COMPLETE = {"items": [{"label": "nodule_present", "value": "no"}]}

MASK_SCHEMA = {
    "name": "Bench segmentation",
    "labels": [
        {"key": "quality", "level": "study", "kind": "single_choice", "choices": [{"key": "good"}, {"key": "poor"}]},
        {
            "key": "organs",
            "level": "series",
            "kind": "mask",
            "segments": [{"value": 1, "key": "nodule"}, {"value": 2, "key": "vessel"}, {"value": 3, "key": "airway"}],
        },
    ],
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * len(ordered))) - 1))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(1000 * statistics.median(values), 1),
        "p95_ms": round(1000 * percentile(values, 0.95), 1),
        "max_ms": round(1000 * max(values), 1),
    }


# --- 1. Mask revisions --------------------------------------------------------------------------------------


SPHERES = [  # (z, y, x as fractions of the volume, radius as a fraction of the rows, segment value)
    (0.27, 0.39, 0.35, 0.06, 1),
    (0.50, 0.59, 0.64, 0.09, 2),
    (0.73, 0.49, 0.29, 0.05, 3),
    (0.40, 0.27, 0.70, 0.035, 1),
    (0.67, 0.74, 0.51, 0.07, 2),
]


def sphere_mask(shape: tuple[int, int, int], step: int) -> np.ndarray:
    """Five spheres; ``step`` grows the first one by a voxel and moves the last, as a brush stroke would."""
    mask = np.zeros(shape, dtype=np.uint8)
    for index, (fz, fy, fx, fr, value) in enumerate(SPHERES):
        z, y, x = int(fz * shape[0]), int(fy * shape[1]), int(fx * shape[2])
        radius = max(int(fr * shape[1]), 2)
        if index == 0:
            radius += step % 3
        if index == len(SPHERES) - 1:
            x += step
        z0, z1 = max(z - radius, 0), min(z + radius + 1, shape[0])
        y0, y1 = max(y - radius, 0), min(y + radius + 1, shape[1])
        x0, x1 = max(x - radius, 0), min(x + radius + 1, shape[2])
        zz, yy, xx = np.ogrid[z0:z1, y0:y1, x0:x1]
        inside = (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        mask[z0:z1, y0:y1, x0:x1][inside] = value
    return mask


def mask_case(slices: int, size: int) -> tuple[Project, Case, User, str, np.ndarray]:  # affine last
    study = generate_ct_study(seed=4242, rows=size, columns=size, slices=slices, n_lesions=0)
    files = []
    for index, dataset in enumerate(study.datasets()):
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        files.append(IncomingFile(name=f"mask-{index}", data=buffer.getvalue()))
    report = ingest_files(files)
    assert report.counts()["stored"] == len(files), report.counts()
    project, _ = Project.objects.get_or_create(slug="bench-masks", defaults={"name": "Bench masks"})
    services.schema_create_version(project=project, definition=MASK_SCHEMA, created_by=None)
    from tests.factories import place_studies  # after django.setup()

    place_studies(project, [study.study_uid])
    [case] = services.cases_create(project=project, study_uids=[study.study_uid])
    reader, _ = User.objects.get_or_create(username="bench-mask-reader")
    services.membership_grant(project=project, user=reader, role=Role.ANNOTATOR)
    services.assignment_create(case=case, user=reader, role=FIRST, assigned_by=None)
    affine = np.diag([study.pixel_spacing[1], study.pixel_spacing[0], study.slice_spacing, 1.0])
    return project, case, reader, study.series_uid, affine


ENCODERS = {"gzip": encode_mask, "rle": encode_mask_rle}


def mask_values(series_uid: str, mask: np.ndarray, encoding: str = "gzip") -> dict[str, Any]:
    return {
        "items": [
            {"label": "quality", "value": "good"},
            {"label": "organs", "series_instance_uid": series_uid, "mask": ENCODERS[encoding](mask)},
        ]
    }


def bench_masks(saves: int, slices: int, size: int, port: int, api_saves: int) -> dict[str, Any]:
    """Each step saves the same changed mask twice, as gzip-base64 then as rle-base64 (the browser's
    encoding), and writes it with nibabel as .nii.gz: every ratio is against nibabel in the same run."""
    project, case, reader, series_uid, affine = mask_case(slices, size)
    shape = (slices, size, size)
    print(f"masks: {shape} uint8 = {np.prod(shape) / 1e6:.1f} MB raw per mask, {saves} saves per encoding")

    service_s: dict[str, list[float]] = {name: [] for name in ENCODERS}
    check_s: dict[str, list[float]] = {name: [] for name in ENCODERS}
    encode_s: dict[str, list[float]] = {name: [] for name in ENCODERS}
    stored: dict[str, list[int]] = {name: [] for name in ENCODERS}
    body: dict[str, list[int]] = {name: [] for name in ENCODERS}
    nifti_s: list[float] = []
    nifti_bytes: list[int] = []
    number = 0
    with tempfile.TemporaryDirectory() as scratch:
        for step in range(saves):
            mask = sphere_mask(shape, step)
            for encoding in ENCODERS:
                start = time.perf_counter()
                values = mask_values(series_uid, mask, encoding)  # what a client does before it sends
                encode_s[encoding].append(time.perf_counter() - start)
                payload = values["items"][1]["mask"]
                body[encoding].append(len(payload["data"]))
                start = time.perf_counter()
                check_mask(payload, "mask")  # the check alone, inside the save below
                check_s[encoding].append(time.perf_counter() - start)

                start = time.perf_counter()
                revision = services.annotation_save(
                    case=case, reader=reader, role=FIRST, base_revision=number, values=values
                )
                service_s[encoding].append(time.perf_counter() - start)
                number += 1
                [mask_file] = revision.masks.all()
                stored[encoding].append(mask_file.stored_bytes)
                if step == 0:
                    loaded = services.load_mask(mask_file)
                    assert loaded.tobytes() == mask.tobytes(), "the stored mask does not round-trip"
                    present = revision.items[1]["mask"]["segments_present"]
                    assert present == [1, 2, 3], present

            # nibabel stores (x, y, z): the same voxels, transposed as a NIfTI writer would be given them.
            path = Path(scratch) / f"mask-{step}.nii.gz"
            start = time.perf_counter()
            nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0), affine), str(path))
            nifti_s.append(time.perf_counter() - start)
            nifti_bytes.append(path.stat().st_size)
            if step == 0:
                image = cast(nib.Nifti1Image, nib.load(str(path)))
                back = np.asarray(image.dataobj).transpose(2, 1, 0)
                assert back.tobytes() == mask.tobytes(), "nibabel round-trip"
            path.unlink()
    distinct = MaskFile.objects.filter(revisions__annotation__case=case).distinct().count()
    assert distinct == 2 * saves, f"every save changes the mask: {distinct} files for {2 * saves} saves"

    api: dict[str, Any] = {}
    if api_saves:
        token = Token.objects.get_or_create(user=reader)[0].key
        server = start_server(port)
        try:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            url = f"http://127.0.0.1:{port}/api/v1/cases/{case.pk}/revisions/"
            for encoding in ENCODERS:
                api_s: list[float] = []
                body_bytes: list[int] = []
                for step in range(saves, saves + api_saves):
                    request_body = {
                        "role": FIRST,
                        "base_revision": number,
                        "values": mask_values(series_uid, sphere_mask(shape, step), encoding),
                    }
                    data = json.dumps(request_body).encode()
                    body_bytes.append(len(data))
                    start = time.perf_counter()
                    response = session.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=120)
                    api_s.append(time.perf_counter() - start)
                    assert response.status_code == 201, response.text[:500]
                    number += 1
                    assert response.json()["number"] == number
                api[encoding] = {**summary_ms(api_s), "request_body_bytes_median": int(statistics.median(body_bytes))}
        finally:
            stop_server(server)

    nifti_p50 = statistics.median(nifti_s)
    per_encoding = {
        encoding: {
            "annotation_save": summary_ms(service_s[encoding]),
            "check_mask": summary_ms(check_s[encoding]),
            "client_encode_mask": summary_ms(encode_s[encoding]),
            "payload_base64_bytes_median": int(statistics.median(body[encoding])),
            "stored_bytes_median": int(statistics.median(stored[encoding])),
            "save_over_nibabel_p50": round(statistics.median(service_s[encoding]) / nifti_p50, 2),
            "stored_over_nifti_bytes": round(statistics.median(stored[encoding]) / statistics.median(nifti_bytes), 3),
        }
        for encoding in ENCODERS
    }
    return {
        "shape": list(shape),
        "raw_bytes": int(np.prod(shape)),
        "revisions_per_encoding": saves,
        "distinct_mask_files": distinct,
        "nibabel_nii_gz": {**summary_ms(nifti_s), "file_bytes_median": int(statistics.median(nifti_bytes))},
        **per_encoding,
        # The old figure's names (gzip-base64, what the browser sent until issue 19).
        "save_over_nibabel_p50": per_encoding["gzip"]["save_over_nibabel_p50"],
        # What the reader's browser sends now (rle-base64); its own encode (frontend/src/lib/mask.ts) is timed by
        # cd frontend && npx vitest bench --run tests/mask.bench.ts.
        "browser_save_over_nibabel_p50": per_encoding["rle"]["save_over_nibabel_p50"],
        "api_post": api,
        "project": project.slug,
        "load_average": os.getloadavg(),
    }


# --- 2. Worklist under load ---------------------------------------------------------------------------------


def worklist_project(cases: int, readers: int) -> tuple[Project, list[tuple[str, str]]]:
    project, _ = Project.objects.get_or_create(slug="bench-worklist", defaults={"name": "Bench worklist"})
    if not project.schemas.exists():
        services.schema_create_version(
            project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None
        )
    existing = Case.objects.filter(project=project).count()
    if existing < cases:
        rng = np.random.default_rng(7)
        uids = [f"1.2.826.0.1.3680043.8.498.66.{i}" for i in range(existing, cases)]
        Study.objects.bulk_create(
            [
                Study(
                    store=project.image_store,
                    study_instance_uid=uid,
                    patient_id=f"W{i:06d}",
                    study_date=f"20{10 + i % 15:02d}{1 + i % 12:02d}{1 + i % 28:02d}",
                    study_description="CT CHEST",
                    modalities_in_study="CT",
                )
                for i, uid in enumerate(uids)
            ],
            batch_size=2000,
        )
        ids = dict(
            Study.objects.filter(store=project.image_store, study_instance_uid__in=uids).values_list(
                "study_instance_uid", "pk"
            )
        )
        # Priorities as active learning would leave them: a few levels, many ties, so age matters too.
        priorities = rng.integers(0, 5, size=len(uids)).astype(float)
        Case.objects.bulk_create(
            [
                Case(project=project, study_id=ids[uid], priority=float(p), priority_source="bench")
                for uid, p in zip(uids, priorities, strict=True)
            ],
            batch_size=2000,
        )
    users = []
    for i in range(readers):
        user, _ = User.objects.get_or_create(username=f"bench-reader-{i:02d}")
        Membership.objects.get_or_create(project=project, user=user, role=Role.ANNOTATOR)
        users.append((user.username, Token.objects.get_or_create(user=user)[0].key))
    return project, users


def bench_worklist(cases: int, readers: int, iterations: int, seconds: float, port: int) -> dict[str, Any]:
    project, users = worklist_project(cases, readers)
    total = Case.objects.filter(project=project).count()
    print(f"worklist: {total} cases, {readers} readers, up to {iterations} iterations or {seconds:.0f} s each")
    base = f"http://127.0.0.1:{port}/api/v1"
    server = start_server(port)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    claims: dict[str, list[int]] = defaultdict(list)
    empty = Counter[str]()
    lock = threading.Lock()
    try:
        # Warm both workers (imports, first queries) with requests nobody measures.
        warm = requests.Session()
        warm.headers["Authorization"] = f"Token {users[0][1]}"
        for _ in range(8):
            warm.get(f"{base}/projects/{project.slug}/cases/", params={"limit": 50}, timeout=30).raise_for_status()
        barrier = threading.Barrier(readers)

        def reader_loop(username: str, token: str) -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"

            def timed(name: str, method: str, url: str, expect: tuple[int, ...], **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    response = session.request(method, url, timeout=30, **kwargs)
                except requests.RequestException as exc:
                    with lock:
                        errors.append(f"{name}: {exc}")
                    return None
                elapsed = time.perf_counter() - start
                with lock:
                    latencies[name].append(elapsed)
                    if response.status_code not in expect:
                        errors.append(f"{name}: HTTP {response.status_code} {response.text[:200]}")
                return response

            barrier.wait(timeout=60)
            deadline = time.perf_counter() + seconds
            for _ in range(iterations):
                if time.perf_counter() > deadline:
                    break
                claimed = timed(
                    "worklist_next",
                    "POST",
                    f"{base}/projects/{project.slug}/worklist/next/",
                    (200, 204),
                    json={"role": FIRST},
                )
                timed("case_list", "GET", f"{base}/projects/{project.slug}/cases/", (200,), params={"limit": 50})
                if claimed is None or claimed.status_code != 200:
                    with lock:
                        empty[username] += 1
                    continue
                case_id = claimed.json()["case"]["id"]
                with lock:
                    claims[username].append(case_id)
                timed(
                    "submit_reading",
                    "POST",
                    f"{base}/cases/{case_id}/revisions/",
                    (201,),
                    json={"role": FIRST, "base_revision": 0, "values": COMPLETE, "submit": True},
                )

        threads = [threading.Thread(target=reader_loop, args=user) for user in users]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        stop_server(server)

    # Checks, on what the clients saw and on the database.
    claimed_by: dict[int, set[str]] = defaultdict(set)
    for username, case_ids in claims.items():
        for case_id in case_ids:
            claimed_by[case_id].add(username)
    shared_client = {case_id: sorted(names) for case_id, names in claimed_by.items() if len(names) > 1}
    shared_db = (
        Assignment.objects.filter(case__project=project)
        .values("case_id", "role", "slot")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    first_readers_per_case = (
        Assignment.objects.filter(case__project=project, role=FIRST)
        .values("case_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    every = [value for values in latencies.values() for value in values]
    requests_done = len(every)
    result: dict[str, Any] = {
        "host_cpus": os.cpu_count(),  # clients, gunicorn and PostgreSQL share them
        "cases": total,
        "readers": readers,
        "wall_s": round(wall, 1),
        "requests": requests_done,
        "requests_per_s": round(requests_done / wall, 1),
        "claims": sum(len(v) for v in claims.values()),
        "endpoints": {name: summary_ms(values) for name, values in sorted(latencies.items())},
        "errors": len(errors),
        "error_samples": errors[:5],
        "checks": {
            "no_request_over_1s": max(every) <= 1.0,
            "zero_errors": not errors,
            "no_shared_slot_clients": not shared_client,
            "no_shared_slot_db": shared_db == 0 and first_readers_per_case == 0,
            "every_claim_submitted": Assignment.objects.filter(case__project=project, status="active").count() == 0,
        },
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--saves", type=int, default=20, help="service saves of the mask revision benchmark")
    parser.add_argument("--api-saves", type=int, default=10, help="saves of the same through the HTTP API")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--port", type=int, default=8775)
    parser.add_argument("--only", choices=["masks", "worklist"], action="append")
    parser.add_argument("--out", default="annotation.json", help="file name under bench-results/")
    args = parser.parse_args()
    only = set(args.only or ["masks", "worklist"])
    results: dict[str, Any] = {}
    if "masks" in only:
        results["masks"] = bench_masks(args.saves, args.slices, args.size, args.port, args.api_saves)
        print(json.dumps(results["masks"], indent=2))
    if "worklist" in only:
        connection.close()
        results["worklist"] = bench_worklist(args.cases, args.readers, args.iterations, args.seconds, args.port + 1)
        print(json.dumps(results["worklist"], indent=2))
        checks = results["worklist"]["checks"]
        print("checks: " + ", ".join(f"{name}={'PASS' if ok else 'FAIL'}" for name, ok in checks.items()))
    out = ROOT / "bench-results" / args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
