"""Brush and eraser strokes are steps of the reader's undo/redo history (issue 15 item 1), in Chromium against a
live server: two strokes are autosaved, Ctrl+Z takes the second and then the first off the stored mask,
Ctrl+Y puts the first back, each state autosaved and checked voxel for voxel in the database."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import Browser, Page

from annotation.models import Annotation
from annotation.services import load_mask
from tests.browser import test_reading_flow as flow
from tests.browser.test_reader_workstation import centre, open_next_case
from tests.browser.test_reading_flow import Session, drag

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)


def stored_mask(case_id: int) -> tuple[int, np.ndarray | None]:
    annotation = Annotation.objects.select_related("current_revision").get(
        case_id=case_id, reader__username="annotator"
    )
    revision = annotation.current_revision
    assert revision is not None
    masks = list(revision.masks.all())
    assert len(masks) <= 1
    return revision.number, (load_mask(masks[0]) if masks else None)


def saved_after(page: Page, case_id: int, number: int) -> tuple[int, np.ndarray | None]:
    page.wait_for_function(
        "n => { const s = document.querySelector('[data-testid=save-state]');"
        " return s && s.dataset.state === 'saved' && s.textContent.includes('revision ' + n); }",
        arg=number + 1,
        timeout=20_000,
    )
    return stored_mask(case_id)


def test_brush_strokes_undo_and_redo_and_each_state_is_autosaved(browser: Browser, base_url: str) -> None:
    session = Session(browser, base_url, "annotator")
    page = session.page
    case_id = open_next_case(session)
    page.keyboard.press("r")
    cx, cy = centre(page)

    drag(page, (cx - 30, cy), (cx + 30, cy))
    n1, first = saved_after(page, case_id, 0)
    assert first is not None and first.sum() > 0
    drag(page, (cx - 30, cy + 60), (cx + 30, cy + 60))
    n2, both = saved_after(page, case_id, n1)
    assert both is not None and np.count_nonzero(both) > np.count_nonzero(first)
    assert np.all(both[first > 0] == first[first > 0])  # the second stroke kept the first

    page.keyboard.press("Control+z")  # the second stroke off
    n3, undone = saved_after(page, case_id, n2)
    assert undone is not None and np.array_equal(undone, first)
    page.keyboard.press("Control+z")  # the first stroke off: no mask is stored
    n4, empty = saved_after(page, case_id, n3)
    assert empty is None
    assert page.get_by_test_id("mask-count").inner_text().startswith("0 ")
    page.keyboard.press("Control+y")  # the first stroke back
    _, redone = saved_after(page, case_id, n4)
    assert redone is not None and np.array_equal(redone, first)
    session.close()
