"""The reader's toolbar at the window sizes radiologists use, in Chromium against a live server, in English and
in Chinese: with every tool of the reader shown (a schema with boxes, contours, points and masks), the toolbar is
ONE row at 1440 x 900 and at most two at 1280 x 800 (it wrapped to three or four, pushing the image down), every
tool keeps its full name (the dictionary's, with its key) as its accessible name and its hotkey, and choosing any
tool does not move the image. A dab of the brush chosen from the icon toolbar is stored in the database.

Screenshots: $TEST_ARTIFACTS_DIR/reader-toolbar-<language>-<width>.png."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, FloatRect, Page

from accounts.services import profile_set_language
from annotation.models import Annotation, LabelSchema, Project
from annotation.services import load_mask, schema_create_version
from tests.browser import test_reading_flow as flow
from tests.browser.test_reader_measurements import nodule_case
from tests.browser.test_reading_flow import SLUG, Session, artifacts, grey_std

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)

# Each tool's accessible name, as the dictionaries give it (frontend/src/i18n), in toolbar order.
TOOL_NAMES = {
    "en": [
        "Window/level (W)",
        "Pan (P)",
        "Zoom (Z)",
        "Box (B)",
        "Contour (C)",
        "Point (T)",
        "Brush (R)",
        "Eraser (E)",
        "Length (L)",
        "Long/short axis (D)",
        "Ellipse HU (O)",
    ],
    "zh-hans": [
        "窗宽窗位 (W)",
        "平移 (P)",
        "缩放 (Z)",
        "矩形框 (B)",
        "轮廓 (C)",
        "点 (T)",
        "画笔 (R)",
        "橡皮擦 (E)",
        "长度 (L)",
        "长短径 (D)",
        "椭圆 HU (O)",
    ],
}
KEYS = "wpzbctreldo"
UNDO = {"en": ("Undo", "Redo"), "zh-hans": ("撤销", "重做")}

EXTRA_LABELS: list[dict[str, Any]] = [
    {"key": "outline", "name": {"en": "Outline", "zh-hans": "轮廓线"}, "level": "region", "kind": "polygon"},
    {"key": "marker", "name": {"en": "Marker", "zh-hans": "标记点"}, "level": "region", "kind": "point"},
]


def with_every_tool() -> None:
    """The demo schema plus a contour and a point label: the reader then shows all eleven tools."""
    project = Project.objects.get(slug=SLUG)
    latest = LabelSchema.objects.filter(project=project).order_by("-version").first()
    assert latest is not None
    definition = copy.deepcopy(latest.definition)
    definition["labels"].extend(EXTRA_LABELS)
    schema_create_version(project=project, definition=definition, created_by=User.objects.get(username="manager"))


def toolbar_rows(page: Page) -> tuple[int, float]:
    """The toolbar's number of rows (distinct tops of its items) and its height in CSS pixels."""
    return page.evaluate(
        """() => {
          const bar = document.querySelector('[role=toolbar]');
          const tops = [];
          for (const item of bar.children) {
            const box = item.getBoundingClientRect();
            if (box.width === 0) continue;
            if (!tops.some((t) => Math.abs(t - box.top) < 8)) tops.push(box.top);
          }
          return [tops.length, bar.getBoundingClientRect().height];
        }"""
    )


def viewport_top(page: Page) -> FloatRect:
    box = page.get_by_test_id("viewport").bounding_box()
    assert box is not None
    return box


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_toolbar_is_one_row_at_1440_and_the_image_stays_put(browser: Browser, base_url: str, language: str) -> None:
    with_every_tool()
    case, study = nodule_case()
    profile_set_language(user=User.objects.get(username="annotator"), language=language)
    session = Session(browser, base_url, "annotator")
    page = session.page
    figures: dict[int, tuple[int, float]] = {}
    for width, height, most in ((1440, 900, 1), (1280, 800, 2)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
        session.wait_first_image()
        page.wait_for_timeout(300)
        tools = page.locator("[role=toolbar] button[aria-pressed]")
        names = [tools.nth(i).inner_text().strip() for i in range(tools.count())]
        assert names == TOOL_NAMES[language]
        for name in TOOL_NAMES[language]:
            assert page.get_by_role("button", name=name, exact=True).count() == 1, name
        for name in UNDO[language]:
            assert page.get_by_role("button", name=name, exact=True).count() == 1, name
        rows, bar_height = toolbar_rows(page)
        figures[width] = (rows, bar_height)
        png = page.screenshot()
        (artifacts() / f"reader-toolbar-{language}-{width}.png").write_bytes(png)
        assert grey_std(png) >= 8.0
        assert rows <= most, f"{rows} rows at {width} x {height} ({language})"
        assert bar_height <= 36 * most, bar_height

        # Choosing each tool (by its button, then by its key) leaves the image where it was.
        before = viewport_top(page)
        for index in range(tools.count()):
            tools.nth(index).click()
            assert tools.nth(index).get_attribute("aria-pressed") == "true"
            assert viewport_top(page) == before, TOOL_NAMES[language][index]
        page.locator("body").click(position={"x": 5, "y": 5})
        for index, key in enumerate(KEYS):
            page.keyboard.press(key)
            assert tools.nth(index).get_attribute("aria-pressed") == "true", key
            assert viewport_top(page) == before, key
    print(f"toolbar ({language}): {figures}")

    # The brush, chosen by its icon, paints; the stroke is stored.
    page.get_by_role("button", name=TOOL_NAMES[language][6], exact=True).click()
    (lesion,) = study.lesions
    sops = page.evaluate("window.__medlabel.sopInstanceUids")
    index = sops.index(study.sop_instance_uids()[round(lesion.center_voxel[0])])
    page.evaluate("i => window.__medlabel.viewer.current.setSlice(i)", index)
    page.wait_for_function("i => window.__medlabel.slice === i", arg=index)
    box = viewport_top(page)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=save-state]').dataset.state === 'saved'", timeout=20_000
    )
    annotation = Annotation.objects.select_related("current_revision").get(
        case_id=case.pk, reader__username="annotator"
    )
    assert annotation.current_revision is not None
    (mask_file,) = annotation.current_revision.masks.all()
    mask = load_mask(mask_file)
    painted = np.argwhere(mask)
    assert len(painted) > 0 and {int(z) for z, _, _ in painted} == {index}
    session.close()
