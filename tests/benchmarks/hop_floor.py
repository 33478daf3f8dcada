"""The floor of any HTTP hop in front of Orthanc on this machine, as a reference for the proxy's overhead
(bench_imaging.bench_wado's ``hop_floor``): a WSGI application with nothing of ours in it (no Django, no
authentication, no access check, no database) that forwards a frame request to Orthanc and passes its answer
through, served by the same gunicorn (workers, threads) as our proxy. What our proxy costs above Orthanc is
this floor plus our own work; the floor itself is what being a second HTTP server in the path costs.

Run by gunicorn: ``gunicorn tests.benchmarks.hop_floor:application`` with HOP_FLOOR_UPSTREAM set to Orthanc's
DICOMweb root. Benchmark code only: it checks nothing and must never serve anyone.

``start_nginx`` gives the same hop in C where nginx is installed: nginx passing frames through to Orthanc over
kept-alive connections, the cheapest proxy there is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import urllib3

UPSTREAM = os.environ.get("HOP_FLOOR_UPSTREAM", "")
PREFIX = "/dicomweb"
_local = threading.local()


def _pool() -> urllib3.HTTPConnectionPool:
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = urllib3.connection_from_url(UPSTREAM, maxsize=1)
    return pool


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if not path.startswith(PREFIX):
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    upstream_path = (urllib3.util.parse_url(UPSTREAM).path or "").rstrip("/") + path[len(PREFIX) :]
    response = _pool().urlopen(
        "GET",
        upstream_path,
        headers={"Accept": environ.get("HTTP_ACCEPT", "*/*"), "Accept-Encoding": "identity"},
        retries=False,
        preload_content=False,
        decode_content=False,
    )
    headers = [
        (name, response.headers[name]) for name in ("Content-Type", "Content-Length") if name in response.headers
    ]
    start_response(f"{response.status} {response.reason}", headers)

    def body() -> Iterable[bytes]:
        try:
            yield from response.stream(1 << 20, decode_content=False)
        finally:
            response.release_conn()

    return body()


NGINX_CONF = """worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {root}/body; proxy_temp_path {root}/proxy; fastcgi_temp_path {root}/fcgi;
  uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
  upstream pacs {{ server {upstream_host}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    location /dicomweb/ {{
      proxy_pass http://pacs{upstream_path}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def start_nginx(port: int, upstream: str) -> tuple[subprocess.Popen[bytes], str] | None:
    """nginx in the foreground passing /dicomweb/... through to ``upstream`` (Orthanc's DICOMweb root), or None
    where nginx is not installed. Returns the process and its directory (to remove)."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        return None
    url = urllib3.util.parse_url(upstream)
    root = tempfile.mkdtemp(prefix="hop-floor-nginx.")
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as out:
        out.write(
            NGINX_CONF.format(
                root=root, port=port, upstream_host=url.netloc, upstream_path=(url.path or "").rstrip("/")
            )
        )
    process = subprocess.Popen([binary, "-c", conf, "-p", root, "-g", "daemon off;"])
    for _ in range(50):
        try:
            urllib3.request("GET", f"http://127.0.0.1:{port}/", retries=False, timeout=1)
            return process, root
        except urllib3.exceptions.HTTPError:
            time.sleep(0.1)
    process.terminate()
    shutil.rmtree(root, ignore_errors=True)
    return None
