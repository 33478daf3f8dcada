"""Latency of an AI prompt in the reader, from the browser's click to the drawn proposal (issue 17's definition),
in Debian's Chromium (headless, SwiftShader) against a live server and a real ``interactive`` Celery worker.

bench_interactive measures each engine through the API (request to decoded mask), with the simulated reader; this
adds what the browser does around that request: turning the click into a prompt, sending it with the previous
proposal, decoding the answer and drawing it. A reader clicks in each nodule of a hard synthetic study, refines
with the simulated reader's next click, and discards, three times over. Per prompt: the wall time from the click
to the proposal shown and painted (a frame after React shows it), and, from the browser's own resource timing, the
part spent on the request; the rest is the browser's. The engine here is region-growing (no model is trained in
this run): the browser's part does not depend on the engine, and bench_interactive gives each engine's request.

Run with: bash scripts/bench.sh ai_prompt
Figures are printed and written to bench-results/ai_prompt.json, with the load average of the machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    # Collected by its own name (it is no test_*.py file, so the test command never runs it).
    options = ["-q", "-s", "-p", "no:cacheprovider", "-o", "python_files=bench_*.py"]
    sys.exit(pytest.main([__file__, *options, *sys.argv[1:]]))

import numpy as np  # noqa: E402
from playwright.sync_api import Browser, Page  # noqa: E402

from inference.interactive.simulate import next_click  # noqa: E402
from tests.browser import test_reading_flow as flow  # noqa: E402
from tests.browser.test_ai_assist import LesionCase, _click_voxel, lesion_case  # noqa: E402, F401
from tests.browser.test_reading_flow import SLUG, Session  # noqa: E402
from tests.inference.test_interactive import interactive_worker  # noqa: E402

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = int(os.environ.get("BENCH_AI_PROMPT_ROUNDS", "3"))

LAST_REQUEST = """() => {
    const entries = performance.getEntriesByType("resource").filter((e) => e.name.includes("/interactive/"));
    const last = entries[entries.length - 1];
    return last ? [entries.length, last.responseEnd - last.startTime] : [0, 0];
}"""


def _prompt(page: Page, voxel: tuple[int, int, int], count: int) -> tuple[float, float]:
    """Click ``voxel`` with the point tool chosen; (seconds from the click to the proposal shown and painted, seconds
    of that on the request)."""
    before = page.evaluate(LAST_REQUEST)[0]
    clicked = _click_voxel(page, voxel)
    # The proposal's line names its prompts: shown for this prompt once it reads "from <count> prompt(s)".
    page.wait_for_function(
        """([before, count]) => {
            const shown = document.querySelector('[data-testid="ai-proposal"]');
            const requests = performance.getEntriesByType("resource").filter((e) => e.name.includes("/interactive/"));
            return shown && shown.textContent.includes(`from ${count} prompt`) && requests.length > before;
        }""",
        arg=[before, count],
        timeout=60_000,
    )
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    drawn = time.perf_counter()
    _, request_ms = page.evaluate(LAST_REQUEST)
    return drawn - clicked, request_ms / 1000


def test_ai_prompt_latency(
    browser: Browser,
    base_url: str,
    lesion_case: Any,  # noqa: F811
    tmp_path: Path,
    settings: Any,
) -> None:
    setup: LesionCase = lesion_case("solid")  # the hard study as a case; then each of its four nodules
    case, study = setup.case, setup.study
    truths = [study.mask == lesion.index for lesion in study.lesions]
    settings.INTERACTIVE_TIMEOUT_SECONDS = 30.0  # the worker answers; no fallback
    totals: list[float] = []
    requests: list[float] = []
    with interactive_worker(Path(settings.MEDIA_ROOT), tmp_path / "worker.log"):
        session = Session(browser, base_url, "annotator")
        session.context.add_init_script("performance.setResourceTimingBufferSize(5000)")  # past the frames' entries
        page = session.page
        page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
        session.wait_first_image()
        page.get_by_test_id("ai-assist").get_by_role("button", name="Positive point").click()
        for _ in range(ROUNDS):
            for truth in truths:
                first = next_click(truth, None, setup.spacing)
                assert first is not None
                total, request = _prompt(page, first.points[0], 1)
                totals.append(total)
                requests.append(request)
                # A refinement: a second positive click elsewhere in the nodule, sent with the previous proposal.
                inside = np.argwhere(truth)
                second = tuple(int(v) for v in inside[len(inside) // 3])
                total, request = _prompt(page, (second[0], second[1], second[2]), 2)
                totals.append(total)
                requests.append(request)
                page.get_by_test_id("ai-assist").get_by_role("button", name="Discard").click()
                page.get_by_test_id("ai-proposal").wait_for(state="detached")
        session.close()
    browser_part = [t - r for t, r in zip(totals, requests, strict=True)]
    result = {
        "prompts": len(totals),
        "engine": "region-growing (interactive worker)",
        "click_to_drawn_p50_s": round(float(np.percentile(totals, 50)), 3),
        "click_to_drawn_p95_s": round(float(np.percentile(totals, 95)), 3),
        "request_p50_s": round(float(np.percentile(requests, 50)), 3),
        "request_p95_s": round(float(np.percentile(requests, 95)), 3),
        "browser_part_p50_s": round(float(np.percentile(browser_part, 50)), 3),
        "browser_part_p95_s": round(float(np.percentile(browser_part, 95)), 3),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench-results" / "ai_prompt.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    assert len(totals) == ROUNDS * len(truths) * 2
