"""The schema editor and the models screen in Chinese show no English UI text (issue 16: the workspace in zh-Hans
too): every English string of frontend/src/i18n/schemaModels.ts that differs from its Chinese text is absent from
the page, and no other Latin word is shown but data (label, choice and segment keys, field paths of the diff,
architecture and metric names, model labels)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import cast

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from annotation.labels import load_example_schema
from annotation.models import Project, Role
from annotation.services import schema_create_version
from inference.models import InferenceSettings
from tests.browser import panel_helpers
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.inference.conftest import TINY_PREPROCESSING, TINY_TRAINING, TINY_UNET, register_untrained

pytestmark = pytest.mark.django_db(transaction=True)

browsers = panel_helpers.browsers
FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
# Latin words that are not UI text: the product, the language names of the header, formats, the user and project.
WORD = r"[A-Za-z][A-Za-z0-9_.\-]*[A-Za-z0-9]"
NOT_UI_TEXT = {"MedLabel", "QA", "API", "English", "JSON", "CT", "mm", "lung", "schema_zh"}


def _dictionaries() -> tuple[dict[str, str], dict[str, str]]:
    source = (FRONTEND / "src" / "i18n" / "schemaModels.ts").read_text(encoding="utf-8")
    english_part, chinese_part = source.split("export const zhHansSchemaModels", 1)
    entry = re.compile(r'^\s*"([\w.]+)": "((?:[^"\\]|\\.)*)",?$', re.MULTILINE)

    def parse(part: str) -> dict[str, str]:
        return {key: json.loads(f'"{value}"') for key, value in entry.findall(part)}

    english, chinese = parse(english_part), parse(chinese_part)
    assert english and english.keys() == chinese.keys()
    return english, chinese


def _english_left(page: Page, english: dict[str, str], chinese: dict[str, str], data: set[str]) -> list[str]:
    # Field paths of the diff (<code>) are data; what the page says around them is not.
    text = page.evaluate(
        "() => { const body = document.body.cloneNode(true);"
        " body.querySelectorAll('code').forEach((e) => e.remove());"
        " document.documentElement.appendChild(body); const text = body.innerText; body.remove(); return text; }"
    )
    words = set(re.findall(WORD, text))
    left = [f"word: {word!r}" for word in sorted(words - NOT_UI_TEXT - data)]
    for key, value in english.items():
        if value == chinese[key]:
            continue
        literal = re.sub(r"\{\w+\}", "", value).strip(" :()")
        if literal in NOT_UI_TEXT:
            continue  # e.g. "English", the header's name of the language
        if len(literal) >= 4 and re.search(rf"(?<![A-Za-z]){re.escape(literal)}(?![A-Za-z])", text):
            left.append(f"{key}: {literal!r}")
    return left


def test_schema_editor_and_models_screen_have_no_english_ui_text_in_chinese(browsers: panel_helpers.Browsers) -> None:
    english, chinese = _dictionaries()
    manager = cast(User, UserFactory(username="schema_zh"))
    project = cast(Project, ProjectFactory(slug="lung", name="Lung"))
    MembershipFactory(project=project, user=manager, role=Role.MANAGER)
    definition = load_example_schema("chest_ct_nodules")
    schema_create_version(project=project, definition=definition, created_by=manager)
    changed = json.loads(json.dumps(definition))
    changed["labels"][0]["required"] = False
    schema_create_version(project=project, definition=changed, created_by=manager)  # a diff to show
    InferenceSettings.objects.create(
        project=project, architecture_params=TINY_UNET, preprocessing=TINY_PREPROCESSING, training_params=TINY_TRAINING
    )
    version = register_untrained(project)

    keys: set[str] = set()
    for label in definition["labels"]:
        keys.add(label["key"])
        keys.update(choice["key"] for choice in label.get("choices", ()))
        keys.update(segment["key"] for segment in label.get("segments", ()))
    user_page = browsers.page_for(manager, language="zh-hans")
    user_page.page.set_default_navigation_timeout(60_000)

    page = user_page.goto("/projects/lung/schema")
    expect(page.get_by_role("heading", name=chinese["schema.title"].replace("{project}", "lung"))).to_be_visible()
    expect(page.get_by_test_id("schema-diff")).to_be_visible()
    page.wait_for_load_state("networkidle")
    data = keys | {"v1", "v2"}
    left = _english_left(page, english, chinese, data)
    assert left == [], left
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "schema-editor-zh")

    page = user_page.goto("/projects/lung/models")
    expect(page.get_by_role("heading", name=chinese["models.title"].replace("{project}", "lung"))).to_be_visible()
    expect(page.get_by_test_id(f"model-{version.number}")).to_be_visible()
    page.wait_for_load_state("networkidle")
    data = {"v1", "unet", "segresnet", "densenet121", *re.findall(WORD, version.label)}
    left = _english_left(page, english, chinese, data)
    assert left == [], left
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "models-screen-zh")
    user_page.assert_no_console_errors()
