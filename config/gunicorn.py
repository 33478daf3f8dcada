"""gunicorn settings for every way the web process runs: ``gunicorn -c config/gunicorn.py config.wsgi:application``
(scripts/run.sh, scripts/load.sh, scripts/faults.sh, the web image). Workers, threads and the bind address stay
on each command line.

The application is imported once, in the master, before the workers fork (``preload_app``), and
``config.wsgi`` imports every URL route, view and translation catalogue as it loads (``config.warmup``): a
worker answers its first request as fast as its hundredth. Without this, each worker imported the routes
on its first request (seconds of CPU; before torch left the request path, 3.7 s more) while requests queued.
"""

from __future__ import annotations

from typing import Any

preload_app = True

# The worker's pid and the time taken (seconds) in each access-log line: tests/test_web_start.py reads the
# first request of each worker from it.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" pid=%(p)s took=%(L)s'


def post_fork(server: Any, worker: Any) -> None:
    # A database connection opened in the master (none should be) must not be shared by forked workers.
    from django.db import connections

    connections.close_all()
