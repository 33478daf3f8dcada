"""The web process starts warm: no model code (torch, MONAI) on the request path, and each gunicorn worker
answers its first request within a second of start-up (issue 19)."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
MODEL_PACKAGES = ("torch", "monai")


def imported_after(statement: str) -> dict[str, bool]:
    """Which model packages a fresh interpreter has imported after Django's set-up and ``statement``."""
    code = (
        "import json, sys, django\n"
        "django.setup()\n"
        f"{statement}\n"
        f"print(json.dumps({{name: name in sys.modules for name in {list(MODEL_PACKAGES)!r}}}))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_url_routes_import_neither_torch_nor_monai() -> None:
    assert imported_after("import config.urls") == {"torch": False, "monai": False}


def test_wsgi_application_with_its_warm_up_imports_neither_torch_nor_monai() -> None:
    # config.wsgi imports every view (config.warmup); the ingest hook and the inference API among them.
    assert imported_after("import config.wsgi, inference.hooks, inference.api.views") == {
        "torch": False,
        "monai": False,
    }


def run_command_gunicorn(port: int, logs: Path, run: Path) -> list[str]:
    """The gunicorn command line of scripts/run.sh, as written there, with its variables filled in."""
    script = (ROOT / "scripts" / "run.sh").read_text()
    found = re.search(r"^GUNICORN=\((.*?)\)\n", script, re.S | re.M)
    assert found is not None, "scripts/run.sh has no GUNICORN=(...) command"
    words = shlex.split(found.group(1).replace("\\\n", " "))
    values = {"$PORT": str(port), "$LOGS": str(logs), "$RUN": str(run)}
    return [re.sub(r"\$[A-Z]+", lambda m: values[m.group(0)], w) for w in words]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_pids(master: int) -> set[int]:
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True)
    return {int(p) for p in children.stdout.split()}


def test_each_worker_answers_its_first_request_within_a_second(tmp_path: Path) -> None:
    logs, run = tmp_path / "logs", tmp_path / "run"
    logs.mkdir()
    run.mkdir()
    port = free_port()
    command = run_command_gunicorn(port, logs, run)
    assert "-c" in command and "config/gunicorn.py" in command  # preloads and warms (config/gunicorn.py)
    workers = int(command[command.index("--workers") + 1])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    base = f"http://127.0.0.1:{port}"
    client_seconds: list[float] = []

    def get(path: str) -> int:
        begun = time.perf_counter()
        # A new connection each time (no keep-alive), so that any worker may take it.
        status = requests.get(f"{base}{path}", headers={"Connection": "close"}, timeout=30).status_code
        client_seconds.append(time.perf_counter() - begun)
        return status

    try:
        while True:  # the socket accepts as soon as the master binds it
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (logs / "gunicorn.log").read_text()
                assert time.perf_counter() - started < 120, "gunicorn did not bind its port"
                time.sleep(0.05)
        bound = time.perf_counter() - started
        firsts: dict[int, float] = {}
        access = logs / "access.log"
        deadline = time.perf_counter() + 60
        with ThreadPoolExecutor(max_workers=4 * workers) as pool:
            while len(firsts) < workers and time.perf_counter() < deadline:
                # Routes through Django REST framework and the DICOMweb views, unauthenticated (no data needed).
                paths = ["/api/v1/me/", "/dicomweb/studies", "/healthz", "/api/v1/projects/"] * workers
                statuses = list(pool.map(get, paths))
                assert set(statuses) <= {200, 401, 403}, statuses
                time.sleep(0.2)  # gunicorn writes the access log after the response
                for line in access.read_text().splitlines():
                    pid_took = re.search(r"pid=<?(\d+)>? took=([0-9.]+)", line)
                    assert pid_took is not None, line
                    firsts.setdefault(int(pid_took.group(1)), float(pid_took.group(2)))
        pids = worker_pids(server.pid)
        assert len(pids) == workers and set(firsts) == pids, (firsts, pids)
        summary = {
            "bound_after_s": round(bound, 3),
            "first_request_per_worker_s": firsts,
            "slowest_client_request_s": round(max(client_seconds), 3),
        }
        artifacts = Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / "test-artifacts"))
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "web_start.json").write_text(json.dumps(summary, indent=2))
        assert max(firsts.values()) < 1.0, summary
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
