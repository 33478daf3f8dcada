"""The project's AI assistance window in the viewer settings form (issue 17: the model-free engine's "HU window from
the schema's viewer settings"), in Chromium against a live server: a manager's reversed window is refused at its
field in words and nothing is stored; one end alone is said before anything is sent; a good window becomes the new
schema version's ``viewer.ai_window``, which the interactive API then uses (tests/inference/test_interactive_window).

Screenshot: $TEST_ARTIFACTS_DIR/ai-window-settings.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from annotation.models import LabelSchema
from tests.browser.test_reading_flow import SLUG, Session, artifacts
from tests.browser.test_reading_flow import base_url as base_url  # (fixture)
from tests.browser.test_reading_flow import browser as browser  # (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_manager_sets_the_ai_window_and_a_reversed_one_is_refused(browser: Browser, base_url: str) -> None:
    versions = LabelSchema.objects.filter(project__slug=SLUG).count()
    session = Session(browser, base_url, "manager")
    page = session.page
    page.goto(f"{base_url}/projects/{SLUG}/settings/viewer")
    section = page.get_by_test_id("viewer-ai-window")
    section.wait_for()
    save = page.get_by_role("button", name="Save viewer settings")
    error = page.get_by_test_id("viewer-settings-error")

    # One end alone: said in the form, nothing sent.
    section.get_by_label("Lower (HU)").fill("-400")
    save.click()
    error.wait_for()
    assert "Give both ends of the AI assistance window" in error.inner_text()
    assert section.get_by_label("Upper (HU)").get_attribute("aria-invalid") == "true"

    # Reversed: the server refuses it at its field, in words; nothing is stored.
    section.get_by_label("Lower (HU)").fill("400")
    section.get_by_label("Upper (HU)").fill("-400")
    save.click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=viewer-settings-error]')?.innerText.includes('must be above')"
    )
    text = error.inner_text()
    assert "viewer.ai_window.upper" in text and "the upper end (-400 HU) must be above the lower end (400 HU)" in text
    assert LabelSchema.objects.filter(project__slug=SLUG).count() == versions

    section.get_by_label("Lower (HU)").fill("-400")
    section.get_by_label("Upper (HU)").fill("400")
    save.click()
    page.get_by_test_id("viewer-settings-saved").wait_for()
    (artifacts() / "ai-window-settings.png").write_bytes(page.screenshot(full_page=True))
    session.close(expected_statuses=(400,))

    latest = LabelSchema.objects.filter(project__slug=SLUG).order_by("-version").first()
    assert latest is not None and latest.version == versions + 1
    assert latest.definition["viewer"]["ai_window"] == {"lower": -400, "upper": 400}
