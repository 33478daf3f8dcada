"""Fault drills against real services on loopback (scripts/faults.sh starts them and this script).

1. Redis restarted during a batch of export jobs.
2. PostgreSQL restarted while readers save and submit (Locust, 10 users).
3. The upstream PACS (Orthanc) stopped while a reader fetches frames through the DICOMweb proxy.
4. A Celery worker killed (SIGKILL, whole process group) while it runs an export job; a new worker starts.

For each: what the user saw (status codes), what was retried, and counts of revisions, case events, votes
and job events before/after, checked for loss and duplication. Prints a report; exit 1 if a check fails.
Environment: the services' env file (DATABASE_URL, CELERY_BROKER_URL, ORTHANC_*), SERVICES_DIR, WEB_URL,
LOAD_SEED (the seed file of tests/load/seed.py), FAULTS_OUT (a folder for logs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import django
import requests

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.db import connections  # noqa: E402

from annotation.models import AnnotationRevision  # noqa: E402
from imaging.models import DicomSource  # noqa: E402
from imaging.services.pull import study_index_upstream  # noqa: E402
from imaging.synthetic import generate_ct_study  # noqa: E402
from jobs.models import Job, JobEvent, JobStatus  # noqa: E402
from review.models import CaseEvent, PanelVote  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SERVICES = Path(os.environ["SERVICES_DIR"])
WEB = os.environ["WEB_URL"]
SEED = json.loads(Path(os.environ["LOAD_SEED"]).read_text())
OUT = Path(os.environ.get("FAULTS_OUT", "bench-results/faults"))
OUT.mkdir(parents=True, exist_ok=True)
PY = sys.executable
REPORT: list[str] = []
FAILED: list[str] = []


def say(text: str) -> None:
    print(text, flush=True)
    REPORT.append(text)


def check(ok: bool, what: str) -> None:
    say(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        FAILED.append(what)


def counts() -> dict[str, int]:
    connections.close_all()
    return {
        "revisions": AnnotationRevision.objects.count(),
        "submitted": AnnotationRevision.objects.filter(is_submission=True).count(),
        "case_events": CaseEvent.objects.count(),
        "votes": PanelVote.objects.count(),
        "job_events": JobEvent.objects.count(),
    }


def duplicates() -> dict[str, int]:
    """Rows that would mean a double write: two revisions with one number, two submissions of one reading."""
    from django.db.models import Count

    double_numbers = (
        AnnotationRevision.objects.values("annotation_id", "number").annotate(n=Count("pk")).filter(n__gt=1).count()
    )
    double_submits = (
        AnnotationRevision.objects.filter(is_submission=True)
        .values("annotation_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    return {"revision_numbers_twice": double_numbers, "readings_submitted_twice": double_submits}


def manager_session() -> requests.Session:
    session = requests.Session()
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=User.objects.get(username="load-manager"))
    session.headers["Authorization"] = f"Token {token.key}"
    return session


def start_worker(name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", "celery", "-A", "config", "worker", "-Q", "default", "--concurrency=1", "--loglevel=INFO",
         "-n", f"{name}@%h"],
        cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def redis_restart() -> float:
    """Shut Redis down saving its data (as the compose stack's append-only Redis keeps it) and start it again."""
    env = dict(line.split("=", 1) for line in (SERVICES / "state").read_text().split() if "=" in line)
    port = env["S_REDIS_PORT"]
    started = time.monotonic()
    subprocess.run(["redis-cli", "-p", port, "shutdown", "save"], capture_output=True, timeout=30)
    time.sleep(2)
    subprocess.run(
        ["redis-server", "--bind", "127.0.0.1", "--port", port, "--daemonize", "yes", "--dir", str(SERVICES / "redis"),
         "--save", "", "--appendonly", "no", "--pidfile", str(SERVICES / "redis" / "redis.pid"),
         "--logfile", str(SERVICES / "redis" / "redis.log")],
        check=True, timeout=30,
    )  # fmt: skip
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", port, "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            break
        time.sleep(0.1)
    return time.monotonic() - started


def wait_jobs(ids: list[int], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connections.close_all()
        statuses = Counter(Job.objects.filter(pk__in=ids).values_list("status", flat=True))
        if sum(statuses[s] for s in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)) == len(ids):
            return dict(statuses)
        time.sleep(1)
    connections.close_all()
    return dict(Counter(Job.objects.filter(pk__in=ids).values_list("status", flat=True)))


def create_exports(session: requests.Session, n: int) -> tuple[list[int], Counter[int]]:
    ids: list[int] = []
    seen: Counter[int] = Counter()
    for _ in range(n):
        r = session.post(
            f"{WEB}/api/v1/projects/{SEED['project']}/exports/",
            json={"formats": ["json", "csv"], "filters": {"min_qa_level": "single_read"}, "deidentify": True},
            timeout=30,
        )
        seen[r.status_code] += 1
        if r.status_code != 202:
            say(f"  export request refused: {r.status_code} {r.text[:200]}")
        if r.status_code == 202:
            ids.append(int(r.json()["job"]["id"] if isinstance(r.json().get("job"), dict) else r.json()["job"]))
    return ids, seen


def drill_redis(session: requests.Session) -> None:
    say("\n## 1. Redis restarted during a batch of export jobs")
    worker = start_worker("faults-redis", OUT / "worker-redis.log")
    time.sleep(8)
    before = counts()
    ids, seen = create_exports(session, 8)
    restart_s = redis_restart()
    more, seen2 = create_exports(session, 4)  # right after the restart: the web app's broker connection reconnects
    ids += more
    statuses = wait_jobs(ids, 240)
    after = counts()
    say(f"  user saw: export requests answered {dict(seen + seen2)}; Redis down for {restart_s:.1f} s")
    attempts = Counter(Job.objects.filter(pk__in=ids).values_list("attempts", flat=True))
    say(f"  jobs: {statuses}; attempts per job: {sorted(attempts.items())}")
    check(len(ids) == 12, "all 12 export requests were accepted (202), before and right after the restart")
    check(statuses.get(JobStatus.SUCCEEDED, 0) == len(ids), f"all {len(ids)} export jobs succeeded after the restart")
    check(after["revisions"] == before["revisions"] and after["case_events"] == before["case_events"],
          "no revision or case event changed")  # fmt: skip
    stop(worker)


def drill_postgres() -> None:
    say("\n## 2. PostgreSQL restarted while 10 readers save and submit")
    env = {**os.environ, "LOAD_SUBMITS": str(OUT / "pg-submits.jsonl")}
    before = counts()
    locust = subprocess.Popen(
        [str(Path(PY).parent / "locust"), "-f", "tests/load/locustfile.py", "--headless", "--host", WEB, "-u", "10",
         "-r", "10", "--run-time", "60s", "--csv", str(OUT / "pg"), "--only-summary", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=(OUT / "pg-locust.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(20)
    bindir = subprocess.run(
        "dirname $(ls -d /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n1)", shell=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    cmd = [
        f"{bindir}/pg_ctl",
        "-D",
        str(SERVICES / "pg"),
        "-m",
        "fast",
        "-w",
        "restart",
        "-l",
        str(SERVICES / "pg" / "server.log"),
    ]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    started = time.monotonic()
    subprocess.run(cmd, capture_output=True, timeout=60, check=True)
    say(f"  PostgreSQL restarted in {time.monotonic() - started:.1f} s at t=20 s")
    locust.wait(timeout=180)
    stats = list(csv_rows(OUT / "pg_stats.csv"))
    failures = list(csv_rows(OUT / "pg_failures.csv"))
    total: dict[str, str] = next((r for r in stats if r["Name"] == "Aggregated"), {})
    say(f"  user saw: {total.get('Request Count')} requests, {total.get('Failure Count')} failed: "
        + "; ".join(f"{f['Method']} {f['Name']}: {f['Error'][:80]} x{f['Occurrences']}" for f in failures))  # fmt: skip
    verify = subprocess.run([PY, "-m", "tests.load.verify", str(OUT / "pg-submits.jsonl")], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    say("  " + verify.stdout.strip())
    check(verify.returncode == 0, "every submission answered 201 is stored, none twice")
    after = counts()
    say(f"  counts before {before} after {after}")
    check(duplicates() == {"revision_numbers_twice": 0, "readings_submitted_twice": 0}, "no reading written twice")


def csv_rows(path: Path) -> Any:
    import csv

    if path.exists():
        yield from csv.DictReader(path.open())


def _can_place(seed: int) -> bool:
    try:
        generate_ct_study(seed=seed, rows=64, columns=64, slices=8, n_lesions=1)
    except ValueError:
        return False
    return True


def drill_pacs() -> None:
    say("\n## 3. Upstream PACS (Orthanc) stopped during reading")
    orthanc = os.environ["ORTHANC_URL"]
    study = next(
        generate_ct_study(seed=seed, rows=64, columns=64, slices=8, n_lesions=1)
        for seed in range(4242, 4300)
        if _can_place(seed)
    )
    import io

    import pydicom

    for ds in study.datasets():
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        requests.post(f"{orthanc}/instances", data=buffer.getvalue(), timeout=30).raise_for_status()
    source, _ = DicomSource.objects.get_or_create(
        name="faults-orthanc", defaults={"kind": DicomSource.Kind.DICOMWEB,
                                         "base_url": os.environ["ORTHANC_DICOMWEB_URL"], "timeout_seconds": 5},
    )  # fmt: skip
    from annotation.models import Project

    project = Project.objects.get(slug=SEED["project"])
    study_index_upstream(source=source, study_instance_uid=study.study_uid, store=project.image_store)
    reader = requests.Session()
    reader.headers["Authorization"] = f"Token {SEED['readers'][0]['token']}"
    sop = next(iter(study.datasets())).SOPInstanceUID
    url = f"{WEB}/dicomweb/studies/{study.study_uid}/series/{study.series_uid}/instances/{sop}/frames/1"
    accept = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
    up = reader.get(url, headers=accept, timeout=30)
    pid = int((SERVICES / "orthanc" / "orthanc.pid").read_text().strip())
    os.kill(pid, signal.SIGSTOP)  # hung PACS: accepts connections, never answers
    started = time.monotonic()
    hung = reader.get(url, headers=accept, timeout=60)
    hung_s = time.monotonic() - started
    os.kill(pid, signal.SIGCONT)
    os.kill(pid, signal.SIGTERM)  # PACS down
    for _ in range(100):
        try:
            os.kill(pid, 0)
            time.sleep(0.2)
        except ProcessLookupError:
            break
    down = reader.get(url, headers=accept, timeout=30)
    metadata_down = reader.get(f"{WEB}/dicomweb/studies/{study.study_uid}/metadata", timeout=30)
    ready = requests.get(f"{WEB}/readyz", timeout=30)
    say(f"  user saw: PACS up {up.status_code}; PACS hung {hung.status_code} after {hung_s:.1f} s ({hung.text[:120]})")
    say(f"  PACS stopped: frames {down.status_code} ({down.text[:120]}), metadata {metadata_down.status_code}")
    say(f"  /readyz with the PACS down: {ready.status_code} {ready.json()['checks'].get('pacs:faults-orthanc')}")
    check(up.status_code == 200, "frames served through the proxy while the PACS is up")
    check(hung.status_code == 504, "a hung PACS is a 504 within the source's timeout")
    check(down.status_code == 502, "frames from a stopped PACS are a 502, not a 500")
    check(metadata_down.status_code < 500 or metadata_down.status_code in (502, 504), "metadata is no 500 either")
    check(ready.status_code == 200, "the web app stays ready (the PACS is not a required check)")


def drill_worker_kill(session: requests.Session) -> None:
    say("\n## 4. Celery worker killed (SIGKILL) while it runs an export job")
    log = OUT / "worker-kill.log"
    first = start_worker("faults-kill-a", log)
    time.sleep(8)
    before = counts()
    ids, _ = create_exports(session, 1)
    if not ids:
        check(False, "the export request was accepted")
        stop(first)
        return
    job_id = ids[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        connections.close_all()
        if Job.objects.get(pk=job_id).status == JobStatus.RUNNING:
            break
        time.sleep(0.05)
    running = Job.objects.get(pk=job_id)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    say(f"  killed worker {running.worker} while job {job_id} was {running.status} (attempt {running.attempts})")
    second = start_worker("faults-kill-b", log)
    statuses = wait_jobs([job_id], 240)
    job = Job.objects.get(pk=job_id)
    events = list(JobEvent.objects.filter(job=job).order_by("pk").values_list("from_status", "to_status", "message"))
    say(f"  job {job_id}: {job.status}, attempts {job.attempts}; events: {events}")
    from datasets.models import Export

    exports = Export.objects.filter(job=job).count()
    check(statuses.get(JobStatus.SUCCEEDED) == 1, "the job was re-queued at the new worker's start and succeeded")
    check(exports == 1, "one export row for the job (nothing half-written or doubled)")
    after = counts()
    check(after["revisions"] == before["revisions"], "no revision changed")
    stop(second)


def main() -> int:
    session = manager_session()
    say(f"# Fault drills ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC), load: {os.getloadavg()}")
    for drill in (lambda: drill_redis(session), drill_postgres, lambda: drill_worker_kill(session), drill_pacs):
        try:
            drill()
        except Exception as exc:  # one broken drill must not hide the others' results
            check(False, f"drill raised {type(exc).__name__}: {exc}")
    (OUT / "report.md").write_text("\n".join(REPORT) + "\n")
    say(f"\n{len(FAILED)} failed checks" + (": " + "; ".join(FAILED) if FAILED else ""))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
