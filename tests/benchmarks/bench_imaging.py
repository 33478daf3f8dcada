"""Foundation benchmarks, each as a ratio against Orthanc measured in the same run.

1. Ingest rate of 2,000 synthetic 512x512 CT slices through the ingest service, and of the same files
   POSTed to Orthanc's REST API.
2. WADO-RS: all frames of a 300-slice series through /dicomweb/ from the local store, straight from
   Orthanc, and through our proxy in front of Orthanc (one request per instance, as Cornerstone does).
3. QIDO-RS study search p95 over 10,000 indexed studies.

Run with: bash scripts/bench.sh imaging [--slices 2000] [--studies 10000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import pydicom  # noqa: E402
import requests  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from annotation.models import Membership, Project  # noqa: E402
from imaging.models import DicomSource, Study  # noqa: E402
from imaging.services.ingest import IncomingFile, ingest_files  # noqa: E402
from imaging.synthetic import generate_ct_study  # noqa: E402

ORTHANC = os.environ["ORTHANC_URL"]
ORTHANC_WEB = os.environ["ORTHANC_DICOMWEB_URL"]
ROOT = Path(__file__).resolve().parents[2]


def series_files(seed: int, slices: int, size: int = 512) -> list[IncomingFile]:
    study = generate_ct_study(seed=seed, rows=size, columns=size, slices=slices, n_lesions=3)
    files = []
    for index, dataset in enumerate(study.datasets()):
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        files.append(IncomingFile(name=f"{seed}-{index}", data=buffer.getvalue()))
    return files


def bench_ingest(total: int) -> dict[str, float]:
    per_series = 200
    files: list[IncomingFile] = []
    seed = 500
    while len(files) < total:
        files.extend(series_files(seed, min(per_series, total - len(files))))
        seed += 1
    megabytes = sum(len(f.data) for f in files) / 1e6
    print(f"ingest: {len(files)} files, {megabytes:.0f} MB in memory")

    # Into a project's own store, as every door does since stores are per project.
    first, _ = Project.objects.get_or_create(slug="bench-ingest", defaults={"name": "Bench ingest"})
    start = time.perf_counter()
    report = ingest_files(files, store=first.image_store)
    ours = time.perf_counter() - start
    assert report.counts()["stored"] == len(files), report.counts()
    # The same files into a second project: a separate copy in the index, the bytes already on disk reused.
    second, _ = Project.objects.get_or_create(slug="bench-ingest-2", defaults={"name": "Bench ingest 2"})
    start = time.perf_counter()
    again = ingest_files(files, store=second.image_store)
    second_project = time.perf_counter() - start
    assert again.counts()["stored"] == len(files), again.counts()

    session = requests.Session()
    start = time.perf_counter()
    for incoming in files:
        response = session.post(
            f"{ORTHANC}/instances", data=incoming.data, headers={"Content-Type": "application/dicom"}
        )
        response.raise_for_status()
    orthanc = time.perf_counter() - start
    result = {
        "files": len(files),
        "ours_instances_per_s": len(files) / ours,
        "orthanc_instances_per_s": len(files) / orthanc,
        "second_project_instances_per_s": len(files) / second_project,
    }
    result["ratio_ours_over_orthanc"] = result["ours_instances_per_s"] / result["orthanc_instances_per_s"]
    return result


def start_server(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    for _ in range(150):
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return process
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def fetch_all_frames(base: str, study: str, series: str, sops: list[str], token: str | None) -> float:
    session = requests.Session()
    if token:
        # A token, as OHIF or a script would send; basic auth would hash the password on every request.
        session.headers["Authorization"] = f"Token {token}"
    headers = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
    start = time.perf_counter()
    total = 0
    for sop in sops:
        response = session.get(f"{base}/studies/{study}/series/{series}/instances/{sop}/frames/1", headers=headers)
        response.raise_for_status()
        total += len(response.content)
    elapsed = time.perf_counter() - start
    assert total > len(sops) * 512 * 512 * 2, total
    return elapsed


def bench_wado(slices: int, port: int) -> dict[str, float]:
    files = series_files(900, slices)
    user, _ = User.objects.get_or_create(username="bench")
    user.set_password("bench-password")
    user.save()
    local_project, _ = Project.objects.get_or_create(slug="bench-local", defaults={"name": "Bench local"})
    Membership.objects.get_or_create(project=local_project, user=user, role="manager")
    ingest_files(files, store=local_project.image_store)
    session = requests.Session()
    for incoming in files:
        session.post(f"{ORTHANC}/instances", data=incoming.data).raise_for_status()
    # A second copy of the series under other UIDs, indexed here but proxied to Orthanc.
    proxy_files = series_files(901, slices)
    for incoming in proxy_files:
        session.post(f"{ORTHANC}/instances", data=incoming.data).raise_for_status()
    source, _ = DicomSource.objects.get_or_create(
        name="bench-orthanc", defaults={"kind": "dicomweb", "base_url": ORTHANC_WEB, "timeout_seconds": 30}
    )
    proxy_project, _ = Project.objects.get_or_create(
        slug="bench-proxy", defaults={"name": "Bench proxy", "dicom_source": source}
    )
    Membership.objects.get_or_create(project=proxy_project, user=user, role="manager")
    from imaging.services.pull import study_index_upstream

    proxy_study = pydicom.dcmread(io.BytesIO(proxy_files[0].data), stop_before_pixels=True)
    study_index_upstream(
        source=source, study_instance_uid=proxy_study.StudyInstanceUID, store=proxy_project.image_store
    )

    local = pydicom.dcmread(io.BytesIO(files[0].data), stop_before_pixels=True)
    local_sops = [pydicom.dcmread(io.BytesIO(f.data), stop_before_pixels=True).SOPInstanceUID for f in files]
    proxy_sops = [pydicom.dcmread(io.BytesIO(f.data), stop_before_pixels=True).SOPInstanceUID for f in proxy_files]

    server = start_server(port)
    try:
        base = f"http://127.0.0.1:{port}/dicomweb"
        auth = Token.objects.get_or_create(user=user)[0].key
        # Warm both servers once, then take the best of three runs of each path.
        fetch_all_frames(base, local.StudyInstanceUID, local.SeriesInstanceUID, local_sops[:10], auth)
        fetch_all_frames(ORTHANC_WEB, local.StudyInstanceUID, local.SeriesInstanceUID, local_sops[:10], None)
        runs: dict[str, list[float]] = {"local": [], "orthanc": [], "proxy": []}
        for _ in range(3):
            runs["local"].append(
                fetch_all_frames(base, local.StudyInstanceUID, local.SeriesInstanceUID, local_sops, auth)
            )
            runs["orthanc"].append(
                fetch_all_frames(ORTHANC_WEB, local.StudyInstanceUID, local.SeriesInstanceUID, local_sops, None)
            )
            runs["proxy"].append(
                fetch_all_frames(base, proxy_study.StudyInstanceUID, proxy_study.SeriesInstanceUID, proxy_sops, auth)
            )
    finally:
        stop_server(server)
    best = {key: min(values) for key, values in runs.items()}
    return {
        "slices": slices,
        "local_s": best["local"],
        "orthanc_s": best["orthanc"],
        "proxy_s": best["proxy"],
        "local_over_orthanc": best["local"] / best["orthanc"],
        "proxy_overhead": best["proxy"] / best["orthanc"] - 1,
    }


def bench_qido(studies: int, port: int, queries: int = 200) -> dict[str, float]:
    project = Project.objects.get(slug="bench-local")
    existing = Study.objects.filter(store=project.image_store).count()
    rows = [
        Study(
            store=project.image_store,
            study_instance_uid=f"1.2.826.0.1.3680043.8.498.{900000 + i}",
            patient_id=f"P{i % 3000:05d}",
            patient_name=f"Patient^{i % 3000:05d}",
            study_date=f"20{10 + i % 15:02d}{1 + i % 12:02d}{1 + i % 28:02d}",
            accession_number=f"ACC{i:07d}",
            study_description="CT CHEST" if i % 2 else "MR BRAIN",
            modalities_in_study="CT" if i % 2 else "MR",
            number_of_series=1,
            number_of_instances=100,
        )
        for i in range(studies - existing)
    ]
    Study.objects.bulk_create(rows, batch_size=2000)
    total = Study.objects.filter(store=project.image_store).count()
    server = start_server(port)
    latencies: list[float] = []
    try:
        session = requests.Session()
        token = Token.objects.get(user__username="bench").key
        session.headers["Authorization"] = f"Token {token}"
        base = f"http://127.0.0.1:{port}/dicomweb/studies"
        params_cycle = [
            {"limit": "25"},
            {"PatientID": "P00042"},
            {"PatientName": "Patient^001*", "limit": "50"},
            {"StudyDate": "20150101-20161231", "limit": "100"},
            {"ModalitiesInStudy": "MR", "limit": "25", "offset": "500"},
            {"AccessionNumber": "ACC0004242"},
        ]
        for i in range(20):
            session.get(base, params=params_cycle[i % len(params_cycle)]).raise_for_status()
        for i in range(queries):
            start = time.perf_counter()
            response = session.get(base, params=params_cycle[i % len(params_cycle)])
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()
    finally:
        stop_server(server)
    latencies.sort()
    return {
        "studies_visible": total,
        "queries": queries,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * len(latencies)) - 1],
        "max_ms": 1000 * latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=2000, help="slices for the ingest benchmark")
    parser.add_argument("--wado-slices", type=int, default=300)
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--only", choices=["ingest", "wado", "qido"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["ingest", "wado", "qido"])
    results: dict[str, object] = {}
    if "ingest" in only:
        results["ingest"] = bench_ingest(args.slices)
        print(json.dumps(results["ingest"], indent=2))
    if "wado" in only or "qido" in only:
        results["wado"] = bench_wado(args.wado_slices, args.port)
        print(json.dumps(results["wado"], indent=2))
    if "qido" in only:
        results["qido"] = bench_qido(args.studies, args.port + 1)
        print(json.dumps(results["qido"], indent=2))
    out = ROOT / "bench-results" / "imaging.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
