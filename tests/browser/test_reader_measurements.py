"""Measurements in the reader (issue 15 item 2), in Chromium against a live server: Cornerstone3D's Length and
EllipticalROI tools on a synthetic nodule of known size; the measurement is stored with the lesion (the server
computes the millimetres from the series' pixel spacing), and one click fills the lesion's diameter field.

Screenshot: $TEST_ARTIFACTS_DIR/screenshots/ws-06-measurements.png."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page

from annotation.models import Annotation, Case, Project
from annotation.services import assignment_create
from imaging.models import Instance
from imaging.synthetic import SyntheticStudy, generate_ct_study
from tests.browser import test_reading_flow as flow
from tests.browser.synthetic_cases import ingest_as_case
from tests.browser.test_reading_flow import SLUG, Session, drag, shot

browser = flow.browser
base_url = flow.base_url

pytestmark = pytest.mark.django_db(transaction=True)

SPACING = 0.8  # mm, rows and columns


def nodule_case() -> tuple[Case, SyntheticStudy]:
    study = generate_ct_study(
        seed=515,
        rows=128,
        columns=128,
        slices=24,
        pixel_spacing=(SPACING, SPACING),
        n_lesions=1,
        lesion_radius_mm=(6.0, 8.0),
    )

    case = ingest_as_case(Project.objects.get(slug=SLUG), study, name="nodule", priority=9.0)
    assignment_create(case=case, user=User.objects.get(username="annotator"), role="first_reader", assigned_by=None)
    return case, study


def to_page(page: Page, x: float, y: float) -> tuple[float, float]:
    point = page.evaluate("([x, y]) => window.__medlabel.viewer.current.apiToPage({x, y})", [x, y])
    return float(point[0]), float(point[1])


def region_item(case_id: int) -> tuple[int, dict[str, Any], dict[str, Any]]:
    annotation = Annotation.objects.select_related("current_revision").get(
        case_id=case_id, reader__username="annotator"
    )
    assert annotation.current_revision is not None
    items = annotation.current_revision.items
    (box,) = [i for i in items if i["label"] == "nodule_box"]
    values = {i["label"]: i.get("value") for i in items if i.get("region") == box["id"]}
    return annotation.current_revision.number, box, values


def wait_saved_after(page: Page, number: int) -> None:
    page.wait_for_function(
        "n => { const s = document.querySelector('[data-testid=save-state]');"
        " return s && s.dataset.state === 'saved' && s.textContent.includes('revision ' + n); }",
        arg=number + 1,
        timeout=20_000,
    )


def test_a_length_across_a_nodule_reads_its_diameter_and_fills_the_field(browser: Browser, base_url: str) -> None:
    case, study = nodule_case()
    (lesion,) = study.lesions
    z = round(lesion.center_voxel[0])
    y = round(lesion.center_voxel[1])
    columns = np.flatnonzero(study.mask[z, y, :])
    x0, x1 = int(columns.min()), int(columns.max()) + 1  # edges of the nodule on its centre row (API x)
    diameter_mm = 2 * lesion.radii_mm[2]

    session = Session(browser, base_url, "annotator")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()
    sop = study.sop_instance_uids()[z]
    index = page.evaluate("sop => window.__medlabel.sopInstanceUids.indexOf(sop)", sop)
    assert index >= 0
    page.evaluate("i => window.__medlabel.viewer.current.setSlice(i)", index)
    page.wait_for_function("i => window.__medlabel.slice === i", arg=index)

    # The lesion: a box around the nodule (a measurement belongs to a lesion).
    z0, y0, xa, z1, y1, xb = lesion.bbox_voxel
    page.keyboard.press("b")
    drag(page, to_page(page, xa - 2, y0 - 2), to_page(page, xb + 2, y1 + 2))
    page.get_by_label("Long-axis diameter").wait_for()

    # Length (L): from the nodule's left edge to its right edge along its centre row.
    page.keyboard.press("l")
    drag(page, to_page(page, x0, y + 0.5), to_page(page, x1, y + 0.5))
    fill = page.get_by_role("button", name="Long-axis diameter ←", exact=False)
    fill.wait_for()
    page.locator("[data-testid=save-state][data-state=saved]").wait_for(timeout=20_000)
    number, box, _ = region_item(case.pk)
    (length,) = box["measurements"]
    assert length["kind"] == "length"
    # Stored in mm computed by the server from the pixel spacing; it reads the nodule within one voxel.
    assert abs(length["length_mm"] - (x1 - x0) * SPACING) < 0.1, (length, x0, x1)
    assert abs(length["length_mm"] - diameter_mm) <= SPACING, (length, diameter_mm)

    # One click fills the diameter field with it.
    fill.click()
    wait_saved_after(page, number)
    number, box, values = region_item(case.pk)
    assert values["diameter"] == pytest.approx(round(length["length_mm"], 1))
    assert page.get_by_label("Long-axis diameter").input_value() == str(values["diameter"])

    # An ellipse inside the nodule (O): its HU statistics are the nodule's density.
    page.keyboard.press("o")
    # Its centre a little above the length's line (pressing on a drawn measurement edits that one instead).
    cx, cy = lesion.center_voxel[2] + 0.5, lesion.center_voxel[1] + 0.5 - 4.5
    r = (x1 - x0) / 8
    # Cornerstone3D's ellipse is drawn from its centre outwards.
    drag(page, to_page(page, cx, cy), to_page(page, cx + r, cy + r))
    # Its statistics come when Cornerstone3D renders the final shape; then the draft saves again.
    page.get_by_test_id(f"measurements-{box['id']}").locator("li[data-kind=ellipse]", has_text="HU mean").wait_for()
    page.locator("[data-testid=save-state][data-state=saved]").wait_for(timeout=20_000)
    number, box, values = region_item(case.pk)
    ellipse = next(m for m in box["measurements"] if m["kind"] == "ellipse")
    assert abs(ellipse["hu"]["mean"] - lesion.hu) < 15, (ellipse, lesion.hu)
    assert ellipse["hu"]["min"] <= ellipse["hu"]["mean"] <= ellipse["hu"]["max"]
    assert ellipse["area_mm2"] > 0
    page.keyboard.press("w")
    shot(page, "ws-06-measurements")

    # Undo removes the ellipse from what is stored; the length stays.
    page.keyboard.press("Control+z")
    wait_saved_after(page, number)
    _, box, _ = region_item(case.pk)
    assert [m["kind"] for m in box["measurements"]] == ["length"]
    session.close()


def test_the_viewport_shows_what_a_pacs_shows(browser: Browser, base_url: str) -> None:
    """Overlays (issue 15 item 3): pseudonymous patient, series, slice number and position in mm as stored for
    the instance, thickness, orientation letters, W/L numbers with the preset that really applies (Custom
    after a manual drag), a slice scrollbar, and a brush ring; nothing of it moves the image."""
    case, study = nodule_case()
    session = Session(browser, base_url, "annotator")
    page = session.page
    page.goto(f"{base_url}/cases/{case.pk}/read?role=first_reader&project={SLUG}")
    session.wait_first_image()
    before = page.get_by_test_id("viewport").bounding_box()

    assert page.get_by_test_id("overlay-patient").inner_text().splitlines()[0] == study.patient_id
    assert study.series_description in page.get_by_test_id("overlay-series").inner_text()
    letters = {
        side: page.get_by_test_id(f"orientation-{side}").inner_text() for side in ("left", "right", "top", "bottom")
    }
    assert letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}  # an axial slice seen from the feet
    page.wait_for_function("() => document.querySelector('[data-testid=wl-numbers]').textContent.includes('L -600')")
    assert page.get_by_test_id("wl-preset").inner_text() == "Lung"
    assert page.get_by_label("Window preset").input_value() == "lung"

    # The scrollbar goes to slice 5; the position shown is the stored instance's, along the slice normal.
    page.get_by_label("Slice", exact=True).fill("4")
    page.wait_for_function("() => window.__medlabel.slice === 4")
    assert page.get_by_test_id("slice-info").inner_text().startswith("Slice 5 / 24")
    sop = page.evaluate("window.__medlabel.sopInstanceUids[4]")
    instance = Instance.objects.get(sop_instance_uid=sop, series__study__study_instance_uid=study.study_uid)
    assert instance.image_position is not None
    shown = page.get_by_test_id("slice-position").inner_text()
    assert shown.startswith("Position ") and shown.endswith(" mm"), shown
    assert abs(float(shown.split()[1]) - instance.image_position[2]) <= 0.051, (shown, instance.image_position)

    # A manual window/level drag: the numbers follow and the preset says Custom; choosing one applies it.
    box = page.get_by_test_id("viewport").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    drag(page, (cx, cy), (cx + 60, cy + 40))
    page.wait_for_function("() => document.querySelector('[data-testid=wl-preset]').textContent === 'Custom'")
    assert page.get_by_label("Window preset").input_value() == "custom"
    page.get_by_label("Window preset").select_option("mediastinum")
    page.wait_for_function("() => document.querySelector('[data-testid=wl-preset]').textContent === 'Mediastinum'")
    assert "L 50" in page.get_by_test_id("wl-numbers").inner_text()

    # The brush's ring follows the pointer; nothing moved the image.
    page.keyboard.press("r")
    page.mouse.move(cx + 5, cy + 5)
    page.mouse.move(cx + 10, cy + 10)
    shot(page, "ws-07-stack-overlays")
    assert page.get_by_test_id("viewport").bounding_box() == before
    session.close()
