"""50 simulated readers running the reading loop against gunicorn (scripts/load.sh runs this headless).

Each reader (DRF token auth: basic auth would cost a PBKDF2 hash per request) claims the next case,
fetches the study's series, the series metadata and three frames over DICOMweb, saves two drafts and
submits. Every submission answered 201 is appended to LOAD_SUBMITS (JSON lines) so that
tests/load/verify.py can check afterwards that each one is stored."""

from __future__ import annotations

import itertools
import json
import os
import random
import resource
import threading
import time
from typing import Any

from locust import HttpUser, between, events, task

from tests.load.readings import reading_values

SEED = json.load(open(os.environ.get("LOAD_SEED", "load-seed.json")))
SUBMITS_PATH = os.environ.get("LOAD_SUBMITS", "load-submits.jsonl")
# Every request (start, endpoint, status, ms, the server's X-Query-Count) for tests/load/report.py.
REQUESTS_PATH = os.environ.get("LOAD_REQUESTS", "load-requests.jsonl")
CPU_PATH = os.environ.get("LOAD_CPU", "load-cpu.json")
_requests_file: Any = None
_started = time.monotonic()
_readers = itertools.cycle(SEED["readers"])
_lock = threading.Lock()
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
SOP_UID, INSTANCE_NUMBER, ROWS, COLUMNS = "00080018", "00200013", "00280010", "00280011"


class Reader(HttpUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
        with _lock:
            reader = next(_readers)
        self.username = reader["username"]
        self.role = reader["role"]
        self.client.headers["Authorization"] = f"Token {reader['token']}"
        self.rng = random.Random(self.username)

    def save(self, case_id: int, base: int, body: dict[str, Any], submit: bool) -> int | None:
        payload = {"role": self.role, "base_revision": base, "values": body, "submit": submit}
        name = "revision submit" if submit else "revision draft"
        with self.client.post(f"/api/v1/cases/{case_id}/revisions/", json=payload, name=name, catch_response=True) as r:
            if r.status_code == 409 and "current_revision" in r.text:
                r.success()  # a stale base after a retried request: continue from the current one
                return int(r.json()["current_revision"])
            if r.status_code != 201:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return None
            number = int(r.json()["number"])
        if submit:
            with _lock, open(SUBMITS_PATH, "a") as handle:
                handle.write(json.dumps({"case": case_id, "username": self.username, "number": number}) + "\n")
        return number

    @task
    def read_one_case(self) -> None:
        r = self.client.post(
            f"/api/v1/projects/{SEED['project']}/worklist/next/", json={"role": self.role}, name="worklist next"
        )
        if r.status_code == 204:
            self.wait()  # nothing left for this reader
            return
        if r.status_code != 200:
            return
        assignment = r.json()
        case = assignment["case"]
        study = case["study_instance_uid"]
        series = self.client.get(f"/dicomweb/studies/{study}/series", name="qido series").json()
        series_uid = series[0]["0020000E"]["Value"][0]
        metadata = self.client.get(
            f"/dicomweb/studies/{study}/series/{series_uid}/metadata", name="wado series metadata"
        ).json()
        metadata.sort(key=lambda m: m.get(INSTANCE_NUMBER, {}).get("Value", [0])[0])
        sops = [m[SOP_UID]["Value"][0] for m in metadata]
        shape = (len(sops), metadata[0][ROWS]["Value"][0], metadata[0][COLUMNS]["Value"][0])
        for sop in self.rng.sample(sops, 3):
            self.client.get(
                f"/dicomweb/studies/{study}/series/{series_uid}/instances/{sop}/frames/1",
                headers={"Accept": FRAME_ACCEPT},
                name="wado frames",
            )
        base = 0
        for final in (False, False, True):
            number = self.save(case["id"], base, reading_values(sops, series_uid, shape, self.rng, final), submit=final)
            if number is None:
                return
            base = number


@events.test_start.add_listener
def _reset(environment: Any, **kwargs: Any) -> None:
    global _requests_file, _started
    open(SUBMITS_PATH, "w").close()
    _requests_file = open(REQUESTS_PATH, "w")  # open for the whole run, closed at quit
    _started = time.monotonic()


@events.request.add_listener
def _record(
    request_type: str, name: str, response_time: float, response: Any, exception: Any, start_time: float, **kw: Any
) -> None:
    if _requests_file is None:
        return
    queries = response.headers.get("X-Query-Count") if response is not None else None
    row = {
        "start": start_time,
        "name": name,
        "status": getattr(response, "status_code", 0),
        "ms": response_time,
        "error": exception is not None,
        "queries": int(queries) if queries else None,
    }
    with _lock:
        _requests_file.write(json.dumps(row) + "\n")


@events.quitting.add_listener
def _cpu(environment: Any, **kwargs: Any) -> None:
    """The CPU the load generator itself used: on 2 cores it competes with the server it measures."""
    if _requests_file is not None:
        _requests_file.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(CPU_PATH, "w") as handle:
        json.dump({"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.monotonic() - _started}, handle)
