"""AI-assisted segmentation in the MPR views, end to end in Chromium (issue 17 item 1: "stack and MPR views"): a
reader opens MPR 1x3, drags a box in the CORONAL view (sent with depth across that plane) and discards its
proposal, then chooses the positive point and clicks a synthetic nodule in the SAGITTAL view; the click goes
to the server as the voxel (z, y, x) under the pointer (the MPR brush's mapping), the proposal is drawn in all
three views, the reader accepts it and submits. The DATABASE then holds the engine's answer to that one voxel
prompt as the mask (Dice against the known truth above the bar) and the revision's provenance (engine, model
version, one prompt).

Screenshot: $TEST_ARTIFACTS_DIR/ai-assist-mpr.png (the proposal in the three views)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, Request

from annotation.models import Annotation
from annotation.services import load_mask
from inference.interactive.base import Prompt, PromptRequest
from inference.interactive.modelfree import RegionGrowingEngine
from inference.interactive.simulate import dice, next_click
from tests.browser.test_ai_assist import LesionCase, answer_the_rest_and_submit
from tests.browser.test_ai_assist import lesion_case as lesion_case  # (fixture)
from tests.browser.test_reading_flow import SLUG, Session, artifacts, shot
from tests.browser.test_reading_flow import base_url as base_url  # (fixture)
from tests.browser.test_reading_flow import browser as browser  # (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

# One positive click on the solid nodule of the hard study (the model-free engine, no worker): the stored mask's
# Dice against the truth must reach this (the engine gives 0.98 there; see the assertion's message).
DICE_BAR = 0.90


def test_a_positive_click_in_the_sagittal_view_is_accepted_and_submitted(
    browser: Browser,
    base_url: str,
    lesion_case: Callable[[str], LesionCase],
) -> None:
    setup = lesion_case("solid")
    case, study, truth, spacing = setup.case, setup.study, setup.truth, setup.spacing
    click = next_click(truth, None, spacing)
    assert click is not None and click.positive
    target = list(click.points[0])  # (z, y, x) at the centre of the nodule

    session = Session(browser, base_url, "annotator")
    page = session.page
    sent: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith(f"/cases/{case.pk}/interactive/"):
            sent.append(json.loads(request.post_data or "{}"))

    page.on("request", record)
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()
    page.get_by_role("radio", name="MPR 1×3").click()
    page.wait_for_function("() => window.__medlabel.mprReadyMs > 0", timeout=60_000)
    page.evaluate("v => window.__medlabel.mpr.current.jumpTo(v)", target)
    page.wait_for_timeout(300)

    panel = page.get_by_test_id("ai-assist")
    assert "in any plane" in panel.inner_text()

    # A box dragged in the CORONAL view (y fixed) around the nodule is sent with depth across the plane (as wide
    # in mm as its larger side), then discarded: the prompt session starts over.
    zs, _, xs = np.nonzero(truth)
    a = [int(zs.min()) - 1, target[1], int(xs.min()) - 1]
    b = [int(zs.max()) + 1, target[1], int(xs.max()) + 1]
    panel.get_by_role("button", name="Box", exact=True).click()
    start = page.evaluate("v => window.__medlabel.mpr.current.voxelToPage('mpr-coronal', v)", a)
    end = page.evaluate("v => window.__medlabel.mpr.current.voxelToPage('mpr-coronal', v)", b)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    page.mouse.move(*end)
    page.mouse.up()
    page.get_by_test_id("ai-proposal").wait_for(timeout=30_000)
    side_mm = max((b[0] - a[0]) * spacing[0], (b[2] - a[2]) * spacing[2])
    half = math.ceil(side_mm / 2 / spacing[1])
    box = {"kind": "box", "points": [[a[0], target[1] - half, a[2]], [b[0], target[1] + half, b[2]]], "positive": True}
    assert sent[-1]["prompts"] == [box], sent[-1]["prompts"]
    shot(page, "ai-assist-mpr-box")
    panel.get_by_role("button", name="Discard").click()
    page.get_by_test_id("ai-proposal").wait_for(state="detached")
    assert page.get_by_test_id("ai-prompts").inner_text() == "Prompts: 0"
    sent.clear()

    panel.get_by_role("button", name="Positive point").click()
    x, y = page.evaluate("v => window.__medlabel.mpr.current.voxelToPage('mpr-sagittal', v)", target)
    page.mouse.click(x, y)
    page.get_by_test_id("ai-proposal").wait_for(timeout=30_000)
    assert "region-growing" in page.get_by_test_id("ai-proposal").inner_text()
    # The sagittal click is the voxel under the pointer, sent as the stack would send it.
    assert [p["prompts"] for p in sent] == [[{"kind": "point", "points": [target], "positive": True}]], sent

    # The proposal is drawn in every view (green over the image, on the planes through the nodule).
    green = page.evaluate(
        """() => ['mpr-axial', 'mpr-sagittal', 'mpr-coronal'].map((id) => {
            const cell = document.querySelector(`[data-testid="${id}"]`).parentElement;
            const canvas = cell.querySelector(':scope > canvas');
            const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
            let n = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i + 1] > 150 && data[i] < 60 && data[i + 3] > 0) n++;
            return n;
        })"""
    )
    assert all(n > 20 for n in green), green
    (artifacts() / "ai-assist-mpr.png").write_bytes(page.screenshot(full_page=True))
    shot(page, "ai-assist-mpr")

    panel.get_by_role("button", name="Accept proposal").click()
    page.get_by_test_id("ai-accepted").wait_for()
    assert page.get_by_test_id("mask-count").inner_text() != "0 voxels painted"

    # The rest of the reading in the stack view, as any reader answers it, then submit.
    page.get_by_role("radio", name="Stack").click()
    page.get_by_test_id("overlay").wait_for()
    page.wait_for_timeout(1000)
    answer_the_rest_and_submit(page)
    session.close()

    reading = Annotation.objects.select_related("current_revision").get(case=case, reader__username="annotator")
    assert reading.status == "submitted"
    revision = reading.current_revision
    assert revision is not None and revision.is_submission
    (item,) = [i for i in revision.items if i["label"] == "nodule_mask"]
    assert item["assisted"] == [{"segment": 1, "engine": "region-growing", "model_version": None, "prompts": 1}]
    stored = load_mask(revision.masks.get()) == 1
    expected = (
        RegionGrowingEngine()
        .propose(
            PromptRequest(
                volume=study.hu.astype(np.float32),
                spacing=spacing,
                prompts=[Prompt(kind="point", points=(tuple(target),), positive=True)],  # type: ignore[arg-type]
            )
        )
        .mask
    )
    assert np.array_equal(stored, expected), "the stored mask is the engine's answer to the sagittal click"
    score = dice(stored, truth)
    assert score >= DICE_BAR, f"Dice {score:.3f} against the truth"
