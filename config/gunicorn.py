"""gunicorn settings for every way the web process runs: ``gunicorn -c config/gunicorn.py config.wsgi:application``
(scripts/run.sh, scripts/load.sh, scripts/faults.sh, the web image). Workers, threads and the bind address stay
on each command line.

The application is imported once, in the master, before the workers fork (``preload_app``), and
``config.wsgi`` imports every URL route, view and translation catalogue as it loads (``config.warmup``): a
worker answers its first request as fast as its hundredth. Without this, each worker imported the routes
on its first request (seconds of CPU; before torch left the request path, 3.7 s more) while requests queued.
"""

from __future__ import annotations

import os
import sys
from typing import Any

preload_app = True

# The worker's pid and the time taken (seconds) in each access-log line: tests/test_web_start.py reads the
# first request of each worker from it.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" pid=%(p)s took=%(L)s'


def post_fork(server: Any, worker: Any) -> None:
    # A database connection opened in the master (none should be) must not be shared by forked workers.
    from django.db import connections

    connections.close_all()
    # The GIL hand-off interval (CPython's default 5 ms): a thread serialising a large answer holds the GIL for up
    # to this long before another thread of the worker, with a short request ready, may run.
    # MEDLABEL_SWITCH_INTERVAL_MS tunes it (issue 19). Measured with scripts/load.sh (120 s, 50 readers, 2 cores, other
    # jobs on the machine): 5 workers x 2 threads at 1 ms answered no faster than 3 x 4 at 5 ms (p95 661 against
    # 647 ms at load ~7; 439 against 250 ms at load ~4), so the default stays CPython's.
    interval_ms = float(os.environ.get("MEDLABEL_SWITCH_INTERVAL_MS", "5"))
    sys.setswitchinterval(interval_ms / 1000)
