"""The OHIF Viewer 3.13.2, exactly as published in the npm registry (scripts/ohif.sh installs it into
var/ohif), against a live server, in Debian's Chromium:

- same origin: the platform serves OHIF under /ohif/ (MEDLABEL_OHIF_ENABLED) with the user's session, and
  its one DICOMweb data source is /dicomweb;
- cross origin: the published build, untouched, from a static server on a second loopback port, listed in
  CORS_ALLOWED_ORIGINS; its data source is a project's root, /dicomweb/projects/<slug>, with a personal
  API token (Authorization: Bearer) and no cookie.

Each run opens the study list, opens a synthetic CT, checks that the image renders (pixel spread of the
viewport's canvas), switches to MPR (three orthographic viewports, each rendering), and records zero
failed DICOMweb requests and zero console errors. Screenshots of the study list, the CT and MPR go to
$TEST_ARTIFACTS_DIR/screenshots/ohif-*.png.

Also: the "Open in OHIF" link of a project, which opens OHIF on that project's studies only.

WebGL runs on SwiftShader (Chromium's software renderer): --use-angle=swiftshader and
--enable-unsafe-swiftshader, without which headless Chromium refuses WebGL and OHIF cannot show MPR.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import numpy as np
import pydicom
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Request, Response, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from accounts.services import api_token_create
from annotation.models import Project
from annotation.services import assignment_create, cases_create
from imaging.ohif import services as ohif
from imaging.services.ingest import IncomingFile, ingest_files
from imaging.synthetic import generate_ct_study
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, place_studies

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # WebGL through SwiftShader, the software renderer: headless Chromium has no GPU here, and without
    # these two flags it gives OHIF no WebGL context at all.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
PASSWORD = "test-password-123"  # tests.factories.UserFactory's
MIN_CANVAS_STD = 10.0  # a blank or uniform viewport gives ~0; the synthetic chest CT gives 40-70

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def ohif_build_installed() -> None:
    # Fail, never skip: the test command installs the build (scripts/ohif.sh), so a missing one is a broken setup.
    index = Path(django_settings.OHIF_DIST_DIR) / "index.html"
    assert index.is_file(), f"the OHIF build is not installed at {index}: run bash scripts/ohif.sh"


def artifacts() -> Path:
    root = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "test-artifacts")
    (root / "screenshots").mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    home = tempfile.mkdtemp(prefix="medlabel-chromium-")
    monkeypatch.setenv("XDG_CONFIG_HOME", home)
    monkeypatch.setenv("XDG_CACHE_HOME", home)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            yield instance
            instance.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Studies:
    user: User
    mine: Project
    other: Project
    my_study: str
    other_study: str
    patient: str


def _ingest(project: Project, seed: int, patient_id: str) -> str:
    study = generate_ct_study(seed=seed, rows=128, columns=128, slices=48, n_lesions=2, patient_id=patient_id)

    def files() -> Iterator[IncomingFile]:
        for number, dataset in enumerate(study.datasets(), start=1):
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
            yield IncomingFile(name=f"{patient_id}/{number:03d}.dcm", data=buffer.getvalue())

    report = ingest_files(files())
    place_studies(project, report.study_uids)
    (uid,) = report.study_uids
    return str(uid)


@pytest.fixture
def studies(db: None) -> Studies:
    """Two projects with one synthetic CT each; the user is a member of the first only."""
    mine = cast(Project, ProjectFactory(slug="ohif-chest", name="OHIF chest"))
    other = cast(Project, ProjectFactory(slug="ohif-other", name="Other project"))
    user = cast(User, UserFactory(username="ohif-reader"))
    MembershipFactory(project=mine, user=user, role="annotator")
    my_study = _ingest(mine, 7001, "OHIF-MINE")
    other_study = _ingest(other, 7002, "OHIF-OTHER")
    return Studies(user, mine, other, my_study, other_study, "OHIF-MINE")


@pytest.fixture
def base_url(live_server: Any) -> str:
    return str(live_server.url).replace("://localhost:", "://127.0.0.1:")


@dataclass
class Recorder:
    """What a page did: DICOMweb requests (and how they ended) and console errors."""

    dicomweb: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        page.on("response", self._response)
        page.on("requestfailed", self._request_failed)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} {message.location.get('url')}")

    def _page_error(self, error: Error) -> None:
        self.errors.append(str(error))

    def _response(self, response: Response) -> None:
        if "/dicomweb/" in response.url:
            self.dicomweb.append(f"{response.request.method} {response.status} {response.url}")
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _request_failed(self, request: Request) -> None:
        self.failed.append(f"failed ({request.failure}) {request.url}")


def canvas_std(page: Page, index: int = 0) -> float:
    """Standard deviation of the grey values of a viewport's canvas: Cornerstone draws each viewport's image
    into a 2D canvas (.cornerstone-canvas); the overlays are HTML and SVG above it, not in it."""
    return float(
        page.evaluate(
            """(index) => {
                const canvas = document.querySelectorAll('canvas.cornerstone-canvas')[index];
                if (!canvas || !canvas.width) return 0;
                const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                let sum = 0, sq = 0, n = 0;
                for (let i = 0; i < data.length; i += 16) {
                    const g = (data[i] + data[i + 1] + data[i + 2]) / 3;
                    sum += g; sq += g * g; n++;
                }
                const mean = sum / n;
                return Math.sqrt(Math.max(0, sq / n - mean * mean));
            }""",
            index,
        )
    )


def shot(page: Page, name: str) -> None:
    png = page.screenshot()
    (artifacts() / "screenshots" / f"ohif-{name}.png").write_bytes(png)
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    assert grey.std() > 5, f"screenshot ohif-{name} looks blank"


def wait_canvas(page: Page, index: int = 0, timeout_s: float = 60) -> float:
    deadline = time.monotonic() + timeout_s
    spread = 0.0
    while time.monotonic() < deadline:
        spread = canvas_std(page, index)
        if spread >= MIN_CANVAS_STD:
            return spread
        page.wait_for_timeout(250)
    return spread


def dismiss_notices(page: Page) -> None:
    """OHIF's "investigational use only" notice and its first-visit tour cover part of the screen."""
    for label in ("Confirm and hide", "Skip all"):
        button = page.get_by_role("button", name=label)
        if button.count() and button.first.is_visible():
            button.first.click()


def view_study(
    page: Page, recorder: Recorder, name: str, *, description: str, started: float
) -> tuple[dict[str, float], dict[str, float]]:
    """From OHIF's study list (open in ``page``): open the study, check that the CT renders, switch to MPR and
    check its three viewports render. Returns the canvases' pixel spreads and when (seconds after
    ``started``) the study list, the CT and MPR were up."""
    row = page.get_by_text(description, exact=True)
    row.wait_for(timeout=60_000)
    times = {"study_list": time.monotonic() - started}
    dismiss_notices(page)
    shot(page, f"{name}-study-list")
    row.click()
    page.get_by_role("button", name="Basic Viewer").click()
    spreads = {"ct": wait_canvas(page, 0)}
    assert spreads["ct"] >= MIN_CANVAS_STD, f"the CT did not render (canvas spread {spreads['ct']:.1f})"
    times["ct"] = time.monotonic() - started
    dismiss_notices(page)
    # The first-visit tour of the viewer starts once the viewer is up; it would catch the next clicks.
    skip = page.get_by_role("button", name="Skip all")
    try:
        skip.wait_for(timeout=10_000)
        skip.click()
    except PlaywrightTimeoutError:
        pass
    shot(page, f"{name}-ct")
    page.locator("[data-cy=Layout]").click()
    page.get_by_text("MPR", exact=True).first.click()
    page.locator("canvas.cornerstone-canvas").nth(2).wait_for(timeout=60_000)
    for index, plane in enumerate(("mpr-1", "mpr-2", "mpr-3")):
        spreads[plane] = wait_canvas(page, index)
    assert min(spreads.values()) >= MIN_CANVAS_STD, f"an MPR viewport did not render: {spreads}"
    times["mpr"] = time.monotonic() - started
    dismiss_notices(page)
    shot(page, f"{name}-mpr")
    return spreads, times


def check_clean(recorder: Recorder, *, root: str) -> None:
    assert recorder.dicomweb, "OHIF made no DICOMweb request"
    assert not recorder.failed, f"failed requests: {recorder.failed}"
    assert not recorder.errors, f"console errors: {recorder.errors}"
    outside = [line for line in recorder.dicomweb if root not in line]
    assert not outside, f"DICOMweb requests outside {root}: {outside[:5]}"


def sign_in(page: Page, base_url: str, next_path: str, username: str) -> None:
    page.goto(f"{base_url}{next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def record(name: str, recorder: Recorder, spreads: dict[str, float], times: dict[str, float], seconds: float) -> None:
    path = artifacts() / "ohif-runs.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[name] = {
        "seconds": round(seconds, 1),
        "seconds_until": {key: round(value, 1) for key, value in times.items()},
        "dicomweb_requests": len(recorder.dicomweb),
        "failed": len(recorder.failed),
        "console_errors": len(recorder.errors),
        "canvas_std": {key: round(value, 1) for key, value in spreads.items()},
    }
    path.write_text(json.dumps(runs, indent=1))


def test_ohif_same_origin_with_the_session(browser: Browser, base_url: str, studies: Studies, settings: Any) -> None:
    """OHIF served by the platform under /ohif/, data source /dicomweb, signed in with the session cookie."""
    settings.OHIF_ENABLED = True
    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    recorder = Recorder()
    recorder.attach(page)
    sign_in(page, base_url, "/ohif/", studies.user.username)
    spreads, times = view_study(page, recorder, "same-origin", description="Synthetic CT CHEST", started=started)
    context.close()
    check_clean(recorder, root=f"{base_url}/dicomweb/")
    # Every study the user may see and no other: the other project's CT never appears.
    assert any(f"/studies/{studies.my_study}/" in line for line in recorder.dicomweb)
    assert not any(studies.other_study in line for line in recorder.dicomweb)
    record("same-origin", recorder, spreads, times, time.monotonic() - started)


class _StaticViewer(SimpleHTTPRequestHandler):
    """The published build as a static site serves it: files from dist/, anything else index.html (a
    client route), and the app-config this test writes."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm", ".js": "text/javascript"}
    config_js = b""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/app-config.js":
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(self.config_js)))
            self.end_headers()
            self.wfile.write(self.config_js)
            return
        if path != "/" and not (Path(self.directory) / path.lstrip("/")).is_file():
            self.path = "/index.html"
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def static_viewer() -> Iterator[tuple[str, type[_StaticViewer]]]:
    handler = type("Handler", (_StaticViewer,), {})
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(django_settings.OHIF_DIST_DIR))
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def token_config(root: str, secret: str) -> bytes:
    """OHIF's config for a DICOMweb root on another origin, authenticated with a personal API token.

    OHIF's DICOMweb data source takes its Authorization header from its userAuthenticationService (OIDC
    fills it in a deployment that uses OIDC): a tiny extension, given inline in the config as OHIF allows,
    sets it to the token before anything is requested."""
    config = ohif.app_config(dicomweb_root=root, router_basename="/", friendly_name="medlabel")
    extension = (
        "window.config.extensions = [{ id: 'medlabel-token-auth', preRegistration({ servicesManager }) {"
        " servicesManager.services.userAuthenticationService.setServiceImplementation({"
        f" getAuthorizationHeader: () => ({{ Authorization: {json.dumps('Bearer ' + secret)} }}) }}); }} }}];\n"
    )
    return (ohif.app_config_js(config) + extension).encode()


def test_ohif_cross_origin_on_a_project_root_with_a_token(
    browser: Browser, base_url: str, studies: Studies, settings: Any, static_viewer: tuple[str, Any]
) -> None:
    """The published build, untouched, on a second loopback origin; the platform lists that origin in
    CORS_ALLOWED_ORIGINS; OHIF's data source is the project's root and authenticates with a token."""
    origin, handler = static_viewer
    settings.CORS_ALLOWED_ORIGINS = [origin]
    _, secret = api_token_create(user=studies.user, name="ohif")
    root = f"{base_url}/dicomweb/projects/{studies.mine.slug}"
    handler.config_js = token_config(root, secret)
    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    recorder = Recorder()
    recorder.attach(page)
    page.goto(f"{origin}/")
    spreads, times = view_study(page, recorder, "cross-origin", description="Synthetic CT CHEST", started=started)
    # Cookies are per host, not per port: the static origin's own cookies (OHIF's i18next) are seen here too.
    assert "sessionid" not in {c["name"] for c in context.cookies(base_url)}, "the token run must not sign in"
    context.close()
    check_clean(recorder, root=f"{root}/")
    assert any(f"/studies/{studies.my_study}/" in line for line in recorder.dicomweb)
    record("cross-origin", recorder, spreads, times, time.monotonic() - started)


def test_open_in_ohif_link_is_off_by_default_and_opens_the_projects_studies_only(
    browser: Browser, base_url: str, studies: Studies, settings: Any
) -> None:
    """The worklist offers "Open in OHIF" only when the server enables OHIF; the viewer it opens lists the
    project's studies, not those of the user's other projects."""
    # A member of both projects: their other study is one the unscoped /dicomweb would list.
    MembershipFactory(project=studies.other, user=studies.user, role="annotator")
    (case,) = cases_create(project=studies.mine, study_uids=[studies.my_study])
    assignment_create(case=case, user=studies.user, role="first_reader", assigned_by=None)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_in(page, base_url, f"/projects/{studies.mine.slug}", studies.user.username)
    page.get_by_test_id(f"case-row-{case.pk}").wait_for(timeout=60_000)
    assert page.get_by_test_id("open-ohif").count() == 0
    assert page.get_by_test_id(f"open-ohif-{case.pk}").count() == 0
    assert page.request.get(f"{base_url}/ohif/projects/{studies.mine.slug}/").status == 404

    settings.OHIF_ENABLED = True
    page.reload()
    link = page.get_by_test_id("open-ohif")
    link.wait_for(timeout=60_000)
    assert link.get_attribute("href") == f"/ohif/projects/{studies.mine.slug}/"
    shot(page, "worklist-with-link")
    assert page.get_by_test_id(f"open-ohif-{case.pk}").get_attribute("href") == (
        f"/ohif/projects/{studies.mine.slug}/viewer?StudyInstanceUIDs={studies.my_study}"
    )
    # With the same session, the unscoped root lists both studies: the project root is what narrows it.
    everything = page.request.get(f"{base_url}/dicomweb/studies").json()
    assert {s["0020000D"]["Value"][0] for s in everything} == {studies.my_study, studies.other_study}

    recorder = Recorder()
    with context.expect_page() as opened:
        link.click()
    viewer = opened.value
    recorder.attach(viewer)
    with viewer.expect_response(lambda r: "/studies?" in r.url and "/dicomweb/" in r.url) as searched:
        viewer.get_by_text("Synthetic CT CHEST", exact=True).wait_for(timeout=60_000)
    listed = searched.value
    assert f"/dicomweb/projects/{studies.mine.slug}/studies?" in listed.url
    assert [s["0020000D"]["Value"][0] for s in listed.json()] == [studies.my_study]
    assert viewer.get_by_text("Synthetic CT CHEST", exact=True).count() == 1
    dismiss_notices(viewer)
    shot(viewer, "open-in-ohif-study-list")
    # The case's own link opens its study straight in OHIF's viewer.
    viewer.goto(base_url + str(page.get_by_test_id(f"open-ohif-{case.pk}").get_attribute("href")))
    spread = wait_canvas(viewer, 0)
    assert spread >= MIN_CANVAS_STD, f"the case's study did not render in OHIF (canvas spread {spread:.1f})"
    context.close()
    check_clean(recorder, root=f"/dicomweb/projects/{studies.mine.slug}/")
