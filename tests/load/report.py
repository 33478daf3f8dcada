"""After a load run: latency per endpoint in the saturated phase apart from the idle tail, database queries
per request per endpoint, and the CPU the load generator used.

The saturated phase runs from the start until the last case is handed out (the last "worklist next" answered
200); after it readers finish their last cases and then only ask for work, the machine idles, and those quick
answers would flatter the percentiles. A "worklist next" that finds no work (204) is reported in a row of its
own in either phase, never mixed into the row of the claims.

python -m tests.load.report REQUESTS.jsonl [CPU.json]
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from typing import Any


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def table(rows: list[dict[str, Any]], title: str) -> list[str]:
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_name[row["name"]].append(row)
    if not by_name:
        return [f"{title}: no requests"]
    span = max(r["start"] + r["ms"] / 1000 for r in rows) - min(r["start"] for r in rows)
    lines = [
        f"{title}: {len(rows)} requests in {span:.1f} s ({len(rows) / max(span, 1e-9):.1f}/s)",
        f"  {'endpoint':<24}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'errors':>8}{'queries mean':>14}{'max':>6}",
    ]
    for name in sorted(by_name):
        group = by_name[name]
        times = [r["ms"] for r in group]
        queries = [r["queries"] for r in group if r.get("queries") is not None]
        errors = sum(1 for r in group if r["error"])
        q_mean = f"{statistics.mean(queries):.1f}" if queries else "-"
        q_max = f"{max(queries)}" if queries else "-"
        lines.append(
            f"  {name:<24}{len(group):>6}{statistics.median(times):>9.0f}{percentile(times, 0.95):>9.0f}"
            f"{percentile(times, 0.99):>9.0f}{max(times):>9.0f}{errors:>8}{q_mean:>14}{q_max:>6}"
        )
    every = [r["ms"] for r in rows]
    lines.append(
        f"  {'all':<24}{len(rows):>6}{statistics.median(every):>9.0f}{percentile(every, 0.95):>9.0f}"
        f"{percentile(every, 0.99):>9.0f}{max(every):>9.0f}{sum(1 for r in rows if r['error']):>8}"
    )
    return lines


def main() -> int:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    rows.sort(key=lambda r: r["start"])
    for row in rows:
        if row["name"] == "worklist next" and row["status"] == 204:
            row["name"] = "worklist next (no work)"
    claims = [r["start"] for r in rows if r["name"] == "worklist next" and r["status"] == 200]
    cut = max(claims) if claims else math.inf
    saturated = [r for r in rows if r["start"] <= cut]
    tail = [r for r in rows if r["start"] > cut]
    lines = table(saturated, "saturated phase (until the last case is handed out)")
    lines += table(tail, "tail (readers finishing their last cases, then finding no work)")
    if len(sys.argv) > 2:
        cpu = json.load(open(sys.argv[2]))
        lines.append(
            f"load generator (Locust): {cpu['cpu_s']:.1f} CPU-s in {cpu['wall_s']:.1f} s wall "
            f"= {100 * cpu['cpu_s'] / max(cpu['wall_s'], 1e-9):.0f}% of one core"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
