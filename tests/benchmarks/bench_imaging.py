"""Foundation benchmarks, each as a ratio against Orthanc measured in the same run.

1. Ingest rate of 2,000 synthetic 512x512 CT slices through our HTTP doors (STOW-RS in batches, the upload
   API one file per request) against the same doors of Orthanc (its STOW-RS, its REST POST /instances);
   the old in-process figure is kept beside them (see bench_ingest); with each the peak memory (VmHWM) of the
   process that does the work: our busiest gunicorn worker, Orthanc, or this process for the in-process figure.
2. WADO-RS: all frames of a 300-slice series through /dicomweb/ from the local store, straight from
   Orthanc, and through our proxy in front of Orthanc (one request per instance, as Cornerstone does),
   each without compression and with gzip allowed (see bench_wado).
3. QIDO-RS study search p95 over 10,000 indexed studies.

Run with: bash scripts/bench.sh imaging [--slices 2000] [--studies 10000] [--only ingest|wado|qido]
A short run: bash scripts/bench.sh imaging --only wado --wado-slices 60 --repeat 1
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import pydicom  # noqa: E402
import requests  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from annotation.models import Membership, Project  # noqa: E402
from imaging.models import DicomSource, Instance, Study  # noqa: E402
from imaging.services import framecache  # noqa: E402
from imaging.services.ingest import IncomingFile, ingest_files  # noqa: E402
from imaging.synthetic import generate_ct_study  # noqa: E402
from imaging.tasks import prefetch_study  # noqa: E402
from tests.benchmarks.hop_floor import start_nginx  # noqa: E402

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


def orthanc_clear() -> None:
    """Delete every study from Orthanc, so that each ingest variant starts from an empty store."""
    session = requests.Session()
    for study_id in session.get(f"{ORTHANC}/studies", timeout=60).json():
        session.delete(f"{ORTHANC}/studies/{study_id}", timeout=60).raise_for_status()


def ours_clear(*slugs: str) -> None:
    """Delete the bench projects' studies and files, so that each variant of ours writes every file (the
    store keeps identical bytes once: a second ingest of the same files would write none)."""
    import shutil

    from django.core.files.storage import default_storage

    for slug in slugs:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            continue
        Study.objects.filter(store=project.image_store).delete()
        shutil.rmtree(default_storage.path(f"dicom/{project.image_store.pk}"), ignore_errors=True)


def multipart_related(files: list[IncomingFile], boundary: str = "medlabel-bench-boundary") -> tuple[bytes, str]:
    chunks = []
    for incoming in files:
        chunks.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        chunks.append(incoming.data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


# --- peak memory of the process that does the work -----------------------------------------------------------
#
# VmHWM belongs to a process's own address space (ru_maxrss of a child is inherited from the parent on Linux and
# measured nothing): before each variant every process that does its work (our gunicorn workers, Orthanc, or this
# process for the in-process figure) has its high-water mark reset to its present RSS (Linux 4.0+), and after it
# the peak and what the variant added to the RSS it started from are read.


def _status_kb(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pids: list[int | str]) -> dict[int | str, int]:
    """Start each process's VmHWM again from its present RSS; the RSS (KiB) each started from."""
    start = {}
    for pid in pids:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        start[pid] = _status_kb(pid, "VmRSS")
    return start


def peak_since(start: dict[int | str, int]) -> dict[str, float]:
    """The largest peak of these processes (MB), and the most any of them grew above where it started."""
    peaks = {pid: _status_kb(pid, "VmHWM") for pid in start}
    return {
        "peak_mb": round(max(peaks.values()) / 1024, 1),
        "grew_mb": round(max(peaks[pid] - start[pid] for pid in start) / 1024, 1),
    }


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                pids.append(int(entry))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU these processes have used (their own, not their children's)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def orthanc_pid() -> int:
    pid_file = Path(os.environ["SERVICES_DIR"]) / "orthanc" / "orthanc.pid"
    return int(pid_file.read_text().split()[0])


def batches(files: list[IncomingFile], size: int) -> list[list[IncomingFile]]:
    return [files[i : i + size] for i in range(0, len(files), size)]


def postgres_pids() -> list[int]:
    """The PostgreSQL postmaster and its backends (our side of the ingest does its SQL there)."""
    postmaster = int((Path(os.environ["SERVICES_DIR"]) / "pg" / "postmaster.pid").read_text().split()[0])
    return [postmaster, *children_of(postmaster)]


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each process still alive."""
    used = {}
    for pid in pids:
        try:
            used[pid] = cpu_seconds([pid])
        except OSError:
            continue
    return used


class CpuMeter:
    """CPU used by the processes that do a variant's work, which a busy machine (other work on the same cores)
    disturbs far less than the wall-clock rate: ours is the gunicorn workers plus PostgreSQL (its backends,
    including any started during the variant), Orthanc's is its one process (its index is in-process SQLite)."""

    def __init__(self, processes: Callable[[], list[int]], with_postgres: bool) -> None:
        # Listed again at the end: a gunicorn worker not yet forked when the variant started still counts.
        self.processes, self.with_postgres = processes, with_postgres
        self.start = cpu_by_pid(self.pids())

    def pids(self) -> list[int]:
        return self.processes() + (postgres_pids() if self.with_postgres else [])

    def used(self) -> float:
        end = cpu_by_pid(self.pids())
        return sum(value - self.start.get(pid, 0.0) for pid, value in end.items())


def bench_ingest(total: int, port: int, batch: int = 50, per_series: int = 200) -> dict[str, float]:
    """Instances stored per second, each door against its like at Orthanc, each from an empty store, one
    client sending one request at a time:

    - STOW-RS, ``batch`` instances per multipart/related request: ours (/dicomweb/projects/<slug>/studies)
      against Orthanc's DICOMweb plugin (/dicom-web/studies);
    - one file per request: our upload API (/api/v1/imaging/uploads/, multipart/form-data) against
      Orthanc's REST API (POST /instances);
    - the old figure's definition, kept for comparison: our ingest service called in-process on files in
      memory (no HTTP) against Orthanc's POST /instances.

    The files form series of ``per_series`` slices: the per-file door's cost once grew with the series (each
    file re-read the whole series), which ``--series-size 500`` shows.
    """
    files: list[IncomingFile] = []
    seed = 500
    while len(files) < total:
        files.extend(series_files(seed, min(per_series, total - len(files))))
        seed += 1
    megabytes = sum(len(f.data) for f in files) / 1e6
    print(
        f"ingest: {len(files)} files in series of {per_series}, {megabytes:.0f} MB in memory, STOW batches of {batch}"
    )
    user, _ = User.objects.get_or_create(username="bench")
    token = Token.objects.get_or_create(user=user)[0].key
    project, _ = Project.objects.get_or_create(slug="bench-ingest", defaults={"name": "Bench ingest"})
    Membership.objects.get_or_create(project=project, user=user, role="manager")
    seconds: dict[str, float] = {}
    memory: dict[str, dict[str, float]] = {}

    ours_clear("bench-ingest")
    peak = reset_peak(["self"])
    start = time.perf_counter()
    report = ingest_files(files, store=project.image_store)
    seconds["ours_in_process"] = time.perf_counter() - start
    memory["ours_in_process"] = peak_since(peak)  # this process, with every file in memory beforehand
    assert report.counts()["stored"] == len(files), report.counts()

    orthanc_clear()
    session = requests.Session()
    orthanc = orthanc_pid()
    peak = reset_peak([orthanc])
    cpu: dict[str, float] = {}
    meter = CpuMeter(lambda: [orthanc], with_postgres=False)
    start = time.perf_counter()
    for incoming in files:
        response = session.post(
            f"{ORTHANC}/instances", data=incoming.data, headers={"Content-Type": "application/dicom"}
        )
        response.raise_for_status()
    seconds["orthanc_rest_per_file"] = time.perf_counter() - start
    cpu["orthanc_rest_per_file"] = meter.used()
    memory["orthanc_rest_per_file"] = peak_since(peak)

    stow_bodies = [multipart_related(chunk) for chunk in batches(files, batch)]
    orthanc_clear()
    peak = reset_peak([orthanc])
    meter = CpuMeter(lambda: [orthanc], with_postgres=False)
    start = time.perf_counter()
    for body, content_type in stow_bodies:
        response = session.post(f"{ORTHANC_WEB}/studies", data=body, headers={"Content-Type": content_type})
        response.raise_for_status()
    seconds["orthanc_stow"] = time.perf_counter() - start
    cpu["orthanc_stow"] = meter.used()
    memory["orthanc_stow"] = peak_since(peak)
    assert len(session.get(f"{ORTHANC}/instances").json()) == len(files)

    server = start_server(port)
    try:
        ours = requests.Session()
        ours.headers["Authorization"] = f"Token {token}"
        base = f"http://127.0.0.1:{port}"
        workers: list[int | str] = list(children_of(server.pid))
        ours_clear("bench-ingest")
        peak = reset_peak(workers)
        meter = CpuMeter(lambda: children_of(server.pid), with_postgres=True)
        start = time.perf_counter()
        for body, content_type in stow_bodies:
            response = ours.post(
                f"{base}/dicomweb/projects/bench-ingest/studies", data=body, headers={"Content-Type": content_type}
            )
            assert response.status_code == 200, (response.status_code, response.text[:500])
        seconds["ours_stow"] = time.perf_counter() - start
        cpu["ours_stow"] = meter.used()
        memory["ours_stow"] = peak_since(peak)
        stored = Study.objects.filter(store=project.image_store).values_list("number_of_instances", flat=True)
        assert sum(stored) == len(files), sum(stored)

        ours_clear("bench-ingest")
        peak = reset_peak(workers)
        meter = CpuMeter(lambda: children_of(server.pid), with_postgres=True)
        start = time.perf_counter()
        for incoming in files:
            response = ours.post(
                f"{base}/api/v1/imaging/uploads/",
                data={"project": "bench-ingest"},
                files={"files": (incoming.name + ".dcm", incoming.data, "application/dicom")},
            )
            assert response.status_code == 201, (response.status_code, response.text[:500])
        seconds["ours_upload_per_file"] = time.perf_counter() - start
        cpu["ours_upload_per_file"] = meter.used()
        memory["ours_upload_per_file"] = peak_since(peak)
    finally:
        stop_server(server)
    ours_clear("bench-ingest")
    orthanc_clear()
    rate = {name: len(files) / value for name, value in seconds.items()}
    return {
        "files": len(files),
        "series_size": per_series,
        "stow_batch": batch,
        **{f"{name}_instances_per_s": round(value, 1) for name, value in rate.items()},
        # Peak RSS of the process doing the work (our busiest gunicorn worker, Orthanc, or this process).
        **{f"{name}_{key}": value for name, figures in memory.items() for key, value in figures.items()},
        "stow_ours_over_orthanc": round(rate["ours_stow"] / rate["orthanc_stow"], 3),
        "per_file_ours_over_orthanc": round(rate["ours_upload_per_file"] / rate["orthanc_rest_per_file"], 3),
        # CPU per file of the processes doing the work, and ours over Orthanc's (a time: under 1.0, ours is cheaper).
        **{f"{name}_cpu_ms_per_file": round(1000 * value / len(files), 2) for name, value in cpu.items()},
        "stow_cpu_time_ours_over_orthanc": round(cpu["ours_stow"] / cpu["orthanc_stow"], 3),
        "per_file_cpu_time_ours_over_orthanc": round(cpu["ours_upload_per_file"] / cpu["orthanc_rest_per_file"], 3),
        # The old figure: in-process ingest against Orthanc's HTTP (not like for like).
        "old_definition_ratio_ours_over_orthanc": round(rate["ours_in_process"] / rate["orthanc_rest_per_file"], 3),
    }


def start_server(
    port: int, app: str = "config.wsgi:application", env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "-c",
            "config/gunicorn.py",  # preloaded and warm, as the run command serves
            app,
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
        env={**os.environ, **(env or {})},
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


def fetch_all_frames(
    base: str, study: str, series: str, sops: list[str], token: str | None, encoding: str = "identity"
) -> tuple[float, int]:
    """Seconds to fetch frame 1 of every instance, one request each (as Cornerstone does), and the bytes
    that crossed the wire. ``encoding`` is the Accept-Encoding sent: "identity" (no compression) or
    "gzip, deflate" (what browsers and python-requests send by default). A gzip answer is decompressed
    here, inside the timing, as a browser would."""
    session = requests.Session()
    session.headers["Accept-Encoding"] = encoding
    if token:
        # A token, as OHIF or a script would send; basic auth would hash the password on every request.
        session.headers["Authorization"] = f"Token {token}"
    headers = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
    start = time.perf_counter()
    total = wire = 0
    for sop in sops:
        response = session.get(
            f"{base}/studies/{study}/series/{series}/instances/{sop}/frames/1", headers=headers, stream=True
        )
        response.raise_for_status()
        raw = response.raw.read(decode_content=False)
        wire += len(raw)
        coding = response.headers.get("Content-Encoding", "identity")
        body = zlib.decompress(raw, 47) if coding in ("gzip", "deflate") else raw  # 47: gzip or zlib header
        total += len(body)
    elapsed = time.perf_counter() - start
    assert total > len(sops) * 512 * 512 * 2, total
    return elapsed, wire


def bench_wado(slices: int, port: int, repeat: int = 3) -> dict[str, Any]:
    """Frame 1 of every instance of a ``slices``-slice series, from three places: our local store, Orthanc
    directly, and our proxy in front of Orthanc; each asked without compression (Accept-Encoding:
    identity) and with gzip allowed (a browser's default). Best of ``repeat`` runs each.

    What it means for a reader on a LAN: a 512x512 16-bit frame is 512 KiB, 4 ms on 1 Gbit/s, so
    compressing it (Orthanc does when asked, we never do) saves less wire time than it costs in CPU;
    over a slow WAN the trade turns. The like-for-like figure is ``identity``; ``gzip`` is what a
    browser gets by default. The old figure's definition (python-requests' default, which asks for
    gzip, against Orthanc) is ``local_over_orthanc_gzip``.

    ``local_full_chain`` and ``proxy_full_chain`` are the same requests to a second server started with
    MEDLABEL_DICOMWEB_FAST_PATH=false (every frame through Django's middleware chain and URL resolver, as
    before imaging.dicomweb.fastpath): the fast path's gain, measured in the same run.

    ``proxy`` is the cold case (a series of the PACS that nothing prefetched: every frame passed through);
    ``proxy_cached`` is another copy of that series on the same PACS after the prefetch task a reader's claim
    queues (imaging.services.framecache), its frames then read from the proxy cache on disk;
    ``proxy_cached_overhead`` is that against Orthanc, like ``proxy_overhead``.

    ``hop_floor`` is the floor of any proxy on this machine: tests/benchmarks/hop_floor.py, a WSGI application
    with nothing of ours in it (no Django, no access check) that passes Orthanc's answer through, served by the
    same gunicorn; ``hop_floor_overhead`` is what merely being a second HTTP server in the path costs.
    ``nginx_floor`` is the same hop through nginx where it is installed: the cheapest proxy there is.
    """
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
    source, _ = DicomSource.objects.get_or_create(
        name="bench-orthanc", defaults={"kind": "dicomweb", "base_url": ORTHANC_WEB, "timeout_seconds": 30}
    )

    def upstream_copy(seed: int, slug: str) -> tuple[list[IncomingFile], Study]:
        """Another copy of the series under other UIDs, sent to Orthanc and indexed here in a project of its own
        whose pixels are on the PACS."""
        copy = series_files(seed, slices)
        for incoming in copy:
            session.post(f"{ORTHANC}/instances", data=incoming.data).raise_for_status()
        project, _ = Project.objects.get_or_create(slug=slug, defaults={"name": slug, "dicom_source": source})
        Membership.objects.get_or_create(project=project, user=user, role="manager")
        uid = pydicom.dcmread(io.BytesIO(copy[0].data), stop_before_pixels=True).StudyInstanceUID
        return copy, study_index_upstream(source=source, study_instance_uid=uid, store=project.image_store)

    from imaging.services.pull import study_index_upstream

    # Proxied: the proxy target stays cold, nothing ever prefetches its study (and no stale copy from an earlier run).
    proxy_files, cold = upstream_copy(901, "bench-proxy")
    framecache.study_evict(cold.pk)
    # Prefetched into the proxy cache as a reader's claim would have it (imaging.services.framecache): the same
    # PACS series, its frames then read from disk.
    cached_files, warm = upstream_copy(902, "bench-proxy-cached")
    proxy_study = pydicom.dcmread(io.BytesIO(proxy_files[0].data), stop_before_pixels=True)
    cached_study = pydicom.dcmread(io.BytesIO(cached_files[0].data), stop_before_pixels=True)
    if framecache.cache_limit_bytes() <= 0:
        raise RuntimeError("MEDLABEL_PROXY_CACHE_MB is 0: proxy_cached would measure the proxy again")
    prefetch_study(warm.pk)
    uncached = Instance.objects.filter(series__study=warm, file="").count()
    if uncached:
        raise RuntimeError(f"The prefetch left {uncached} instance(s) of the proxy_cached series uncached")

    local = pydicom.dcmread(io.BytesIO(files[0].data), stop_before_pixels=True)
    local_sops = [pydicom.dcmread(io.BytesIO(f.data), stop_before_pixels=True).SOPInstanceUID for f in files]
    proxy_sops = [pydicom.dcmread(io.BytesIO(f.data), stop_before_pixels=True).SOPInstanceUID for f in proxy_files]
    cached_sops = [pydicom.dcmread(io.BytesIO(f.data), stop_before_pixels=True).SOPInstanceUID for f in cached_files]

    server = start_server(port)
    previous = os.environ.get("MEDLABEL_DICOMWEB_FAST_PATH")
    os.environ["MEDLABEL_DICOMWEB_FAST_PATH"] = "false"  # the second server: every request through Django
    try:
        full_chain = start_server(port + 3)
    finally:
        if previous is None:
            del os.environ["MEDLABEL_DICOMWEB_FAST_PATH"]
        else:
            os.environ["MEDLABEL_DICOMWEB_FAST_PATH"] = previous
    hop_floor = start_server(port + 5, "tests.benchmarks.hop_floor:application", {"HOP_FLOOR_UPSTREAM": ORTHANC_WEB})
    nginx = start_nginx(port + 6, ORTHANC_WEB)
    encodings = {"identity": "identity", "gzip": "gzip, deflate"}
    try:
        base = f"http://127.0.0.1:{port}/dicomweb"
        base_full = f"http://127.0.0.1:{port + 3}/dicomweb"
        base_hop = f"http://127.0.0.1:{port + 5}/dicomweb"
        auth = Token.objects.get_or_create(user=user)[0].key
        local_uids = (local.StudyInstanceUID, local.SeriesInstanceUID, local_sops)
        proxy_uids = (proxy_study.StudyInstanceUID, proxy_study.SeriesInstanceUID, proxy_sops)
        cached_uids = (cached_study.StudyInstanceUID, cached_study.SeriesInstanceUID, cached_sops)
        targets = {
            "local": (base, *local_uids, auth),
            "local_full_chain": (base_full, *local_uids, auth),
            "orthanc": (ORTHANC_WEB, *local_uids, None),
            "proxy": (base, *proxy_uids, auth),
            "proxy_full_chain": (base_full, *proxy_uids, auth),
            "proxy_cached": (base, *cached_uids, auth),
            "hop_floor": (base_hop, *local_uids, None),
        }
        if nginx is not None:
            targets["nginx_floor"] = (f"http://127.0.0.1:{port + 6}/dicomweb", *local_uids, None)
        for url, st, se, sops, tok in targets.values():  # warm every path once
            fetch_all_frames(url, st, se, sops[:10], tok)
        runs: dict[str, list[float]] = {f"{t}_{e}": [] for t in targets for e in encodings}
        wire: dict[str, int] = {}
        # CPU per frame of the processes that serve it (the gunicorn workers of the server asked; Orthanc),
        # which a busy machine disturbs far less than the wall-clock times.
        orthanc = orthanc_pid()
        servers = {
            base: children_of(server.pid),
            base_full: children_of(full_chain.pid),
            base_hop: children_of(hop_floor.pid),
            ORTHANC_WEB: [],
            f"http://127.0.0.1:{port + 6}/dicomweb": [nginx[0].pid] + children_of(nginx[0].pid) if nginx else [],
        }
        cpu: dict[str, list[tuple[float, float]]] = {key: [] for key in runs}
        for _ in range(repeat):
            for name, (url, st, se, sops, tok) in targets.items():
                workers = servers[url]
                for label, header in encodings.items():
                    ours_before, orthanc_before = cpu_seconds(workers), cpu_seconds([orthanc])
                    seconds, wire[f"{name}_{label}"] = fetch_all_frames(url, st, se, sops, tok, header)
                    runs[f"{name}_{label}"].append(seconds)
                    used = (cpu_seconds(workers) - ours_before, cpu_seconds([orthanc]) - orthanc_before)
                    cpu[f"{name}_{label}"].append(used)
    finally:
        stop_server(server)
        stop_server(full_chain)
        stop_server(hop_floor)
        if nginx is not None:
            stop_server(nginx[0])
            shutil.rmtree(nginx[1], ignore_errors=True)
    best = {key: min(values) for key, values in runs.items()}
    result: dict[str, Any] = {"slices": slices, "repeat": repeat}
    for key, value in best.items():
        result[f"{key}_ms_per_frame"] = round(1000 * value / slices, 3)
        result[f"{key}_wire_kib_per_frame"] = round(wire[key] / slices / 1024, 1)
        result[f"{key}_cpu_ms_per_frame_ours"] = round(1000 * statistics.median(a for a, _ in cpu[key]) / slices, 2)
        result[f"{key}_cpu_ms_per_frame_orthanc"] = round(1000 * statistics.median(b for _, b in cpu[key]) / slices, 2)
    for label in encodings:
        for variant in ("", "_full_chain"):
            orthanc_best = best[f"orthanc_{label}"]
            result[f"local{variant}_over_orthanc_{label}"] = round(best[f"local{variant}_{label}"] / orthanc_best, 3)
            result[f"proxy{variant}_overhead_{label}"] = round(best[f"proxy{variant}_{label}"] / orthanc_best - 1, 3)
        result[f"proxy_cached_overhead_{label}"] = round(best[f"proxy_cached_{label}"] / orthanc_best - 1, 3)
        for floor in ("hop_floor", "nginx_floor"):
            if f"{floor}_{label}" in best:
                result[f"{floor}_overhead_{label}"] = round(best[f"{floor}_{label}"] / orthanc_best - 1, 3)
    return result


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
    parser.add_argument("--stow-batch", type=int, default=50, help="instances per STOW-RS request")
    parser.add_argument("--series-size", type=int, default=200, help="slices per series in the ingest benchmark")
    parser.add_argument("--repeat", type=int, default=3, help="WADO runs per path (best is kept)")
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--only", choices=["ingest", "wado", "qido"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["ingest", "wado", "qido"])
    results: dict[str, object] = {"load_average_before": os.getloadavg()}
    if "ingest" in only:
        results["ingest"] = bench_ingest(args.slices, args.port + 2, args.stow_batch, args.series_size)
        print(json.dumps(results["ingest"], indent=2))
    if "wado" in only or "qido" in only:
        results["wado"] = bench_wado(args.wado_slices, args.port, args.repeat)
        print(json.dumps(results["wado"], indent=2))
    if "qido" in only:
        results["qido"] = bench_qido(args.studies, args.port + 1)
        print(json.dumps(results["qido"], indent=2))
    results["load_average_after"] = os.getloadavg()
    print(f"load average before {results['load_average_before']}, after {results['load_average_after']}")
    out = ROOT / "bench-results" / "imaging.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
