"""The read-only reader in Chromium (issue 16 item 6): the case page opens any one reading read-only, checked
against the database. A manager opens the second reading of a case still being read: its box and answers are
shown, every control is disabled, the browser sends nothing but GETs, and the database has no new annotation,
revision or correction afterwards. The first reader, given the URL of the second reader's reading of that open
case, is refused by the server (blind double reading) and shown nothing of it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from annotation.models import Annotation, AnnotationRevision, Case, CaseStatus
from annotation.services import annotation_save, assignment_create
from review.models import Correction
from review.services import reading_submit
from tests.annotation.conftest import chest_values
from tests.browser import panel_helpers
from tests.review import conftest as review_fixtures

pytestmark = pytest.mark.django_db(transaction=True)
SLUG = "nodules"
reading_cases = review_fixtures.reading_cases


def _stored() -> tuple[int, int, int]:
    return Annotation.objects.count(), AnnotationRevision.objects.count(), Correction.objects.count()


def _writes(page: Page) -> list[str]:
    """Every request the page sends that is not a read (filled as it goes)."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(f"{r.method} {r.url}") if r.method not in ("GET", "HEAD") else None)
    return sent


def _failures(page: Page) -> list[str]:
    """The paths of every response the page gets with an error status (filled as it goes)."""
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url.split("/api/v1", 1)[-1]) if r.status >= 400 else None)
    return failed


def test_manager_reads_the_second_reading_read_only_and_the_first_reader_is_refused(
    browsers: panel_helpers.Browsers, users: dict[str, User], reading_cases: list[Case]
) -> None:
    case = reading_cases[0]
    for name, role in (("annotator", "first_reader"), ("reviewer", "second_reader")):
        assignment_create(case=case, user=users[name], role=role, assigned_by=users["manager"])
    # The first reader has a draft (no box); the second reader submitted a nodule box of 9.5 mm: the case is open.
    annotation_save(
        case=case,
        reader=users["annotator"],
        role="first_reader",
        base_revision=0,
        values=chest_values(case, nodule_present="no", box=False),
    )
    reading_submit(
        case=case,
        reader=users["reviewer"],
        role="second_reader",
        base_revision=0,
        values=chest_values(case, diameter=9.5, nodule_type="part_solid"),
    )
    case.refresh_from_db()
    assert case.status in (CaseStatus.AWAITING_FIRST_READ, CaseStatus.AWAITING_CROSS_VERIFICATION)
    second = Annotation.objects.get(case=case, role="second_reader")
    before = _stored()

    # --- The manager: case page -> the second reading, read-only ------------------------------------------------
    manager = browsers.page_for(users["manager"])
    writes = _writes(manager.page)
    failed = _failures(manager.page)
    page = manager.goto(f"/cases/{case.pk}?project={SLUG}")
    expect(page.get_by_test_id("case-reading")).to_have_count(2)
    page.get_by_role("link", name="Open the reading of reviewer (Second reader) read-only").click()
    page.wait_for_url(re.compile(rf"/cases/{case.pk}/read\?reading={second.pk}&project={SLUG}$"))
    page.wait_for_function("() => window.__medlabel && window.__medlabel.firstImageMs > 0", timeout=60_000)
    banner = page.get_by_test_id("read-only-banner")
    expect(banner).to_have_text(
        "Read-only: the reading of reviewer (Second reader), submitted, revision 1. Nothing you do here is saved."
    )
    # Its answers and its box, as stored.
    expect(page.get_by_label("Nodule present")).to_have_value("yes")
    lesions = page.get_by_test_id("lesions").locator("li")
    expect(lesions).to_have_count(1)
    lesions.first.get_by_role("button", name=re.compile(r"^Select #1")).click()
    expect(lesions.first.get_by_label("Long-axis diameter")).to_have_value("9.5")
    expect(lesions.first.get_by_label("Nodule type")).to_have_value("part_solid")
    # Nothing can be changed: fields, drawing tools, delete, undo, save and submit are disabled.
    expect(page.get_by_label("Nodule present")).to_be_disabled()
    expect(lesions.first.get_by_label("Long-axis diameter")).to_be_disabled()
    expect(lesions.first.get_by_role("button", name="Delete #1")).to_be_disabled()
    expect(page.get_by_role("button", name="Box (B)")).to_be_disabled()
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Submit reading")).to_be_disabled()
    # Keyboard saves and submits are ignored too.
    page.get_by_test_id("viewport").click()
    page.keyboard.press("Control+s")
    page.keyboard.press("Control+Enter")
    page.wait_for_timeout(2500)  # longer than the autosave delay
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "read-only-reader")
    assert writes == []
    assert _stored() == before
    second.refresh_from_db()
    assert second.revision_count == 1 and second.status == Annotation.Status.SUBMITTED
    # The case page asks whether there is an agreement or a gold reference yet (404: none); the reader fails nothing.
    assert set(failed) <= {f"/cases/{case.pk}/agreement/", f"/cases/{case.pk}/gold/"}, failed
    assert all("404" in e for e in manager.errors), manager.errors
    page.get_by_role("link", name="Back to the case").click()
    page.wait_for_url(re.compile(rf"/cases/{case.pk}\?project={SLUG}$"))

    # --- The first reader, given that URL while the case is open: refused, shown nothing ------------------------
    annotator = browsers.page_for(users["annotator"])
    writes = _writes(annotator.page)
    page = annotator.goto(f"/cases/{case.pk}/read?reading={second.pk}&project={SLUG}")
    expect(page.get_by_role("alert")).to_contain_text(f"No annotation {second.pk} that you can see")
    expect(page.get_by_test_id("read-only-banner")).to_have_count(0)
    expect(page.get_by_test_id("lesions")).to_have_count(0)
    assert writes == []
    assert _stored() == before
    # The one failure the browser logs is the server's 404 for the hidden reading.
    assert annotator.errors and all("404" in e for e in annotator.errors), annotator.errors
