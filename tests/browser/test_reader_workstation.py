"""The reader as a radiology workstation (issue 15), in Chromium against a live server with the demo data;
every test checks what is stored, not only the screen:

- no lost work: a draft with an out-of-range answer is saved (flagged) and the problem is shown at its
  field; leaving with unsaved changes asks first; submit lists what is missing and jumps to it;
- the image does not move when Brush is chosen or a banner appears;
- `?` lists the hotkeys, and a hotkey for a tool the schema lacks does nothing;
- a box is moved and resized with Cornerstone3D's handles, the stored geometry follows, and undo/redo
  restore and re-apply it.

Screenshots go to $TEST_ARTIFACTS_DIR/screenshots/ (ws-*.png)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Page

from annotation.models import Annotation
from annotation.services import annotation_save
from tests.browser import test_reading_flow as flow
from tests.browser.test_reading_flow import SAVED, Session, drag, shot

# The live server with the demo data and Debian's Chromium, as the reading-flow tests set them up.
browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)


def open_next_case(session: Session) -> int:
    page = session.page
    page.goto(f"{session.base}/projects/demo-chest-ct")
    page.get_by_role("button", name="Next case").click()
    page.wait_for_url("**/cases/*/read?*")
    session.wait_first_image()
    page.wait_for_timeout(300)
    return int(page.url.split("/cases/")[1].split("/")[0])


def stored(case_id: int, username: str) -> Annotation:
    return Annotation.objects.select_related("current_revision").get(case_id=case_id, reader__username=username)


def values_of(annotation: Annotation) -> dict[str, Any]:
    assert annotation.current_revision is not None
    return {item["label"]: item.get("value") for item in annotation.current_revision.items}


def centre(page: Page) -> tuple[float, float]:
    box = page.get_by_test_id("overlay").bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_no_lost_work(browser: Browser, base_url: str) -> None:
    session = Session(browser, base_url, "annotator")
    page = session.page
    case_id = open_next_case(session)

    # An out-of-range diameter: shown at the field as typed, and the draft is still saved, flagged.
    page.get_by_label("Nodule present").select_option("yes")
    page.get_by_role("button", name="Box (B)").click()
    cx, cy = centre(page)
    drag(page, (cx - 40, cy - 30), (cx + 40, cy + 30))
    page.get_by_label("Long-axis diameter").fill("150")
    problem = page.get_by_test_id("problem-region-0-diameter")
    problem.wait_for()
    assert "150 mm is above the maximum 100 mm of Long-axis diameter" in problem.inner_text()
    assert page.get_by_label("Long-axis diameter").get_attribute("aria-invalid") == "true"
    page.locator(SAVED).wait_for(timeout=20_000)
    assert "to fix before submitting" in page.get_by_test_id("save-state").inner_text()
    annotation = stored(case_id, "annotator")
    assert annotation.status == "in_progress" or annotation.status != "submitted"
    assert values_of(annotation)["diameter"] == 150
    assert values_of(annotation)["nodule_present"] == "yes"
    revision = annotation.current_revision
    assert revision is not None and not revision.is_submission
    assert [(p["label"], p["field"].endswith(".value")) for p in revision.problems] == [("diameter", True)]
    assert "above the maximum 100 mm" in revision.problems[0]["reason"]
    saved_number = revision.number
    shot(page, "ws-01-draft-out-of-range")

    # A comment typed afterwards, then "Back to worklist" at once: the app asks first; staying keeps it.
    page.get_by_label("Comment").fill("typed after the bad value")
    asked: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("link", name="Back to worklist").click()
    assert asked and "unsaved changes" in asked[0]
    assert "/read" in page.url  # still in the reader
    page.locator(SAVED).wait_for(timeout=20_000)
    annotation = stored(case_id, "annotator")
    assert values_of(annotation)["comment"] == "typed after the bad value"
    assert annotation.current_revision is not None and annotation.current_revision.number > saved_number

    # Submit lists everything missing or wrong at once and jumps to the first; nothing is submitted.
    page.get_by_role("button", name="Submit reading").click()
    pending = page.get_by_test_id("pending")
    pending.wait_for()
    text = pending.inner_text()
    assert "Nodule type of lesion #1: required" in text
    assert "Long-axis diameter of lesion #1: 150 mm is above the maximum 100 mm" in text
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'region-0-nodule_type'")
    shot(page, "ws-02-submit-checklist")
    assert stored(case_id, "annotator").status != "submitted"
    # The checklist's entries jump to their field.
    pending.get_by_role("button", name="Long-axis diameter of lesion #1", exact=False).click()
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'region-0-diameter'")

    # Closing the tab with unsaved changes asks too (beforeunload).
    page.get_by_label("Comment").fill("typed, then the tab is closed")
    unload: list[str] = []

    def accept(dialog: Dialog) -> None:
        unload.append(dialog.type)
        dialog.dismiss()

    page.once("dialog", accept)
    page.close(run_before_unload=True)
    page.wait_for_timeout(500)
    assert unload == ["beforeunload"]
    session.close(expected_statuses=())


def viewport_box(page: Page) -> dict[str, float]:
    box = page.get_by_test_id("viewport").bounding_box()
    assert box is not None
    return {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}


def test_the_image_does_not_move_when_brush_is_chosen_or_a_banner_appears(
    browser: Browser,
    base_url: str,
) -> None:
    session = Session(browser, base_url, "annotator")
    page = session.page
    case_id = open_next_case(session)
    before = viewport_box(page)

    page.get_by_role("button", name="Brush (R)").click()
    page.get_by_label("Brush size").wait_for()
    assert page.get_by_label("Brush size").is_visible()
    page.wait_for_timeout(200)
    assert viewport_box(page) == before
    cx, cy = centre(page)
    drag(page, (cx - 10, cy), (cx + 10, cy))
    page.locator(SAVED).wait_for(timeout=20_000)
    assert viewport_box(page) == before

    # A save from elsewhere makes this page's next save a 409: the conflict banner floats over the image.
    annotation = stored(case_id, "annotator")
    assert annotation.current_revision is not None and annotation.reader is not None
    elsewhere = annotation_save(
        case=annotation.case,
        reader=annotation.reader,
        role="first_reader",
        base_revision=annotation.revision_count,
        values={"items": [{"label": "nodule_present", "value": "no"}]},
    )
    page.get_by_label("Nodule present").select_option("yes")
    conflict = page.get_by_test_id("conflict")
    conflict.wait_for(timeout=20_000)
    page.wait_for_timeout(200)
    assert viewport_box(page) == before
    shot(page, "ws-03-banner-over-image")
    # The other save stands; this page's was refused, not stored.
    annotation = stored(case_id, "annotator")
    assert annotation.current_revision is not None and annotation.current_revision.pk == elsewhere.pk
    assert values_of(annotation) == {"nodule_present": "no"}
    session.close(expected_statuses=(409,))


def pressed_tool(page: Page) -> list[str]:
    return [
        b.inner_text() for b in page.get_by_role("toolbar", name="Tools").locator("button[aria-pressed=true]").all()
    ]


def test_hotkey_list_and_hotkeys_only_for_the_schemas_tools(browser: Browser, base_url: str) -> None:
    session = Session(browser, base_url, "annotator")
    page = session.page
    case_id = open_next_case(session)
    tools = page.get_by_role("toolbar", name="Tools")
    assert tools.get_by_role("button", name="Contour (C)").count() == 0  # the chest CT schema has no contours
    assert tools.get_by_role("button", name="Point (T)").count() == 0  # nor points

    # "?" lists every hotkey of this project's tools, and no other tool's.
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    dialog.wait_for()
    rows = {
        row.locator("th").inner_text().strip(): row.locator("td").inner_text().strip()
        for row in dialog.locator("tr").all()
    }
    assert rows["W"] == "Window/level" and rows["B"] == "Box" and rows["R"] == "Brush" and rows["E"] == "Eraser"
    assert "C" not in rows and "T" not in rows
    for keys in ("Ctrl+Z", "Ctrl+S", "Ctrl+Enter", "?", "Esc"):
        assert keys in rows, rows
    shot(page, "ws-04-hotkeys")
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")

    # C and T do nothing here: the active tool stays, and drawing still draws a box.
    page.keyboard.press("b")
    assert pressed_tool(page) == ["Box (B)"]
    page.keyboard.press("c")
    page.keyboard.press("t")
    assert pressed_tool(page) == ["Box (B)"]
    cx, cy = centre(page)
    drag(page, (cx - 30, cy - 20), (cx + 30, cy + 20))
    page.locator(SAVED).wait_for(timeout=20_000)
    items = stored(case_id, "annotator").current_revision.items  # type: ignore[union-attr]
    assert [item["label"] for item in items] == ["nodule_box"]
    assert set(items[0]["geometry"]) == {"x", "y", "width", "height"}
    session.close()


def stored_box(case_id: int) -> tuple[int, dict[str, float]]:
    annotation = stored(case_id, "annotator")
    assert annotation.current_revision is not None
    (box,) = [item for item in annotation.current_revision.items if item["label"] == "nodule_box"]
    return annotation.current_revision.number, box["geometry"]


def wait_saved_after(page: Page, case_id: int, number: int) -> tuple[int, dict[str, float]]:
    """Wait for the autosave of the change just made: a revision after `number`."""
    page.wait_for_function(
        "n => { const s = document.querySelector('[data-testid=save-state]');"
        " return s && s.dataset.state === 'saved' && s.textContent.includes('revision ' + n); }",
        arg=number + 1,
        timeout=20_000,
    )
    return stored_box(case_id)


def close_to(a: dict[str, float], b: dict[str, float], tolerance: float = 0.02) -> bool:
    return all(abs(a[k] - b[k]) <= tolerance for k in ("x", "y", "width", "height"))


def test_move_and_resize_a_box_then_undo_and_redo(browser: Browser, base_url: str) -> None:
    session = Session(browser, base_url, "annotator")
    page = session.page
    case_id = open_next_case(session)
    page.keyboard.press("b")
    cx, cy = centre(page)
    drag(page, (cx - 40, cy - 30), (cx + 40, cy + 30))
    n1, drawn = wait_saved_after(page, case_id, 0)
    scale = 80 / drawn["width"]  # canvas pixels per image pixel
    assert abs(60 / drawn["height"] - scale) < 0.2

    # Back to window/level: the box stays editable through Cornerstone3D's handles.
    page.keyboard.press("w")
    # Move: grab the top edge and drag the whole box right and down.
    drag(page, (cx, cy - 30), (cx + 25, cy - 15))
    n2, moved = wait_saved_after(page, case_id, n1)
    assert abs(moved["width"] - drawn["width"]) < 0.05 and abs(moved["height"] - drawn["height"]) < 0.05
    assert abs(moved["x"] - drawn["x"] - 25 / scale) < 1.0, (drawn, moved)
    assert abs(moved["y"] - drawn["y"] - 15 / scale) < 1.0, (drawn, moved)
    # Resize: drag the bottom-right corner handle further out.
    corner = (cx + 40 + 25, cy + 30 + 15)
    drag(page, corner, (corner[0] + 20, corner[1] + 10))
    n3, resized = wait_saved_after(page, case_id, n2)
    assert abs(resized["x"] - moved["x"]) < 0.05 and abs(resized["y"] - moved["y"]) < 0.05
    assert abs(resized["width"] - moved["width"] - 20 / scale) < 1.0, (moved, resized)
    assert abs(resized["height"] - moved["height"] - 10 / scale) < 1.0, (moved, resized)
    shot(page, "ws-05-box-edited")

    # Undo twice: the resize, then the move; redo re-applies the move. Each is autosaved.
    page.keyboard.press("Control+z")
    n4, undone = wait_saved_after(page, case_id, n3)
    assert close_to(undone, moved), (undone, moved)
    page.keyboard.press("Control+z")
    n5, undone_twice = wait_saved_after(page, case_id, n4)
    assert close_to(undone_twice, drawn), (undone_twice, drawn)
    page.keyboard.press("Control+y")
    _, redone = wait_saved_after(page, case_id, n5)
    assert close_to(redone, moved), (redone, moved)

    # Delete the selected box (the last one edited is selected): stored without it, undo brings it back.
    n6 = stored(case_id, "annotator").current_revision.number  # type: ignore[union-attr]
    page.keyboard.press("Delete")
    page.wait_for_function(
        "n => document.querySelector('[data-testid=save-state]').textContent.includes('revision ' + n)",
        arg=n6 + 1,
        timeout=20_000,
    )
    items = stored(case_id, "annotator").current_revision.items  # type: ignore[union-attr]
    assert [i for i in items if i["label"] == "nodule_box"] == []
    page.keyboard.press("Control+z")
    _, back = wait_saved_after(page, case_id, n6 + 1)
    assert close_to(back, moved)
    session.close()


def test_undo_goes_back_sixty_answers_and_redo_forward(browser: Browser, base_url: str) -> None:
    """At least 50 steps of history (issue 15 item 1): 60 answers, 60 undos back to nothing, a redo."""
    session = Session(browser, base_url, "annotator")
    page = session.page
    case_id = open_next_case(session)
    field = page.get_by_label("Nodule present")
    for step in range(60):
        field.select_option("yes" if step % 2 == 0 else "no")
    page.locator(SAVED).wait_for(timeout=20_000)
    assert values_of(stored(case_id, "annotator")) == {"nodule_present": "no"}
    page.locator("body").click(position={"x": 5, "y": 200})
    undo = page.get_by_role("button", name="Undo", exact=True)
    started = page.evaluate("performance.now()")
    for _ in range(60):
        page.keyboard.press("Control+z")
    page.wait_for_function("() => document.getElementById('study-nodule_present').value === ''")
    per_undo_ms = (page.evaluate("performance.now()") - started) / 60
    assert undo.is_disabled()
    number = stored(case_id, "annotator").current_revision.number  # type: ignore[union-attr]
    page.wait_for_function(
        "n => { const s = document.querySelector('[data-testid=save-state]');"
        " return s.dataset.state === 'saved' && s.textContent.includes('revision ' + n); }",
        arg=number + 1,
        timeout=20_000,
    )
    assert values_of(stored(case_id, "annotator")) == {}
    page.keyboard.press("Control+y")
    page.wait_for_function(
        "n => { const s = document.querySelector('[data-testid=save-state]');"
        " return s.dataset.state === 'saved' && s.textContent.includes('revision ' + n); }",
        arg=number + 2,
        timeout=20_000,
    )
    assert values_of(stored(case_id, "annotator")) == {"nodule_present": "yes"}
    assert per_undo_ms < 200, per_undo_ms
    print(f"undo latency (60 Ctrl+Z through Playwright, per step): {per_undo_ms:.1f} ms")
    session.close()
