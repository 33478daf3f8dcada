"""Per-project viewer settings (issue 15 item 7, issue 16 item 4), in Chromium against a live server with the demo
data: a manager sets a W/L preset, the MPR layout, switches a tool off and gives Box its own key in the form at
/projects/<slug>/settings/viewer; the new schema version holds exactly that `viewer` section and the labels of the
version before. Then an annotator's reader opens in that layout, offers that preset (and applies its numbers),
has no button and no key for the tool switched off, and Box answers to its new key, not to its old one.

Screenshots: $TEST_ARTIFACTS_DIR/viewer-settings.png and screenshots/vs-reader-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page

from annotation.labels import schema_tools
from annotation.models import LabelSchema
from tests.browser import test_reading_flow as flow
from tests.browser.test_reading_flow import SLUG, Session, artifacts, grey_std, shot

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)


def pressed_tool(page: Page) -> list[str]:
    return [
        b.inner_text() for b in page.get_by_role("toolbar", name="Tools").locator("button[aria-pressed=true]").all()
    ]


def test_manager_sets_viewer_settings_and_the_reader_applies_them(browser: Browser, base_url: str) -> None:
    before = LabelSchema.objects.filter(project__slug=SLUG).order_by("-version").first()
    assert before is not None and "viewer" not in before.definition

    # The manager's form, from the project card's link.
    manager = Session(browser, base_url, "manager")
    page = manager.page
    page.get_by_test_id(f"project-{SLUG}").get_by_role("link", name="Viewer settings").click()
    page.wait_for_url(f"**/projects/{SLUG}/settings/viewer")
    page.get_by_test_id("viewer-tools").wait_for()
    page.get_by_role("button", name="Add preset").click()
    preset = page.get_by_test_id("preset-0")
    preset.get_by_label("Key").fill("wide_lung")
    preset.get_by_label("Name (English)").fill("Wide lung")
    preset.get_by_label("Name (Chinese)").fill("宽肺窗")
    preset.get_by_label("Width").fill("1700")
    preset.get_by_label("Center").fill("-500")
    page.get_by_label("MPR 1×3").check()
    page.get_by_test_id("viewer-tools").get_by_label("Eraser", exact=True).uncheck()
    assert page.get_by_label("Key of Eraser").is_disabled()
    page.get_by_label("Key of Box").fill("x")

    # A clash is refused at its field, in words, and nothing is stored.
    page.get_by_label("Key of Brush").fill("x")
    page.get_by_role("button", name="Save viewer settings").click()
    error = page.get_by_test_id("viewer-settings-error")
    error.wait_for()
    assert "viewer.hotkeys.brush" in error.inner_text() and "'x' is already the key of box" in error.inner_text()
    assert page.get_by_label("Key of Brush").get_attribute("aria-invalid") == "true"
    assert LabelSchema.objects.filter(project__slug=SLUG).count() == 1
    page.get_by_label("Key of Brush").fill("")

    page.get_by_role("button", name="Save viewer settings").click()
    page.get_by_test_id("viewer-settings-saved").wait_for()
    png = page.screenshot(full_page=True)
    (artifacts() / "viewer-settings.png").write_bytes(png)
    assert grey_std(png) >= 8.0
    manager.close(expected_statuses=(400,))

    latest = LabelSchema.objects.filter(project__slug=SLUG).order_by("-version").first()
    assert latest is not None and latest.version == before.version + 1
    assert latest.definition["viewer"] == {
        "presets": [
            {"key": "wide_lung", "name": {"en": "Wide lung", "zh-hans": "宽肺窗"}, "width": 1700, "center": -500}
        ],
        "layout": "mpr_1x3",
        "tools": [tool for tool in schema_tools(before.definition["labels"]) if tool != "eraser"],
        "hotkeys": {"box": "x"},
    }
    # The rest of the definition is the version before's.
    assert {k: v for k, v in latest.definition.items() if k != "viewer"} == before.definition

    # The annotator's reader: MPR 1×3 from the start, the project's preset, no Eraser, Box on X.
    reader = Session(browser, base_url, "annotator")
    page = reader.page
    page.goto(f"{base_url}/projects/{SLUG}")
    page.get_by_role("button", name="Next case").click()
    page.wait_for_url("**/cases/*/read?*")
    page.wait_for_function("() => window.__medlabel && window.__medlabel.mprReadyMs > 0", timeout=60_000)
    assert page.get_by_role("radio", name="MPR 1×3").get_attribute("aria-checked") == "true"
    for view in ("mpr-axial", "mpr-sagittal", "mpr-coronal"):
        assert page.get_by_test_id(view).is_visible()
    presets = page.get_by_label("Window preset")
    # Only the project's preset is offered (the reader opens CT at the lung window: "Custom" here).
    assert [o.strip() for o in presets.locator("option").all_inner_texts()] == ["Wide lung", "Custom"]
    presets.select_option("wide_lung")
    assert presets.input_value() == "wide_lung"
    shot(page, "vs-reader-mpr")

    tools = page.get_by_role("toolbar", name="Tools")
    assert tools.get_by_role("button", name="Eraser", exact=False).count() == 0
    assert tools.get_by_role("button", name="Box (X)").count() == 1
    assert tools.get_by_role("button", name="Box (B)").count() == 0
    page.locator("body").click(position={"x": 5, "y": 5})
    assert pressed_tool(page) == ["Window/level (W)"]
    page.keyboard.press("e")  # the Eraser's key: the tool is off, so nothing
    page.keyboard.press("b")  # Box's old key: replaced, so nothing
    assert pressed_tool(page) == ["Window/level (W)"]
    page.keyboard.press("x")
    assert pressed_tool(page) == ["Box (X)"]
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    dialog.wait_for()
    rows = {
        row.locator("th").inner_text().strip(): row.locator("td").inner_text().strip()
        for row in dialog.locator("tr").all()
    }
    assert rows["X"] == "Box" and rows["R"] == "Brush" and rows["W"] == "Window/level"
    assert "B" not in rows and "E" not in rows
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")

    # The preset applies its numbers (in the stack view, where the overlay shows them).
    page.get_by_role("radio", name="Stack").click()
    reader.wait_first_image()
    page.wait_for_function("() => document.querySelector('[data-testid=wl-preset]').textContent === 'Custom'")
    page.get_by_label("Window preset").select_option("wide_lung")
    page.wait_for_function("() => document.querySelector('[data-testid=wl-preset]').textContent === 'Wide lung'")
    numbers = page.get_by_test_id("wl-numbers").inner_text()
    width, level = int(numbers.split()[1]), int(numbers.split()[3])
    # Cornerstone3D reports a linear window half a unit in at each end (W 1699 for 1700).
    assert abs(width - 1700) <= 1 and level == -500, numbers
    shot(page, "vs-reader-stack-preset")
    reader.close()
