"""3D segmentation tools in the reader (issue 15 item 5), in Chromium against a live server, on a synthetic
nodule of known voxels: the threshold brush (lung-nodule HU preset) paints exactly the nodule's voxels of a
slice although the brush is larger than the nodule, and interpolation between two painted slices fills the
slices between them close to the true nodule (one undo step); each state is checked in the database."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import Browser, Page

from annotation.models import Annotation
from annotation.services import load_mask
from tests.browser import test_reading_flow as flow
from tests.browser.test_reader_measurements import nodule_case, to_page
from tests.browser.test_reading_flow import SLUG, Session, shot

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)


def stored(case_id: int) -> tuple[int, np.ndarray | None]:
    annotation = Annotation.objects.select_related("current_revision").get(
        case_id=case_id, reader__username="annotator"
    )
    revision = annotation.current_revision
    assert revision is not None
    masks = list(revision.masks.all())
    return revision.number, (load_mask(masks[0]) if masks else None)


def saved_after(page: Page, case_id: int, number: int) -> tuple[int, np.ndarray | None]:
    page.wait_for_function(
        "n => { const s = document.querySelector('[data-testid=save-state]');"
        " return s && s.dataset.state === 'saved' && s.textContent.includes('revision ' + n); }",
        arg=number + 1,
        timeout=20_000,
    )
    return stored(case_id)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def test_threshold_brush_and_interpolation_on_a_synthetic_nodule(browser: Browser, base_url: str) -> None:
    case, study = nodule_case()
    (lesion,) = study.lesions
    session = Session(browser, base_url, "annotator")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()
    sops = page.evaluate("window.__medlabel.sopInstanceUids")
    order = [sops.index(uid) for uid in study.sop_instance_uids()]  # generated z -> the stack's slice index
    truth = np.zeros(study.shape, dtype=bool)
    truth[order] = study.mask > 0

    page.keyboard.press("r")
    page.get_by_label("Brush size").fill("12")  # larger than the nodule (radius up to 10 pixels)
    page.get_by_label("Threshold", exact=True).check()
    assert page.get_by_label("Threshold preset").input_value() == "lungNodule"
    z_centre = round(lesion.center_voxel[0])
    painted_slices = [order[z_centre - 2], order[z_centre + 2]]
    number = 0
    cy, cx = lesion.center_voxel[1] + 0.5, lesion.center_voxel[2] + 0.5
    for index in painted_slices:
        page.evaluate("i => window.__medlabel.viewer.current.setSlice(i)", index)
        page.wait_for_function("i => window.__medlabel.slice === i", arg=index)
        page.wait_for_timeout(200)
        page.mouse.move(*to_page(page, cx, cy))
        page.mouse.down()
        page.mouse.up()
        number, mask = saved_after(page, case.pk, number)
        assert mask is not None
        # Exactly the nodule's voxels of that slice: the lung around it is outside the HU range.
        assert np.array_equal(mask[index] > 0, truth[index]), index
    assert mask is not None
    assert set(np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))) == set(painted_slices)
    shot(page, "ws-09-threshold-brush")

    page.get_by_role("button", name="Interpolate between slices").click()
    number, interpolated = saved_after(page, case.pk, number)
    assert interpolated is not None
    low, high = sorted(painted_slices)
    filled = set(np.flatnonzero(interpolated.reshape(interpolated.shape[0], -1).any(axis=1)))
    assert filled == set(range(low, high + 1)), filled
    slab = slice(low, high + 1)
    score = dice(interpolated[slab] > 0, truth[slab])
    assert score >= 0.85, score
    print(f"interpolation Dice against the true nodule over slices {low}..{high}: {score:.3f}")

    # The interpolation is one step of the history: undone, the two painted slices remain.
    page.keyboard.press("Control+z")
    _, undone = saved_after(page, case.pk, number)
    assert undone is not None and np.array_equal(undone, mask)
    number = stored(case.pk)[0]

    # A stray dot far from the nodule (plain brush, smallest size), then "Remove small islands": the dot goes,
    # the two painted slices (pieces of 100+ voxels) stay exactly.
    page.get_by_label("Threshold", exact=True).uncheck()
    page.get_by_label("Brush size").fill("1")
    page.mouse.move(*to_page(page, 100.5, 100.5))
    page.mouse.down()
    page.mouse.up()
    number, dotted = saved_after(page, case.pk, number)
    assert dotted is not None and 0 < np.count_nonzero(dotted) - np.count_nonzero(mask) < 10
    page.get_by_role("button", name="Remove small islands").click()
    number, cleaned = saved_after(page, case.pk, number)
    assert cleaned is not None and np.array_equal(cleaned, mask)

    # The segment list shows the nodule as an outline (display only: the stored mask is unchanged).
    page.get_by_test_id("segments").get_by_label("Outline").check()
    page.evaluate("i => window.__medlabel.viewer.current.setSlice(i)", painted_slices[0])
    page.wait_for_timeout(300)
    shot(page, "ws-10-segment-outline")
    kept = stored(case.pk)[1]
    assert kept is not None and np.array_equal(kept, mask)
    session.close()
