"""AI-assisted segmentation in the reader, end to end in Chromium (issue 17): a reader clicks in a nodule that
touches the chest wall, accepts the proposal, refines it with a negative click on the leak, accepts again and
submits; the stored mask is the engine's answer to those two prompts and the revision records its provenance."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page

from annotation.models import Annotation, Case, Project
from annotation.services import assignment_create, load_mask
from imaging.synthetic import SyntheticStudy, generate_ct_study
from inference.interactive.base import Prompt, PromptRequest
from inference.interactive.modelfree import RegionGrowingEngine
from inference.interactive.simulate import dice, next_click
from tests.browser.synthetic_cases import ingest_as_case
from tests.browser.test_reading_flow import SAVED, SLUG, Session, artifacts, base_url, browser, drag, shot  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@functools.cache
def hard_study() -> SyntheticStudy:
    return generate_ct_study(seed=100, n_lesions=4, difficulty="hard")


def _ingest(project: Project) -> Case:
    return ingest_as_case(project, hard_study(), name="hard", priority=50.0)


@dataclass(frozen=True)
class LesionCase:
    """The hard study as a case assigned to the annotator, one of its lesions and that lesion's truth mask."""

    case: Case
    study: SyntheticStudy
    truth: np.ndarray
    spacing: tuple[float, float, float]  # (z, y, x) in mm


@pytest.fixture
def lesion_case(settings: Any) -> Callable[[str], LesionCase]:
    """The setup the stack and the MPR AI-assistance tests share: the hard study ingested as one case of the
    reading project, assigned to the annotator as first reader, and the truth of its lesion of the given kind.
    No interactive worker runs here, so the model-free engine answers (after a short wait)."""
    settings.INTERACTIVE_TIMEOUT_SECONDS = 0.3

    def make(kind: str) -> LesionCase:
        case = _ingest(Project.objects.get(slug=SLUG))
        assignment_create(case=case, user=User.objects.get(username="annotator"), role="first_reader", assigned_by=None)
        study = hard_study()
        lesion = next(lesion for lesion in study.lesions if lesion.kind == kind)
        spacing = (study.slice_spacing, *study.pixel_spacing)
        return LesionCase(case=case, study=study, truth=study.mask == lesion.index, spacing=spacing)

    return make


def _click_voxel(page: Page, voxel: tuple[int, int, int]) -> float:
    """Show the voxel's slice and click its pixel centre (Cornerstone3D maps the pixel index to the canvas); the
    time.perf_counter() of the click (for tests/benchmarks/bench_ai_prompt.py)."""
    z, y, x = voxel
    page.evaluate(f"window.__medlabel.viewer.current.setSlice({z})")
    page.wait_for_function(f"() => window.__medlabel.viewer.current.getSlice() === {z}")
    page.wait_for_timeout(200)
    cx, cy = page.evaluate(
        """([x, y]) => {
            const vp = window.__medlabel.viewer.current.viewport();
            const world = vp.getImageData().imageData.indexToWorld([x, y, 0]);
            return vp.worldToCanvas(world);
        }""",
        [x, y],
    )
    box = page.get_by_test_id("overlay").bounding_box()
    assert box is not None
    clicked = time.perf_counter()
    page.mouse.click(box["x"] + cx, box["y"] + cy)
    return clicked


def answer_the_rest_and_submit(page: Page) -> None:
    """The rest of the chest CT reading, as any reader answers it (a box, its type, diameter and grade), then
    submit: what an AI-assisted reading needs besides its mask."""
    page.get_by_label("Nodule present").select_option("yes")
    page.get_by_role("button", name="Box (B)").click()
    canvas = page.get_by_test_id("overlay").bounding_box()
    assert canvas is not None
    cx, cy = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
    drag(page, (cx - 40, cy - 30), (cx + 40, cy + 30))
    page.get_by_label("Nodule type").select_option("solid")
    page.get_by_label("Long-axis diameter").fill("12")
    page.get_by_label("4 · Moderately suspicious").check()
    page.locator(SAVED).wait_for(timeout=20_000)
    page.get_by_role("button", name="Submit reading").click()
    page.get_by_text("Submitted. Thank you.").wait_for(timeout=20_000)


def test_a_reader_clicks_accepts_refines_with_a_negative_click_and_submits(
    browser: Browser,  # noqa: F811
    base_url: str,  # noqa: F811
    lesion_case: Callable[[str], LesionCase],
) -> None:
    setup = lesion_case("juxtapleural")
    case, study, truth, spacing = setup.case, setup.study, setup.truth, setup.spacing
    volume = study.hu.astype(np.float32)
    engine = RegionGrowingEngine()
    positive = next_click(truth, None, spacing)
    assert positive is not None and positive.positive
    first = engine.propose(PromptRequest(volume=volume, spacing=spacing, prompts=[positive])).mask
    negative = next_click(truth, first, spacing)
    assert negative is not None and not negative.positive, "the first proposal leaks into the chest wall"

    session = Session(browser, base_url, "annotator")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()
    panel = page.get_by_test_id("ai-assist")
    panel.get_by_role("button", name="Positive point").click()
    _click_voxel(page, positive.points[0])
    page.get_by_test_id("ai-proposal").wait_for(timeout=30_000)
    assert "region-growing" in page.get_by_test_id("ai-proposal").inner_text()
    assert "model-free engine answered instead" in page.get_by_test_id("ai-fallback").inner_text()
    shot(page, "ai-assist-proposal")
    panel.get_by_role("button", name="Accept proposal").click()
    page.get_by_test_id("ai-accepted").wait_for()
    assert page.get_by_test_id("mask-count").inner_text() != "0 voxels painted"

    panel.get_by_role("button", name="Negative point").click()
    _click_voxel(page, negative.points[0])
    page.get_by_test_id("ai-proposal").wait_for(timeout=30_000)
    assert page.get_by_test_id("ai-prompts").inner_text() == "Prompts: 2"
    shot(page, "ai-assist-refined")
    panel.get_by_role("button", name="Accept proposal").click()
    page.get_by_test_id("ai-accepted").wait_for()
    (artifacts() / "ai-assist.png").write_bytes(page.screenshot(full_page=True))

    # The rest of the reading, as any reader answers it, then submit.
    answer_the_rest_and_submit(page)
    session.close()

    reading = Annotation.objects.select_related("current_revision").get(case=case, reader__username="annotator")
    assert reading.status == "submitted"
    revision = reading.current_revision
    assert revision is not None and revision.is_submission
    (item,) = [i for i in revision.items if i["label"] == "nodule_mask"]
    assert item["assisted"] == [{"segment": 1, "engine": "region-growing", "model_version": None, "prompts": 2}]
    stored = load_mask(revision.masks.get()) == 1
    refined = engine.propose(
        PromptRequest(volume=volume, spacing=spacing, prompts=[positive, Prompt(**negative.__dict__)], previous=first)
    ).mask
    assert np.array_equal(stored, refined), "the stored mask is the engine's answer to the two prompts"
    assert not stored[negative.points[0]]
    assert dice(stored, truth) > dice(first, truth)
