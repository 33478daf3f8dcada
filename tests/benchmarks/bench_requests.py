"""CPU per request of the reading loop's endpoints, in-process (issue 19).

On 2 cores under 50 readers the server's p95 is queueing behind CPU, so the figure that matters is the CPU each
request costs: the Python process's CPU (``time.process_time``) plus the CPU of its PostgreSQL backend (read from
``/proc/<pid>/schedstat``, nanoseconds, where the database runs on this machine), and the number of queries.

Each endpoint is called through the WSGI application as gunicorn calls it (no test client: its signals and
template capture cost CPU gunicorn never spends), with the production settings of scripts/load.sh: DEBUG off,
JSON logs at WARNING, persistent connections with health checks, DRF token authentication, the Celery broker of
the environment. The reading cycle is the locustfile's: worklist next, QIDO series, (series metadata and three
frames with ``--wado``), two drafts, one submit; the 10 annotators and 40 reviewers of tests/load/seed.py take
turns, so submits come as first readings, waiting second readings and the last one (agreed or disputed).

``--baseline REF`` measures the tree at git REF and this tree in the same run: each gets its own database seeded
alike, and the measurements alternate between them (A B B A ...), so that the machine's state (other jobs, CPU
frequency) weighs on both alike; the answer is the ratio per endpoint.

    source SERVICES/env
    .venv/bin/python tests/benchmarks/bench_requests.py [--baseline HEAD~3] [--studies 60] [--cycles 100] [--reps 2]
    .venv/bin/python tests/benchmarks/bench_requests.py --profile "revision submit"   # cProfile of one endpoint

Writes bench-results/requests.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
RESULTS = ROOT / "bench-results" / "requests.json"
ENDPOINTS = (
    "worklist next",
    "qido series",
    "wado series metadata",
    "wado frames",
    "revision draft",
    "revision submit",
    AFTER_ANSWER := "check after answer",
)
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
SOP_UID, INSTANCE_NUMBER, ROWS, COLUMNS = "00080018", "00200013", "00280010", "00280011"


def production_env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="bench-requests-secret",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        DATABASE_CONN_MAX_AGE="60",
        DATABASE_URL=database_url,
        MEDLABEL_DATA_DIR=str(data_dir),
        MEDLABEL_STORAGE_DIR=str(data_dir / "storage"),
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONHASHSEED="0",
    )
    env.pop("MEDLABEL_QUERY_COUNT_HEADER", None)
    return env


def database_url(name: str) -> str:
    base = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(base._replace(path=f"/{name}"))


def create_database(name: str) -> None:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        for attempt in range(10):
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except psycopg.errors.InsufficientPrivilege:
                # A backend of another role (PostgreSQL's own, e.g. autovacuum's) is on it for a moment: FORCE may
                # not end it, so wait for it to go. The services, and these databases, are removed at exit anyway.
                time.sleep(0.5 * (attempt + 1))
        print(f"[bench] database {name} left in place (a backend of another role kept it open)", file=sys.stderr)


# --- The child: one tree, one database, N reading cycles ---------------------------------------------------------


class Harness:
    """Calls the WSGI application in this process and measures each call."""

    def __init__(self) -> None:
        import django

        django.setup()
        from django.core.handlers.wsgi import WSGIHandler
        from django.db import connections

        self.app = WSGIHandler()
        self.connections = connections
        self.queries = 0
        self.show: set[str] = set(filter(None, os.environ.get("BENCH_SHOW_QUERIES", "").split(",")))
        self.current: str | None = None
        self.profile: tuple[str, Any] | None = None
        self.samples: dict[str, list[tuple[float, float, int]]] = defaultdict(list)

        def counter(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            self.queries += 1
            if self.current in self.show:
                print(f"  [{self.current}] {sql[:300]}", file=sys.stderr)
            return execute(sql, params, many, context)

        self._counter = counter

    def backend_ns(self) -> int:
        """CPU of this process's PostgreSQL backend so far, 0 when there is no connection or it is elsewhere."""
        connection = self.connections["default"].connection
        if connection is None:
            return 0
        try:
            with open(f"/proc/{connection.info.backend_pid}/schedstat") as handle:
                return int(handle.read().split()[0])
        except OSError:
            return 0

    def call(
        self, name: str | None, method: str, path: str, token: str, body: Any = None, accept: str = ""
    ) -> tuple[int, bytes]:
        raw = json.dumps(body).encode() if body is not None else b""
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_AUTHORIZATION": f"Token {token}",
            "HTTP_ACCEPT": accept or "*/*",
            "HTTP_ACCEPT_ENCODING": "gzip, deflate",
            "HTTP_USER_AGENT": "python-requests/2.32",
            "HTTP_CONNECTION": "keep-alive",
            "wsgi.input": io.BytesIO(raw),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if body is not None:
            environ["CONTENT_TYPE"] = "application/json"
            environ["CONTENT_LENGTH"] = str(len(raw))
        status_holder: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            status_holder.append(status)
            return lambda data: None

        backend0 = self.backend_ns()
        queries0 = self.queries
        self.current = name
        cpu0 = time.process_time()
        profiler = self.profile[1] if self.profile and name == self.profile[0] else None
        if profiler is not None:
            profiler.enable()
        with self.connections["default"].execute_wrapper(self._counter):
            result = self.app(environ, start_response)
            try:
                content = b"".join(result)
            finally:
                # The answer is out. What closing the response runs (the server does it after sending: the last
                # reading's agreement check, review.agreement_checks) is measured apart, where it did any work.
                cpu1, backend1, queries1 = time.process_time(), self.backend_ns(), self.queries
                if hasattr(result, "close"):
                    result.close()
        if profiler is not None:
            profiler.disable()
        cpu2, backend2 = time.process_time(), self.backend_ns()
        if name is not None:
            for row, (c0, b0, q0), (c1, b1, q1) in (
                (name, (cpu0, backend0, queries0), (cpu1, backend1, queries1)),
                (AFTER_ANSWER, (cpu1, backend1, queries1), (cpu2, backend2, self.queries)),
            ):
                if row == AFTER_ANSWER and q1 == q0:
                    continue  # nothing ran after the answer (every other request, and the baseline's submissions)
                backend_ms = (b1 - b0) / 1e6 if b0 and b1 >= b0 else 0.0
                self.samples[row].append(((c1 - c0) * 1000, backend_ms, q1 - q0))
            self.show.discard(name)  # the queries of the first measured request are enough
        return int(status_holder[0].split()[0]), content


def child(seed_path: Path, cycles: int, offset: int, wado: bool, profile: str | None) -> dict[str, Any]:
    from tests.load.readings import reading_values  # the load test's reading (imports Django's apps' modules)

    seed = json.loads(seed_path.read_text())
    harness = Harness()
    readers = seed["readers"]
    project = seed["project"]
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not the waits on PostgreSQL
        harness.profile = (profile, profiler)

    def cycle(reader: dict[str, Any], rng: random.Random, measured: bool) -> bool:
        token, role = reader["token"], reader["role"]
        tag = (lambda n: n) if measured else (lambda n: None)
        status, body = harness.call(tag("worklist next"), "POST", f"/api/v1/projects/{project}/worklist/next/", token,
                                    {"role": role})  # fmt: skip
        if status == 204:
            return False
        assert status == 200, (status, body[:300])
        case = json.loads(body)["case"]
        study = case["study_instance_uid"]
        status, body = harness.call(tag("qido series"), "GET", f"/dicomweb/studies/{study}/series", token)
        assert status == 200, (status, body[:300])
        series_uid = json.loads(body)[0]["0020000E"]["Value"][0]
        status, body = harness.call(
            tag("wado series metadata") if wado else None,
            "GET",
            f"/dicomweb/studies/{study}/series/{series_uid}/metadata",
            token,
        )
        assert status == 200, (status, body[:300])
        metadata = json.loads(body)
        metadata.sort(key=lambda m: m.get(INSTANCE_NUMBER, {}).get("Value", [0])[0])
        sops = [m[SOP_UID]["Value"][0] for m in metadata]
        shape = (len(sops), metadata[0][ROWS]["Value"][0], metadata[0][COLUMNS]["Value"][0])
        if wado:
            for sop in rng.sample(sops, 3):
                status, _ = harness.call(
                    tag("wado frames"),
                    "GET",
                    f"/dicomweb/studies/{study}/series/{series_uid}/instances/{sop}/frames/1",
                    token,
                    accept=FRAME_ACCEPT,
                )
                assert status == 200, status
        base = 0
        for final in (False, False, True):
            name = "revision submit" if final else "revision draft"
            values = reading_values(sops, series_uid, shape, rng, final)
            payload = {"role": role, "base_revision": base, "values": values, "submit": final}
            status, body = harness.call(tag(name), "POST", f"/api/v1/cases/{case['id']}/revisions/", token, payload)
            assert status == 201, (status, body[:300])
            base = int(json.loads(body)["number"])
        return True

    # Warm: the first requests import the URL routes and compile what is compiled once; not measured.
    done = 0
    for k in range(3):
        reader = readers[(offset + k) % len(readers)]
        cycle(reader, random.Random(reader["username"] + "warm"), measured=False)
    order = [readers[(offset + 3 + k) % len(readers)] for k in range(len(readers))]
    empty = 0
    while done < cycles and empty < len(order):
        reader = order[done % len(order)] if empty == 0 else order[(done + empty) % len(order)]
        if cycle(reader, random.Random(f"{reader['username']}:{offset}:{done}"), measured=True):
            done += 1
            empty = 0
        else:
            empty += 1
    if profiler is not None:
        import pstats

        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        if os.environ.get("BENCH_PSTATS"):
            stats.dump_stats(os.environ["BENCH_PSTATS"])
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(40)
        print(stream.getvalue(), file=sys.stderr)
    return {"cycles": done, "samples": harness.samples}


# --- The parent: prepare the trees, alternate the measurements, compare ------------------------------------------


def prepare(tree: Path, tag: str, studies: int, work: Path) -> dict[str, Any]:
    name = f"bench_requests_{tag}_{os.getpid()}"  # runs side by side never share a database
    data_dir = work / tag / "data"
    (data_dir / "storage").mkdir(parents=True, exist_ok=True)
    create_database(name)
    env = production_env(data_dir, database_url(name))
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v0"], cwd=tree, env=env, check=True)
    seed = work / tag / "seed.json"
    subprocess.run([python, "-m", "tests.load.seed", str(seed), "--studies", str(studies)], cwd=tree, env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return {"tree": tree, "tag": tag, "db": name, "env": env, "seed": seed}


def measure(side: dict[str, Any], cycles: int, offset: int, wado: bool, profile: str | None = None) -> dict[str, Any]:
    out = Path(side["seed"]).with_name(f"out-{offset}.json")
    command = [sys.executable, str(HERE), "--child", str(side["seed"]), "--cycles", str(cycles), "--offset",
               str(offset), "--out", str(out)]  # fmt: skip
    if wado:
        command.append("--wado")
    if profile:
        command += ["--profile", profile]
    env = {**side["env"], "PYTHONPATH": str(side["tree"])}
    subprocess.run(command, cwd=side["tree"], env=env, check=True)
    return json.loads(out.read_text())


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    merged: dict[str, list[list[float]]] = defaultdict(list)
    for run in runs:
        for name, samples in run["samples"].items():
            merged[name].extend(samples)
    summary = {}
    for name in ENDPOINTS:
        samples = merged.get(name)
        if not samples:
            continue
        python = [s[0] for s in samples]
        backend = [s[1] for s in samples]
        total = [s[0] + s[1] for s in samples]
        summary[name] = {
            "n": len(samples),
            "cpu_ms_mean": round(statistics.fmean(total), 3),
            "cpu_ms_median": round(statistics.median(total), 3),
            "python_ms_mean": round(statistics.fmean(python), 3),
            "postgres_ms_mean": round(statistics.fmean(backend), 3),
            "queries_mean": round(statistics.fmean(s[2] for s in samples), 2),
            "queries_max": max(s[2] for s in samples),
        }
    return summary


def print_table(title: str, summary: dict[str, dict[str, float]], base: dict[str, dict[str, float]] | None) -> None:
    print(f"\n{title}")
    header = f"{'endpoint':22} {'n':>4} {'cpu ms':>8} {'median':>8} {'python':>8} {'postgres':>9} {'queries':>8}"
    print(header + ("  ratio (this / baseline, mean cpu)" if base else ""))
    for name, row in summary.items():
        line = (
            f"{name:22} {row['n']:>4} {row['cpu_ms_mean']:>8.2f} {row['cpu_ms_median']:>8.2f} "
            f"{row['python_ms_mean']:>8.2f} {row['postgres_ms_mean']:>9.2f} {row['queries_mean']:>8.1f}"
        )
        if base and name in base:
            line += f"  {row['cpu_ms_mean'] / base[name]['cpu_ms_mean']:.2f}x (was {base[name]['cpu_ms_mean']:.2f})"
        print(line)


def tree_of(ref: str, where: Path) -> Path:
    """The files of git ref ``ref`` of this repository, in ``where``."""
    where.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git ref of the tree to compare with, measured in the same run")
    parser.add_argument("--this", help="git ref to measure instead of the working tree (which may change meanwhile)")
    parser.add_argument("--studies", type=int, default=60, help="studies (cases) per database")
    parser.add_argument("--cycles", type=int, default=100, help="reading cycles per measurement")
    parser.add_argument("--reps", type=int, default=2, help="measurements per tree (alternating)")
    parser.add_argument("--wado", action="store_true", help="also the series metadata and three frames per cycle")
    parser.add_argument("--profile", help="cProfile this endpoint (printed to stderr); no baseline")
    parser.add_argument("--show-queries", default="", help="print the SQL of the first request of these endpoints")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.show_queries:
        os.environ["BENCH_SHOW_QUERIES"] = args.show_queries
    if args.child:
        result = child(args.child, args.cycles, args.offset, args.wado, args.profile)
        args.out.write_text(json.dumps(result))
        return
    if "DATABASE_URL" not in os.environ or not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("DATABASE_URL must name the PostgreSQL of scripts/services.sh (source its env file)")
    work = Path(tempfile.mkdtemp(prefix="bench-requests."))
    started = time.perf_counter()
    sides = []
    try:
        if args.baseline and not args.profile:
            sides.append(prepare(tree_of(args.baseline, work / "baseline-tree"), "baseline", args.studies, work))
        this_tree = tree_of(args.this, work / "this-tree") if args.this else ROOT
        sides.append(prepare(this_tree, "this", args.studies, work))
        print(f"[bench] prepared {len(sides)} database(s) in {time.perf_counter() - started:.0f} s; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        if args.profile:
            measure(sides[0], args.cycles, 0, args.wado, profile=args.profile)
            return
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rep in range(args.reps):
            order = sides if rep % 2 == 0 else list(reversed(sides))
            for side in order:
                runs[side["tag"]].append(measure(side, args.cycles, rep * args.cycles, args.wado))
        summaries = {tag: summarize(r) for tag, r in runs.items()}
        base = summaries.get("baseline")
        if base:
            print_table(f"baseline ({args.baseline})", base, None)
        print_table("this tree", summaries["this"], base)
        print(f"\n[bench] load average after: {os.getloadavg()}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"baseline": args.baseline, "summaries": summaries,
                                       "cycles": args.cycles, "reps": args.reps}, indent=1))  # fmt: skip
    finally:
        if not args.keep:
            for side in sides:
                drop_database(side["db"])
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
