"""The sphere brush (issue 15 item 5), in Chromium against a live server: one dab in the axial stack paints a
ball across slices whose radius is the brush size in millimetres (slices 1.5 mm apart, pixels 0.8 mm: the
ball spans fewer slices than pixels); it is one step of the history (undo removes it, redo brings it back);
a second dab in the SAGITTAL MPR view adds a second ball. Each state is checked in the database against the
exact set of voxels (z, y, x) whose centres lie within the radius.

Screenshot: $TEST_ARTIFACTS_DIR/screenshots/ws-12-sphere-brush.png."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import test_reading_flow as flow
from tests.browser.test_reader_measurements import SPACING, nodule_case, to_page
from tests.browser.test_reader_mpr import SLICE_SPACING
from tests.browser.test_reader_segtools import saved_after
from tests.browser.test_reading_flow import SLUG, Session, shot

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)

BRUSH = 4  # pixels of the axial image: a radius of 3.2 mm


def ball(shape: tuple[int, int, int], centre: list[float], radius_mm: float) -> set[tuple[int, int, int]]:
    """Every voxel whose centre is within the radius, in millimetres (tested one by one)."""
    z, y, x = np.indices(shape)
    d2 = ((z - centre[0]) * SLICE_SPACING) ** 2 + ((y - centre[1]) * SPACING) ** 2 + ((x - centre[2]) * SPACING) ** 2
    return {(int(a), int(b), int(c)) for a, b, c in np.argwhere(d2 <= radius_mm**2)}


def voxels(mask: np.ndarray | None) -> set[tuple[int, int, int]]:
    return set() if mask is None else {(int(a), int(b), int(c)) for a, b, c in np.argwhere(mask)}


def last_sphere(page: Page, target: list[float]) -> tuple[list[float], float]:
    sphere = page.evaluate("window.__medlabel.lastSphere")
    centre = [float(c) for c in sphere["centre"]]
    assert all(abs(c - t) < 0.5 for c, t in zip(centre, target, strict=True)), (centre, target)
    return centre, float(sphere["radiusMm"])


def test_sphere_brush_paints_a_ball_in_mm_in_the_stack_and_in_mpr(browser: Browser, base_url: str) -> None:
    case, study = nodule_case()
    session = Session(browser, base_url, "annotator")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()

    page.keyboard.press("r")
    page.get_by_label("Brush size").fill(str(BRUSH))
    page.get_by_label("Sphere").check()

    # A dab on slice 12 at pixel (y 40, x 64) of the stack.
    first = [12.0, 40.0, 64.0]
    page.evaluate("i => window.__medlabel.viewer.current.setSlice(i)", 12)
    page.wait_for_function("i => window.__medlabel.slice === i", arg=12)
    page.wait_for_timeout(200)
    page.mouse.move(*to_page(page, first[2] + 0.5, first[1] + 0.5))
    page.mouse.down()
    page.mouse.up()
    number, mask = saved_after(page, case.pk, 0)
    centre, radius = last_sphere(page, first)
    assert radius == pytest.approx(BRUSH * SPACING)
    expected = ball(study.shape, centre, radius)
    assert mask is not None and mask.shape == study.shape
    assert voxels(mask) == expected
    # Round in millimetres, not in voxels: 3.2 mm is about 2 slices of 1.5 mm but 4 pixels of 0.8 mm each side.
    assert len({z for z, _, _ in expected}) in (4, 5)
    assert len({x for _, _, x in expected}) in (8, 9)
    assert set(mask[mask > 0].tolist()) == {1}

    # One step of the history, through autosave.
    page.keyboard.press("Control+z")
    number, undone = saved_after(page, case.pk, number)
    assert voxels(undone) == set()
    page.keyboard.press("Control+y")
    number, redone = saved_after(page, case.pk, number)
    assert voxels(redone) == expected

    # A second dab in the sagittal view, centred on voxel (6, 80, 30).
    page.get_by_role("radio", name="MPR 1×3").click()
    page.wait_for_function("() => window.__medlabel.mprReadyMs > 0", timeout=60_000)
    second = [6.0, 80.0, 30.0]
    page.evaluate("v => window.__medlabel.mpr.current.jumpTo(v)", second)
    page.wait_for_timeout(300)
    x, y = page.evaluate("v => window.__medlabel.mpr.current.voxelToPage('mpr-sagittal', v)", second)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()
    number, both = saved_after(page, case.pk, number)
    centre2, _ = last_sphere(page, second)
    assert voxels(both) == expected | ball(study.shape, centre2, radius)
    shot(page, "ws-12-sphere-brush")
    session.close()
