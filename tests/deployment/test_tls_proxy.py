"""Behind a real reverse proxy that terminates TLS (nginx from Debian, installed by scripts/services.sh, with a
self-signed certificate made here): with DJANGO_TRUST_PROXY_HEADERS the absolute URLs the platform writes
(QIDO and STOW RetrieveURL, WADO BulkDataURI) carry the public https:// host and port, and without it the
forwarded headers are ignored."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from annotation.models import Project
from imaging.synthetic import generate_ct_study
from tests.conftest import dataset_bytes

NGINX = "/usr/sbin/nginx"
# The name clients use for the platform: the proxy is reached on 127.0.0.1 with this Host header, so the
# public host differs from the internal one (127.0.0.1) in name, port and scheme.
PUBLIC_NAME = "medlabel.test"
BASE_DIR = Path(django_settings.BASE_DIR)

NGINX_CONF = """\
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        client_max_body_size 0;
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Set, never appended: what the client sent in these headers is replaced.
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


@dataclass
class Proxy:
    port: int
    cert: Path
    internal: str

    @property
    def public(self) -> str:
        return f"https://{PUBLIC_NAME}:{self.port}"

    def session(self, token: str | None = None) -> requests.Session:
        session = requests.Session()
        # Not from the environment: REQUESTS_CA_BUNDLE would override the certificate made here, and an
        # HTTPS_PROXY would be asked to reach 127.0.0.1.
        session.trust_env = False
        session.verify = str(self.cert)
        session.headers["Host"] = f"{PUBLIC_NAME}:{self.port}"
        if token is not None:
            session.headers["Authorization"] = f"Token {token}"
        return session

    def url(self, public_url: str) -> str:
        """Where to connect for a public URL: the proxy on 127.0.0.1 (the Host header carries the name)."""
        assert public_url.startswith(self.public + "/"), public_url
        return f"https://127.0.0.1:{self.port}" + public_url[len(self.public) :]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tls_proxy(live_server: Any, tmp_path: Path) -> Iterator[Proxy]:
    if not os.access(NGINX, os.X_OK):
        pytest.fail(f"{NGINX} is missing: scripts/services.sh installs it (run the suite with scripts/test.sh)")
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing: scripts/services.sh installs it (run the suite with scripts/test.sh)")
    folder = tmp_path / "nginx"
    folder.mkdir()
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={PUBLIC_NAME}",
         "-addext", f"subjectAltName=DNS:{PUBLIC_NAME},IP:127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    internal = str(live_server.url).replace("://localhost:", "://127.0.0.1:")
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(NGINX_CONF.format(dir=folder, port=port, upstream=internal))
    # -e: the error log before the configuration is read (the default, under /var/log, may not be writable).
    process = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"nginx exited with {process.returncode}:\n{(folder / 'error.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not listen on {port}:\n{(folder / 'error.log').read_text()}")
                time.sleep(0.05)
        yield Proxy(port=port, cert=folder / "cert.pem", internal=internal)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def public_host_allowed(settings: Any) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, PUBLIC_NAME]


def stow(session: requests.Session, url: str) -> dict[str, Any]:
    dataset = next(iter(generate_ct_study(seed=5, rows=32, columns=32, slices=1, n_lesions=0).datasets()))
    boundary = "proxy-test-boundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + dataset_bytes(dataset)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = session.post(
        url, data=body, headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def absolute_urls(proxy: Proxy, session: requests.Session, root: str) -> list[str]:
    """Every absolute URL that STOW, QIDO (studies, series, instances) and WADO metadata write."""
    stowed = stow(session, proxy.url(f"{proxy.public}{root}/studies"))
    (referenced,) = stowed["00081199"]["Value"]
    urls = [stowed["00081190"]["Value"][0], referenced["00081190"]["Value"][0]]
    (study,) = session.get(proxy.url(f"{proxy.public}{root}/studies")).json()
    study_uid = study["0020000D"]["Value"][0]
    (series,) = session.get(proxy.url(f"{proxy.public}{root}/studies/{study_uid}/series")).json()
    series_uid = series["0020000E"]["Value"][0]
    (instance,) = session.get(
        proxy.url(f"{proxy.public}{root}/studies/{study_uid}/series/{series_uid}/instances")
    ).json()
    (metadata,) = session.get(proxy.url(f"{proxy.public}{root}/studies/{study_uid}/metadata")).json()
    urls += [item["00081190"]["Value"][0] for item in (study, series, instance)]
    urls.append(metadata["7FE00010"]["BulkDataURI"])
    return urls


def test_urls_behind_a_tls_proxy_carry_the_public_https_host(
    tls_proxy: Proxy,
    public_host_allowed: None,
    settings: Any,
    project: Project,
    manager: User,
    token_for: Callable[[User], str],
):
    # What DJANGO_TRUST_PROXY_HEADERS=true sets (test_trust_proxy_headers_setting checks the mapping).
    settings.USE_X_FORWARDED_HOST = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    session = tls_proxy.session(token_for(manager))
    root = f"/dicomweb/projects/{project.slug}"

    urls = absolute_urls(tls_proxy, session, root)

    assert len(urls) == 6
    for url in urls:
        assert url.startswith(f"{tls_proxy.public}{root}/studies"), url
    # The URLs work when followed through the proxy: the BulkDataURI gives the pixel data.
    bulk = session.get(
        tls_proxy.url(urls[-1]), headers={"Accept": 'multipart/related; type="application/octet-stream"'}
    )
    assert bulk.status_code == 200
    assert len(bulk.content) > 32 * 32 * 2
    # A client's own X-Forwarded-Host is overwritten by the proxy, so it cannot steer the URLs.
    spoofed = session.get(
        tls_proxy.url(f"{tls_proxy.public}{root}/studies"), headers={"X-Forwarded-Host": "evil.example"}
    )
    assert spoofed.json()[0]["00081190"]["Value"][0].startswith(f"{tls_proxy.public}/")


def test_login_form_through_the_tls_proxy_passes_the_csrf_origin_check(
    tls_proxy: Proxy, public_host_allowed: None, settings: Any, manager: User
):
    """Django compares the browser's https:// Origin with the scheme and host of the request: the public ones."""
    settings.USE_X_FORWARDED_HOST = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    manager.set_password("proxy-password")
    manager.save(update_fields=["password"])
    session = tls_proxy.session()
    login = tls_proxy.url(f"{tls_proxy.public}/accounts/login/")
    assert session.get(login).status_code == 200
    response = session.post(
        login,
        data={
            "username": manager.username,
            "password": "proxy-password",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Origin": tls_proxy.public, "Referer": f"{tls_proxy.public}/accounts/login/"},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    assert "sessionid" in session.cookies


def test_forwarded_headers_are_ignored_by_default(
    tls_proxy: Proxy, public_host_allowed: None, project: Project, manager: User, token_for: Callable[[User], str]
):
    assert django_settings.USE_X_FORWARDED_HOST is False
    assert django_settings.SECURE_PROXY_SSL_HEADER is None
    session = tls_proxy.session(token_for(manager))
    root = f"/dicomweb/projects/{project.slug}"
    stowed = stow(session, tls_proxy.url(f"{tls_proxy.public}{root}/studies"))
    # nginx sends the upstream's own host (proxy_pass), so the URLs name the internal server, over http.
    assert stowed["00081190"]["Value"][0] == f"{tls_proxy.internal}{root}/studies"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "False None"), ("false", "False None"), ("true", "True ('HTTP_X_FORWARDED_PROTO', 'https')")],
)
def test_trust_proxy_headers_setting(value: str, expected: str):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_TRUST_PROXY_HEADERS": value}
    result = subprocess.run(
        [sys.executable, "-c",
         "from django.conf import settings; print(settings.USE_X_FORWARDED_HOST, settings.SECURE_PROXY_SSL_HEADER)"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == expected
