"""The reader's figures of issue 15, in Debian's Chromium (headless, SwiftShader) against a live server on loopback:

1. time to first image of a 300-slice CT, cold (first page load after ingest) and warm (the next loads);
2. stack scrolling: preload of the whole stack, then frames per second through it (one render per slice);
3. MPR ready (volume loaded, three planes drawn) for a 512 x 512 x 300 CT in the 2x2 layout, with its phases
   (viewports, volume created, all frames in, first render) and the frame requests the browser made
   (count, bytes, first start, last end), each loader mode of the MPR viewer in the same run, on a fresh page
   load right after the first image (as a reader who switches to MPR at once): "streaming" is Cornerstone3D's
   streaming volume (one WADO-RS request per frame, as before), "bulk" the whole series in one request
   (frontend/src/viewer/volumeLoad.ts);
4. what the software renderer costs: the time of one MPR frame (three planes) while moving through the volume.

Run with: bash scripts/bench.sh reader            (512 x 512 x 300)
          BENCH_READER_ROWS=256 bash scripts/bench.sh reader
Figures are printed and written to bench-results/reader.json, with the load average of the machine.
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

from django.contrib.auth.models import User  # noqa: E402
from playwright.sync_api import Browser, Page  # noqa: E402

from annotation.models import Case, Project  # noqa: E402
from annotation.services import assignment_create  # noqa: E402
from imaging.synthetic import generate_ct_study  # noqa: E402
from tests.browser import test_reading_flow as flow  # noqa: E402
from tests.browser.synthetic_cases import ingest_as_case  # noqa: E402
from tests.browser.test_reading_flow import SLUG, Session  # noqa: E402

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = int(os.environ.get("BENCH_READER_ROWS", "512"))
SLICES = int(os.environ.get("BENCH_READER_SLICES", "300"))
# The MPR viewer's loader modes compared in one run (see frontend/src/viewer/volumeLoad.ts).
MODES = os.environ.get("BENCH_READER_MODES", "streaming,bulk").split(",")
TIMEOUT_MS = 300_000


def _load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _ingest(project: Project) -> Case:
    study = generate_ct_study(seed=4242, rows=ROWS, columns=ROWS, slices=SLICES, n_lesions=2)
    return ingest_as_case(project, study, name="bench")


# The frame and metadata requests of the page since a mark (Resource Timing; its buffer is enlarged at load).
NETWORK_JS = r"""since => {
  const entries = performance.getEntriesByType('resource').filter(e => e.startTime >= since);
  const frames = entries.filter(e => e.name.includes('/frames/'));
  const meta = entries.filter(e => e.name.endsWith('/metadata'));
  const series = entries.filter(e => /\/series\/[^/]+$/.test(e.name));
  const first = Math.min(...frames.map(e => e.startTime));
  const last = Math.max(...frames.map(e => e.responseEnd));
  return {
    frame_requests: frames.length,
    metadata_requests: meta.length,
    series_requests: series.length,
    series_bytes: series.reduce((s, e) => s + (e.encodedBodySize || 0), 0),
    frame_bytes: frames.reduce((s, e) => s + (e.encodedBodySize || 0), 0),
    frames_first_start_ms: frames.length ? first - since : null,
    frames_last_end_ms: frames.length ? last - since : null,
  };
}"""

# One MPR frame: move the three planes to another voxel and wait for two animation frames (Cornerstone3D
# renders in the next one), over n steps through the volume.
MPR_FRAME_JS = """async n => {
  const mpr = window.__medlabel.mpr.current;
  const [slices, rows, columns] = window.__medlabel.mprShape;
  const raf = () => new Promise(r => requestAnimationFrame(() => r(null)));
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const f = (i + 1) / (n + 1);
    mpr.jumpTo([Math.floor(f * slices), Math.floor(f * rows), Math.floor(f * columns)]);
    await raf(); await raf();
  }
  return (performance.now() - start) / n;
}"""

RENDERER_JS = """() => {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return 'no WebGL2';
  const ext = gl.getExtension('WEBGL_debug_renderer_info');
  return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
}"""


def _mpr(session: Session, url: str, mode: str) -> dict[str, Any]:
    page: Page = session.page
    page.goto(f"{url}&mprLoad={mode}")
    session.wait_first_image()
    since = float(page.evaluate("performance.now()"))
    page.get_by_role("radio", name="MPR 2×2").click()
    page.wait_for_function("() => window.__medlabel.mprReadyMs > 0", timeout=TIMEOUT_MS)
    ready_ms = float(page.evaluate("window.__medlabel.mprReadyMs"))
    phases = page.evaluate("window.__medlabel.mprPhases")
    network = page.evaluate(NETWORK_JS, since)
    page.evaluate(f"() => window.__medlabel.mprShape = [{SLICES}, {ROWS}, {ROWS}]")
    frame_ms = float(page.evaluate(MPR_FRAME_JS, 10))
    # Switching layout keeps the volume: the time to the redraw in 1x3.
    switch_start = time.perf_counter()
    page.get_by_role("radio", name="MPR 1×3").click()
    page.get_by_test_id("mpr").and_(page.locator("[data-layout='1x3']")).wait_for()
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    switch_ms = (time.perf_counter() - switch_start) * 1000
    flow.shot(page, f"bench-mpr-{mode}")
    return {
        "mode": mode,
        "mpr_ready_ms": round(ready_ms, 1),
        "phases_ms": {k: round(float(v), 1) for k, v in phases.items()},
        "network": {k: (round(float(v), 1) if v is not None else None) for k, v in network.items()},
        "mpr_frame_ms": round(frame_ms, 1),
        "switch_to_1x3_ms": round(switch_ms, 1),
        "load_average": _load_average(),
    }


def test_reader_figures(browser: Browser, base_url: str) -> None:
    project = Project.objects.get(slug=SLUG)
    started = time.perf_counter()
    case = _ingest(project)
    ingest_s = time.perf_counter() - started
    assignment_create(case=case, user=User.objects.get(username="annotator"), role="first_reader", assigned_by=None)
    url = f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}"

    session = Session(browser, base_url, "annotator")
    session.context.add_init_script("performance.setResourceTimingBufferSize(5000)")
    page = session.page
    renderer = page.evaluate(RENDERER_JS)
    first_image, metadata = [], []
    for _ in range(3):  # the first load is cold (server imports, file cache); the others are warm
        page.goto(url)
        first_image.append(round(session.wait_first_image(), 1))
        metadata.append(round(float(page.evaluate("window.__medlabel.metadataMs")), 1))
    assert page.evaluate("window.__medlabel.slices") == SLICES
    preload_ms = float(page.evaluate("window.__medlabel.viewer.current.preloadAll()"))
    scroll = page.evaluate("window.__medlabel.viewer.current.scrollBenchmark()")

    mpr = [_mpr(session, url, mode) for mode in MODES]
    session.close()

    result = {
        "series": {"slices": SLICES, "rows": ROWS, "columns": ROWS, "server": "Django live server, loopback"},
        "browser": f"{browser.version} headless",
        "renderer": renderer,
        "cpus": os.cpu_count(),
        "ingest_s": round(ingest_s, 1),
        "first_image_ms": {"cold": first_image[0], "warm": first_image[1:], "goal": 500, "of_which_metadata": metadata},
        "stack": {"preload_all_ms": round(preload_ms, 1), **{k: round(float(v), 2) for k, v in scroll.items()}},
        "mpr": mpr,
        "mpr_goal_ms": 3000,
        "load_average": _load_average(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / f"reader-{ROWS}x{ROWS}x{SLICES}.json").write_text(text)
    assert all(run["mpr_ready_ms"] > 0 for run in mpr)
