"""3D boxes in the reader (issue 15 item 4), in Chromium against a live server: a box of a 3D label is drawn on one
slice, its first and last slices are set in the stack ([ and ] on the selected box), and it is stored as the API's 3D
box with exactly that slice range; dragging its bottom edge in the SAGITTAL MPR view changes the stored range, and
Ctrl+Z restores it. Each state is checked in the database (the revision's stored region geometry).

Screenshots: $TEST_ARTIFACTS_DIR/reader-box3d-mpr.png (the box in the three MPR views) and reader-box3d-stack.png
(the stack on the box's last slice, where it is drawn fainter than on its central slice)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page

from annotation.models import Annotation, LabelSchema, Project
from annotation.services import schema_create_version
from tests.browser import test_reading_flow as flow
from tests.browser.test_reader_measurements import nodule_case, to_page
from tests.browser.test_reading_flow import SLUG, Session, artifacts, drag

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)

BOX3D_KEY = "nodule_volume"
BOX3D_LABEL: dict[str, Any] = {
    "key": BOX3D_KEY,
    "name": {"en": "Nodule 3D box", "zh-hans": "结节三维框"},
    "level": "region",
    "kind": "box",
    "dimensions": 3,
}


def with_3d_box_label() -> None:
    project = Project.objects.get(slug=SLUG)
    latest = LabelSchema.objects.filter(project=project).order_by("-version").first()
    assert latest is not None
    definition = copy.deepcopy(latest.definition)
    definition["labels"].append(BOX3D_LABEL)
    schema_create_version(project=project, definition=definition, created_by=User.objects.get(username="manager"))


def stored_box(case_id: int) -> tuple[int, dict[str, Any]]:
    annotation = Annotation.objects.select_related("current_revision").get(
        case_id=case_id, reader__username="annotator"
    )
    revision = annotation.current_revision
    assert revision is not None
    (box,) = [i for i in revision.items if i["label"] == BOX3D_KEY]
    return revision.number, box


def saved_after(page: Page, case_id: int, number: int) -> tuple[int, dict[str, Any]]:
    page.wait_for_function(
        "n => { const s = document.querySelector('[data-testid=save-state]');"
        " return s && s.dataset.state === 'saved' && s.textContent.includes('revision ' + n); }",
        arg=number + 1,
        timeout=20_000,
    )
    return stored_box(case_id)


def go_to_slice(page: Page, index: int) -> None:
    page.evaluate("i => window.__medlabel.viewer.current.setSlice(i)", index)
    page.wait_for_function("i => window.__medlabel.slice === i", arg=index)


def test_a_3d_box_is_stored_with_its_slice_extent_and_edited_in_the_sagittal_view(
    browser: Browser, base_url: str
) -> None:
    with_3d_box_label()
    case, study = nodule_case()
    (lesion,) = study.lesions
    z0, y0, x0, z1, y1, x1 = lesion.bbox_voxel

    session = Session(browser, base_url, "annotator")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()
    page.get_by_role("combobox", name="Lesions").select_option(BOX3D_KEY)
    sops = page.evaluate("window.__medlabel.sopInstanceUids")
    centre = (int(z0) + int(z1)) // 2

    # Drawn on one slice: a 3D box of that one slice.
    go_to_slice(page, centre)
    page.keyboard.press("b")
    drag(page, to_page(page, x0 - 2, y0 - 2), to_page(page, x1 + 2, y1 + 2))
    page.locator("[data-testid=save-state][data-state=saved]").wait_for(timeout=20_000)
    number, box = stored_box(case.pk)
    assert "sop_instance_uid" not in box
    assert box["series_instance_uid"] == study.series_uid
    assert len(sops) == 24 and (box["geometry"]["z"], box["geometry"]["depth"]) == (centre, 1), box

    # Its first slice ([) and last slice (]) set in the stack, on the selected box.
    first, last = centre - 3, centre + 2
    go_to_slice(page, first)
    page.keyboard.press("[")
    number, box = saved_after(page, case.pk, number)
    assert (box["geometry"]["z"], box["geometry"]["depth"]) == (first, centre - first + 1), box
    go_to_slice(page, last)
    page.keyboard.press("]")
    number, box = saved_after(page, case.pk, number)
    geometry = box["geometry"]
    assert (geometry["z"], geometry["depth"]) == (first, last - first + 1), box
    # Shown, fainter, on the slices it spans besides its central one.
    assert page.get_by_test_id("lesions").inner_text().count(f"Slices {first + 1}–{last + 1} of 24") == 1
    page.screenshot(path=str(artifacts() / "reader-box3d-stack.png"), full_page=True)  # on its last slice: faint

    # MPR: the box in every view; dragging its bottom edge in the sagittal view moves its last slice.
    page.get_by_role("radio", name="MPR 1×3").click()
    page.wait_for_function("() => window.__medlabel.mprReadyMs > 0", timeout=60_000)
    yc = geometry["y"] + geometry["height"] / 2 - 0.5  # voxel coordinates (z, y, x) of the box's centre
    xc = geometry["x"] + geometry["width"] / 2 - 0.5
    zc = (first + last) // 2
    page.evaluate("v => window.__medlabel.mpr.current.jumpTo(v)", [zc, yc, xc])
    page.wait_for_timeout(300)
    start = page.evaluate("v => window.__medlabel.mpr.current.voxelToPage('mpr-sagittal', v)", [last + 0.5, yc, xc])
    new_last = last + 3
    end = page.evaluate("v => window.__medlabel.mpr.current.voxelToPage('mpr-sagittal', v)", [new_last, yc, xc])
    drag(page, (start[0], start[1]), (end[0], end[1]))
    number, box = saved_after(page, case.pk, number)
    moved = box["geometry"]
    assert (moved["z"], moved["depth"]) == (first, new_last - first + 1), box
    for key in ("x", "y", "width", "height"):
        assert moved[key] == pytest.approx(geometry[key], abs=0.01), (moved, geometry)
    page.screenshot(path=str(artifacts() / "reader-box3d-mpr.png"), full_page=True)

    # Undo restores the extent set in the stack.
    page.keyboard.press("Control+z")
    number, box = saved_after(page, case.pk, number)
    assert (box["geometry"]["z"], box["geometry"]["depth"]) == (first, last - first + 1), box
    assert not session.errors, session.errors


def test_a_length_drawn_over_a_3d_box_off_its_central_slice_belongs_to_the_box(browser: Browser, base_url: str) -> None:
    """A measurement drawn over a 3D box on one of its slices (not its central one) is stored with the box, naming
    that slice, with the server's millimetres; the screenshot is reader-box3d-measurement.png."""
    with_3d_box_label()
    case, study = nodule_case()
    (lesion,) = study.lesions
    z0, y0, x0, z1, y1, x1 = lesion.bbox_voxel
    centre = (int(z0) + int(z1)) // 2

    session = Session(browser, base_url, "annotator")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()
    page.get_by_role("combobox", name="Lesions").select_option(BOX3D_KEY)
    go_to_slice(page, centre)
    page.keyboard.press("b")
    drag(page, to_page(page, x0 - 2, y0 - 2), to_page(page, x1 + 2, y1 + 2))
    page.locator("[data-testid=save-state][data-state=saved]").wait_for(timeout=20_000)
    number, _ = stored_box(case.pk)
    first, last = centre - 2, centre + 2
    go_to_slice(page, first)
    page.keyboard.press("[")
    number, _ = saved_after(page, case.pk, number)
    go_to_slice(page, last)
    page.keyboard.press("]")
    number, box = saved_after(page, case.pk, number)
    assert (box["geometry"]["z"], box["geometry"]["depth"]) == (first, 5), box

    # A length on slice centre + 1 (inside the box's extent, not its central slice), 10 columns long.
    on = centre + 1
    go_to_slice(page, on)
    page.keyboard.press("l")
    yc = (y0 + y1) / 2
    drag(page, to_page(page, x0, yc), to_page(page, x0 + 10, yc))
    number, box = saved_after(page, case.pk, number)
    (length,) = box.get("measurements", [])
    assert length["kind"] == "length" and length["slice"] == on, box
    assert length["length_mm"] == pytest.approx(10 * 0.8, abs=0.2), length
    page.screenshot(path=str(artifacts() / "reader-box3d-measurement.png"), full_page=True)
    assert not session.errors, session.errors
