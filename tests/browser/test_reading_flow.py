"""The browser app end to end, in Debian's Chromium against a live server with the demo data:

- an annotator signs in, opens the worklist, takes the next case, draws a box and a brush mask, answers
  the grade and the other required labels, and submits; the reading is stored with the geometry drawn;
- a second reader (the reviewer, blind double reading) reads the same case blind, in Chinese, and
  disagrees: the case becomes disputed;
- time to first image of a 300-slice CT series and the scrolling frame rate through the loaded stack are
  measured and written to $TEST_ARTIFACTS_DIR/browser-timings.json.

Screenshots of each screen go to $TEST_ARTIFACTS_DIR/screenshots/ and must not be blank."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Response, sync_playwright

from annotation.models import Annotation, Case, Project
from annotation.services import annotation_save_machine, assignment_create
from imaging.models import Instance
from imaging.synthetic import generate_ct_study
from review.models import CaseEvent, ReviewPolicy
from review.services import reading_submit
from tests.browser.synthetic_cases import ingest_as_case

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = os.environ.get("MEDLABEL_DEMO_PASSWORD", "medlabel-demo")
SLUG = "demo-chest-ct"
SAVED = "[data-testid=save-state][data-state=saved]"

pytestmark = pytest.mark.django_db(transaction=True)


def artifacts() -> Path:
    root = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "test-artifacts")
    (root / "screenshots").mkdir(parents=True, exist_ok=True)
    return root


def grey_std(png: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64).std())


def shot(page: Page, name: str, *, min_std: float = 8.0) -> None:
    """Save a full-page screenshot and check it is not blank."""
    png = page.screenshot(full_page=True)
    (artifacts() / "screenshots" / f"{name}.png").write_bytes(png)
    assert grey_std(png) >= min_std, f"screenshot {name} looks blank"


def viewport_std(page: Page) -> float:
    """Pixel spread inside the image viewport: a blank or black canvas gives ~0."""
    return grey_std(page.locator("[data-testid=viewport]").screenshot())


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    home = tempfile.mkdtemp(prefix="medlabel-chromium-")
    monkeypatch.setenv("XDG_CONFIG_HOME", home)
    monkeypatch.setenv("XDG_CACHE_HOME", home)
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still
    # sequential and synchronous, which Django's async guard cannot tell.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            yield instance
            instance.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def base_url(live_server: Any) -> str:
    call_command("seed_demo", studies=2, stdout=io.StringIO())
    return str(live_server.url).replace("://localhost:", "://127.0.0.1:")


class Session:
    def __init__(self, browser: Browser, base: str, username: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", self._page_error)
        self.context.on("response", self._response)
        self.base = base
        page = self.page
        page.goto(f"{base}/")
        assert page.get_by_role("heading", name="Sign in").is_visible() or "Sign in" in page.content()
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("username").wait_for()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} {message.location.get('url')}")

    def _page_error(self, error: Error) -> None:
        self.errors.append(str(error))

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def wait_first_image(self) -> float:
        self.page.wait_for_function("() => window.__medlabel && window.__medlabel.firstImageMs > 0", timeout=60_000)
        return float(self.page.evaluate("window.__medlabel.firstImageMs"))

    def close(self, *, expected_statuses: tuple[int, ...] = ()) -> None:
        """No console errors, except Chromium's own log line for an HTTP status the test provoked."""
        errors = [e for e in self.errors if not any(f"status of {code} " in e for code in expected_statuses)]
        assert errors == [], f"console errors: {errors}; failed requests: {self.failed}"
        self.context.close()


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def test_annotator_reads_and_second_reader_disagrees_blind(browser: Browser, base_url: str) -> None:
    project = Project.objects.get(slug=SLUG)

    # --- Annotator: projects, worklist, next case, box + brush + grade, submit ---------------------------
    annotator = Session(browser, base_url, "annotator")
    page = annotator.page
    page.get_by_role("heading", name="Your projects").wait_for()
    card = page.get_by_test_id(f"project-{SLUG}")
    assert "Annotator" in card.inner_text()
    assert card.get_by_role("link", name="Dashboard").count() == 0  # managers only
    shot(page, "01-projects")
    card.get_by_role("link", name="Open worklist").click()
    page.get_by_role("button", name="Next case").wait_for()
    shot(page, "02-worklist")
    page.get_by_role("button", name="Next case").click()
    page.wait_for_url("**/cases/*/read?*")
    case_id = int(page.url.split("/cases/")[1].split("/")[0])
    annotator.wait_first_image()
    page.wait_for_timeout(300)
    assert viewport_std(page) > 10, "the viewport shows no image"

    page.get_by_label("Nodule present").select_option("yes")
    page.get_by_role("button", name="Box (B)").click()
    box = page.get_by_test_id("overlay").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    drag(page, (cx - 40, cy - 30), (cx + 40, cy + 30))
    lesions = page.get_by_test_id("lesions")
    assert lesions.locator("li").count() == 1
    page.get_by_label("Nodule type").select_option("solid")
    page.get_by_label("Long-axis diameter").fill("8.5")
    page.get_by_label("4 · Moderately suspicious").check()

    page.keyboard.press("r")  # brush shortcut
    assert page.get_by_role("button", name="Brush (R)").get_attribute("aria-pressed") == "true"
    drag(page, (cx - 20, cy), (cx + 20, cy + 10))
    assert page.get_by_test_id("mask-count").inner_text() != "0 voxels painted"
    page.locator(SAVED).wait_for(timeout=20_000)  # autosave
    shot(page, "03-reader-annotator")
    page.get_by_role("button", name="Submit reading").click()
    page.get_by_text("Submitted. Thank you.").wait_for(timeout=20_000)
    shot(page, "04-reader-submitted")
    annotator.close()

    reading = Annotation.objects.select_related("current_revision").get(
        case_id=case_id, reader__username="annotator", role="first_reader"
    )
    assert reading.status == "submitted"
    items = reading.current_revision.items  # type: ignore[union-attr]
    by_label = {item["label"]: item for item in items}
    assert by_label["nodule_present"]["value"] == "yes"
    assert by_label["malignancy"]["value"] == 4
    assert by_label["nodule_type"]["value"] == "solid"
    assert by_label["diameter"]["value"] == 8.5
    geometry = by_label["nodule_box"]["geometry"]
    # Drawn around the viewport centre, where the fitted 128x128 image has its centre (64, 64).
    assert abs(geometry["x"] + geometry["width"] / 2 - 64) < 3, geometry
    assert abs(geometry["y"] + geometry["height"] / 2 - 64) < 3, geometry
    assert 5 < geometry["width"] < 128 and 5 < geometry["height"] < 128
    assert by_label["nodule_mask"]["mask"]["segments_present"] == [1]
    assert by_label["nodule_mask"]["mask"]["shape"][1:] == [128, 128]

    # --- Reviewer: blind second reading in Chinese, disagrees -------------------------------------------
    reviewer = Session(browser, base_url, "reviewer")
    page = reviewer.page
    page.get_by_label("Language").select_option("zh-hans")
    page.get_by_role("heading", name="我的项目").wait_for()
    page.get_by_role("link", name="打开工作列表").click()
    page.get_by_role("button", name="下一个病例").click()
    page.wait_for_url(f"**/cases/{case_id}/read?*")
    reviewer.wait_first_image()
    assert page.get_by_role("group", name="审核").count() == 0  # blind: no verification of the first reading
    assert page.get_by_test_id("lesions").locator("li").count() == 0  # the first reader's box is not shown
    page.get_by_label("是否存在结节").select_option("no")
    page.wait_for_timeout(300)
    shot(page, "05-reader-second-blind-zh")
    page.get_by_role("button", name="提交阅片").click()
    page.get_by_text("已提交，谢谢。").wait_for(timeout=20_000)
    reviewer.close()

    # The reader is answered first; the server then checks the agreement (review.agreement_checks): disagreement makes
    # the case disputed, and the workflow seats the panel at once.
    deadline = time.monotonic() + 20
    while Case.objects.get(pk=case_id).status == "checking_agreement" and time.monotonic() < deadline:
        time.sleep(0.2)
    case = Case.objects.get(pk=case_id)
    assert case.status in ("disputed", "in_panel")
    assert CaseEvent.objects.filter(case=case, to_status="disputed").exists()
    assert case.project_id == project.pk


def test_validation_messages_and_stale_revision_are_shown(browser: Browser, base_url: str) -> None:
    annotator = Session(browser, base_url, "annotator2")
    page = annotator.page
    page.goto(f"{base_url}/projects/{SLUG}")
    page.get_by_role("button", name="Next case").click()
    page.wait_for_url("**/cases/*/read?*")
    case_id = int(page.url.split("/cases/")[1].split("/")[0])
    annotator.wait_first_image()
    # Submit without the required answer: what is missing is listed (the server would refuse the same) and
    # nothing is submitted.
    page.get_by_role("button", name="Submit reading").click()
    alert = page.get_by_test_id("pending")
    alert.wait_for()
    assert "Nodule present: required" in alert.inner_text()
    assert not Annotation.objects.filter(case_id=case_id, status="submitted").exists()
    # A draft saved elsewhere (another tab) makes this page's next save a 409: shown, not overwritten.
    page.get_by_label("Nodule present").select_option("no")
    page.locator(SAVED).wait_for(timeout=20_000)
    other = annotator.context.new_page()
    other.goto(page.url)
    other.get_by_label("Nodule present").wait_for(timeout=90_000)
    other.get_by_label("Nodule present").select_option("yes")
    other.locator(SAVED).wait_for(timeout=20_000)
    page.get_by_label("Comment").fill("from the first tab")
    conflict = page.get_by_test_id("conflict")
    conflict.wait_for(timeout=20_000)
    assert "changed elsewhere" in conflict.inner_text()
    shot(page, "06-reader-conflict")
    annotation = Annotation.objects.select_related("current_revision").get(
        case_id=case_id, reader__username="annotator2"
    )
    values = {item["label"]: item.get("value") for item in annotation.current_revision.items}  # type: ignore[union-attr]
    assert values == {"nodule_present": "yes"}  # the other tab's save stands; the stale one was refused
    page.get_by_role("button", name="Reload").click()
    page.get_by_label("Nodule present").wait_for(timeout=90_000)
    assert page.get_by_label("Nodule present").input_value() == "yes"
    other.close()
    annotator.close(expected_statuses=(400, 409))


def _ingest_big_series(project: Project, slices: int) -> Case:
    study = generate_ct_study(seed=4242, rows=256, columns=256, slices=slices, n_lesions=2)
    return ingest_as_case(project, study, name="big")


def test_time_to_first_image_and_scrolling_of_a_300_slice_ct(browser: Browser, base_url: str) -> None:
    project = Project.objects.get(slug=SLUG)
    case = _ingest_big_series(project, 300)
    reader = User.objects.get(username="annotator")
    assignment_create(case=case, user=reader, role="first_reader", assigned_by=None)

    session = Session(browser, base_url, "annotator")
    page = session.page
    runs = []
    for _ in range(2):  # the second run has a warm server (imports, connection, file cache)
        page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
        first_image_ms = session.wait_first_image()
        runs.append(
            {
                "first_image_ms": round(first_image_ms, 1),
                "metadata_ms": round(float(page.evaluate("window.__medlabel.metadataMs")), 1),
                # From the start of the page load (sign-in cookie already set): app boot + the above.
                "since_navigation_ms": round(float(page.evaluate("window.__medlabel.firstImageAtMs")), 1),
            }
        )
    assert page.evaluate("window.__medlabel.slices") == 300
    assert viewport_std(page) > 10
    preload_ms = float(page.evaluate("window.__medlabel.viewer.current.preloadAll()"))
    scroll = page.evaluate("window.__medlabel.viewer.current.scrollBenchmark()")
    shot(page, "07-reader-300-slices")
    session.close()

    result = {
        "series": {"slices": 300, "rows": 256, "columns": 256, "source": "local store, loopback live server"},
        "time_to_first_image_ms": runs[-1]["first_image_ms"],
        "time_to_first_image_cold_ms": runs[0]["first_image_ms"],
        "runs": runs,
        "goal_ms": 1500,
        "preload_whole_stack_ms": round(preload_ms, 1),
        "scroll": {k: round(float(v), 2) for k, v in scroll.items()},
    }
    (artifacts() / "browser-timings.json").write_text(json.dumps(result, indent=2))
    assert scroll["frames"] >= 299
    assert runs[-1]["first_image_ms"] < 5000, result  # the goal is 1.5 s; the bound allows a busy machine
    assert scroll["fps"] > 5, result


def test_ai_proposal_is_an_editable_layer_the_reader_accepts(browser: Browser, base_url: str) -> None:
    project = Project.objects.get(slug=SLUG)
    case = Case.objects.filter(project=project).order_by("pk").first()
    assert case is not None
    instances = list(Instance.objects.filter(series__study=case.study).order_by("instance_number"))
    middle = instances[len(instances) // 2]  # the slice the reader opens on
    proposal = {"label": "nodule_box", "id": "ai-1", "sop_instance_uid": middle.sop_instance_uid, "frame": 1}
    proposal["geometry"] = {"x": 20, "y": 30, "width": 12, "height": 10}
    annotation_save_machine(
        case=case,
        model_version="unet-test-1",
        values={"items": [{"label": "nodule_present", "value": "yes"}, proposal]},
    )
    assignment_create(case=case, user=User.objects.get(username="annotator"), role="first_reader", assigned_by=None)

    session = Session(browser, base_url, "annotator")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()
    ai = page.get_by_role("group", name="AI proposal")
    ai.wait_for()
    assert page.get_by_test_id("lesions").locator("li").count() == 0  # shown as a layer, not yet in the reading
    shot(page, "08-reader-ai-layer")
    ai.get_by_role("button", name="Accept AI proposal").click()
    lesions = page.get_by_test_id("lesions").locator("li")
    assert lesions.count() == 1 and "(AI)" in lesions.first.inner_text()
    assert page.get_by_label("Nodule present").input_value() == "yes"
    lesions.first.get_by_role("button").first.click()  # select it: its attributes open for editing
    page.get_by_label("Nodule type").select_option("calcified")
    page.locator(SAVED).wait_for(timeout=20_000)
    session.close()

    reading = Annotation.objects.select_related("current_revision").get(case=case, reader__username="annotator")
    items = {item["label"]: item for item in reading.current_revision.items}  # type: ignore[union-attr]
    assert items["nodule_box"]["geometry"] == {"x": 20, "y": 30, "width": 12, "height": 10}
    assert items["nodule_box"]["sop_instance_uid"] == middle.sop_instance_uid
    assert items["nodule_type"] == {"label": "nodule_type", "region": "ai-1", "value": "calcified"}
    assert reading.status == "draft"


def test_verification_mode_shows_the_first_reading_and_rejects_with_a_reason(browser: Browser, base_url: str) -> None:
    project = Project.objects.get(slug=SLUG)
    ReviewPolicy.objects.update_or_create(project=project, defaults={"mode": ReviewPolicy.Mode.VERIFICATION})
    case = Case.objects.filter(project=project).order_by("pk").first()
    assert case is not None
    annotator = User.objects.get(username="annotator")
    middle = list(Instance.objects.filter(series__study=case.study).order_by("instance_number"))[16]
    box = {"label": "nodule_box", "id": "b1", "sop_instance_uid": middle.sop_instance_uid, "frame": 1}
    box["geometry"] = {"x": 50, "y": 50, "width": 20, "height": 16}
    values = {
        "items": [
            {"label": "nodule_present", "value": "yes"},
            box,
            {"label": "nodule_type", "region": "b1", "value": "solid"},
            {"label": "diameter", "region": "b1", "value": 9},
        ]
    }
    assignment_create(case=case, user=annotator, role="first_reader", assigned_by=None)
    reading_submit(case=case, reader=annotator, role="first_reader", base_revision=0, values=values)
    case.refresh_from_db()
    assert case.status == "awaiting_cross_verification"
    assignment_create(case=case, user=User.objects.get(username="reviewer"), role="second_reader", assigned_by=None)

    session = Session(browser, base_url, "reviewer")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=second_reader&project={SLUG}")
    session.wait_first_image()
    verification = page.get_by_role("group", name="Verification")
    verification.wait_for()
    assert verification.get_by_label("Show first reading").is_checked()
    shot(page, "09-reader-verification-overlay")
    verification.get_by_role("button", name="Start my correction from the first reading").click()
    assert page.get_by_test_id("lesions").locator("li").count() == 1
    assert page.get_by_label("Nodule present").input_value() == "yes"
    verification.get_by_role("button", name="Reject").click()
    assert "Give a reason to reject." in page.get_by_test_id("validation").inner_text()
    assert Case.objects.get(pk=case.pk).status == "awaiting_cross_verification"
    verification.get_by_label("Reason").fill("The box misses the nodule's lower half")
    verification.get_by_role("button", name="Reject").click()
    page.get_by_text("Decision recorded").wait_for(timeout=20_000)
    session.close()

    event = CaseEvent.objects.filter(case=case, to_status="disputed").get()
    assert event.reason == "The box misses the nodule's lower half"
