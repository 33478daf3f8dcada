"""Before a load run: every gunicorn worker has answered a request, so that no measured request is a
worker's first. Requests go on new connections (any worker may take one) until each worker's pid has
appeared in the access log (config/gunicorn.py writes ``pid=`` in each line).

python -m tests.load.warm BASE_URL ACCESS_LOG MASTER_PID
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

PATHS = ("/healthz", "/api/v1/me/", "/dicomweb/studies", "/api/v1/projects/")


def worker_pids(master: int) -> set[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True)
    return {int(p) for p in found.stdout.split()}


def answered(access_log: Path) -> dict[int, float]:
    """The time taken by each worker's first request in the access log."""
    firsts: dict[int, float] = {}
    for line in access_log.read_text().splitlines() if access_log.exists() else []:
        match = re.search(r"pid=<?(\d+)>? took=([0-9.]+)", line)
        if match:
            firsts.setdefault(int(match.group(1)), float(match.group(2)))
    return firsts


def warm(base: str, access_log: Path, master: int, timeout: float = 60.0) -> dict[int, float]:
    workers = worker_pids(master)

    def get(path: str) -> int:
        return requests.get(base + path, headers={"Connection": "close"}, timeout=30).status_code

    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=4 * max(len(workers), 1)) as pool:
        while time.monotonic() < deadline:
            list(pool.map(get, PATHS * max(len(workers), 1)))
            time.sleep(0.2)  # gunicorn writes the access line after the response
            firsts = answered(access_log)
            if workers <= set(firsts):
                return {pid: firsts[pid] for pid in workers}
    raise SystemExit(f"not every worker answered within {timeout:g} s: {sorted(workers - set(answered(access_log)))}")


def main() -> int:
    base, access_log, master = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    firsts = warm(base.rstrip("/"), access_log, master)
    slowest = max(firsts.values())
    print(
        f"[load] warmed {len(firsts)} workers; their first requests took "
        + ", ".join(f"{t * 1000:.0f} ms" for t in firsts.values())
    )
    return 0 if slowest < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
