"""The README's run command, as written, serves the platform on its embedded default."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# The test command points these at PostgreSQL and Redis; the run command must work without them.
SERVICE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "MEDLABEL_STORAGE_DIR")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def requests_fail(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return True
    return False


def test_run_command_serves_pages_and_demo_user_lists_studies_over_qido(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update({"MEDLABEL_DATA_DIR": str(tmp_path / "var"), "MEDLABEL_PORT": str(port)})
    started = time.perf_counter()
    first = subprocess.run(
        ["bash", "scripts/run.sh", "--detach"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    first_seconds = time.perf_counter() - started
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"http://127.0.0.1:{port}/" in first.stdout
        assert "manager" in first.stdout and "medlabel-demo" in first.stdout
        base = f"http://127.0.0.1:{port}"

        login_page = requests.get(f"{base}/", timeout=10)
        assert login_page.status_code == 200
        assert "Sign in" in login_page.text  # redirected to the login form

        # The browser app, built by the run command, is served after signing in, with its assets.
        browser = requests.Session()
        form = browser.get(f"{base}/accounts/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None, form.text[:500]
        signed_in = browser.post(
            f"{base}/accounts/login/?next=/",
            data={"username": "annotator", "password": "medlabel-demo", "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=30,
        )
        assert signed_in.status_code == 200 and '<div id="root">' in signed_in.text, signed_in.text[:500]
        assets = re.findall(r'(?:src|href)="(/static/assets/[^"]+)"', signed_in.text)
        assert any(a.endswith(".js") for a in assets), signed_in.text
        for asset in assets:
            assert browser.get(f"{base}{asset}", timeout=30).status_code == 200, asset
        me = browser.get(f"{base}/api/v1/me/", timeout=10).json()
        assert me["username"] == "annotator" and me["projects"][0]["roles"] == ["annotator"]
        assert browser.get(f"{base}/projects/demo-chest-ct", timeout=10).text == signed_in.text  # a client route

        studies = requests.get(f"{base}/dicomweb/studies", auth=("manager", "medlabel-demo"), timeout=30)
        assert studies.status_code == 200, studies.text
        assert studies.headers["Content-Type"].startswith("application/dicom+json")
        uids = {item["0020000D"]["Value"][0] for item in studies.json()}
        assert len(uids) >= 5  # four synthetic chest CTs plus pydicom's real files
        assert requests.get(f"{base}/dicomweb/studies", timeout=10).status_code == 401

        celery_pid = int((tmp_path / "var" / "run" / "celery.pid").read_text())
        os.kill(celery_pid, 0)  # the worker is alive

        # A second run reuses the virtualenv, database, frontend build and demo data. The running web server
        # and worker are stopped first (waiting for them to exit is not setup work), so the two timings
        # compare the same steps.
        stopped = subprocess.run(
            ["bash", "scripts/run.sh", "stop"], cwd=ROOT, env=env, capture_output=True, timeout=120
        )
        assert stopped.returncode == 0
        assert requests_fail(f"{base}/healthz")
        started = time.perf_counter()
        second = subprocess.run(
            ["bash", "scripts/run.sh", "--detach"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        second_seconds = time.perf_counter() - started
        assert second.returncode == 0, second.stdout + second.stderr
        assert ".venv is up to date" in second.stdout
        assert "[frontend] dist is up to date" in second.stdout
        again = requests.get(f"{base}/dicomweb/studies", auth=("manager", "medlabel-demo"), timeout=30)
        assert {item["0020000D"]["Value"][0] for item in again.json()} == uids
        assert second_seconds < max(first_seconds, 60)
    finally:
        subprocess.run(["bash", "scripts/run.sh", "stop"], cwd=ROOT, env=env, capture_output=True, timeout=120)
