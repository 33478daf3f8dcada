"""The manager's screens (API tokens, audit log, exports) in Chinese show no English UI text (issue 16: the
workspace in zh-Hans too): every English string of frontend/src/i18n/managerScreens.ts that differs from its
Chinese text is absent from the page, and the Chinese ones are there. Data (user names, the project slug, format
names such as "DICOM SEG") is not UI text and is not checked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import cast

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from accounts.services import api_token_create
from annotation.models import Project, Role
from tests.browser import panel_helpers
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

browsers = panel_helpers.browsers
FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


def _dictionaries() -> tuple[dict[str, str], dict[str, str]]:
    """The English and Chinese strings of the manager's screens, read from the app's source (one
    ``"key": "text",`` per line; the English object comes first)."""
    source = (FRONTEND / "src" / "i18n" / "managerScreens.ts").read_text(encoding="utf-8")
    english_part, chinese_part = source.split("export const zhHansManagerScreens", 1)
    entry = re.compile(r'^\s*"([\w.]+)": "((?:[^"\\]|\\.)*)",?$', re.MULTILINE)

    def parse(part: str) -> dict[str, str]:
        return {key: json.loads(f'"{value}"') for key, value in entry.findall(part)}

    english, chinese = parse(english_part), parse(chinese_part)
    assert english and english.keys() == chinese.keys()
    return english, chinese


def _visible_text(page: Page) -> str:
    return (
        page.locator("body").inner_text()
        + " "
        + " ".join(page.locator("input[placeholder]").evaluate_all("els => els.map(e => e.placeholder)"))
    )


# Latin words that are data or names, not UI text: the product, formats, standards, the header's language
# names, the user and project of this test, and the HTTP header a token is sent in.
NOT_UI_TEXT = {
    "MedLabel", "QA", "API", "English", "manager", "lung", "MONAI", "MSD", "NIfTI", "DICOM", "SEG", "COCO", "CSV",
    "JSON", "UID", "OHIF", "DICOMweb", "dicomweb-client", "Authorization", "Bearer", "PS3.15", "CT", "MR",
}  # fmt: skip


def _english_left(page: Page, english: dict[str, str], chinese: dict[str, str], data: tuple[str, ...]) -> list[str]:
    text = _visible_text(page)
    for value in data:
        text = text.replace(value, " ")
    # Any Latin word the page shows that is not data is English left in the Chinese UI.
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9.\-]*[A-Za-z0-9]", text))
    left = [f"word: {word!r}" for word in sorted(words - NOT_UI_TEXT)]
    for key, value in english.items():
        if value == chinese[key]:
            continue  # the same in both languages (e.g. "DICOM SEG")
        literal = re.sub(r"\{\w+\}", "", value).strip()
        if len(literal) >= 4 and re.search(rf"(?<![A-Za-z]){re.escape(literal)}(?![A-Za-z])", text):
            left.append(f"{key}: {literal!r}")
    return left


def test_tokens_audit_and_exports_screens_have_no_english_ui_text_in_chinese(
    browsers: panel_helpers.Browsers,
) -> None:
    english, chinese = _dictionaries()
    manager = cast(User, UserFactory(username="manager"))
    project = cast(Project, ProjectFactory(slug="lung", name="Lung"))
    MembershipFactory(project=project, user=manager, role=Role.MANAGER)
    token, _ = api_token_create(user=manager, name="脚本", expires_in_days=None)  # listed: state and dates too
    user_page = browsers.page_for(manager, language="zh-hans")
    user_page.page.set_default_navigation_timeout(60_000)
    checks = {
        "/account/tokens": chinese["tokens.title"],
        "/projects/lung/audit": chinese["audit.title"].replace("{project}", "lung"),
        "/projects/lung/exports": chinese["exports.title"].replace("{project}", "lung"),
    }
    for path, heading in checks.items():
        page = user_page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        expect(page.get_by_role("link", name=chinese["nav.tokens"])).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert _english_left(page, english, chinese, data=(token.prefix,)) == [], path
        panel_helpers.save_screenshot(page.screenshot(full_page=True), f"manager-zh{path.replace('/', '-')}", min_std=2)
    user_page.assert_no_console_errors()
