"""The label schema editor in Chromium against a live server (issue 16, item 3): a manager defines a schema through
the form (a box, a mask with two segments, an ordinal grade with a region attribute), sees the reader's form in the
preview, saves it, and the LabelSchema row holds exactly that definition; a second version's change shows in the
diff of the history; the JSON file exported is the stored one and a file imported is saved as it came; an invalid
number range is refused at its field, in the user's language, and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from annotation.labels import validate_schema
from annotation.models import LabelSchema, Project, Role
from tests.browser import panel_helpers, schema_flow
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

SLUG = "schema-editing"

LABELS: list[dict[str, Any]] = [
    {"key": "nodule", "kind": "box", "name": "Nodule", "name_zh": "结节", "instructions": "Draw one box per nodule"},
    {
        "key": "lesion_mask",
        "kind": "mask",
        "level": "series",
        "name": "Lesion mask",
        "name_zh": "病灶掩膜",
        "segments": [(1, "solid", "Solid part"), (2, "ground_glass", "Ground glass")],
    },
    {
        "key": "grade",
        "kind": "ordinal",
        "level": "study",
        "name": "Malignancy grade",
        "name_zh": "恶性程度",
        "required": True,
        "scale": [(1, "Benign"), (2, "Indeterminate"), (3, "Suspicious")],
    },
    {
        "key": "margin",
        "kind": "single_choice",
        "level": "region",
        "name": "Margin",
        "applies_to": ["nodule"],
        "choices": [("smooth", "Smooth"), ("spiculated", "Spiculated")],
    },
    {
        "key": "location",
        "kind": "multiple_choice",
        "level": "study",
        "name": "Location",
        "choices": [("lung", "Lung", [("left", "Left lung"), ("right", "Right lung")]), ("mediastinum", "Mediastinum")],
    },
]

# What the form above must store: written out by hand, normalised by the server's own validator.
EXPECTED = {
    "name": {"en": SLUG},
    "description": {},
    "labels": [
        {
            "key": "nodule", "name": {"en": "Nodule", "zh-hans": "结节"}, "level": "region", "kind": "box",
            "required": False, "instructions": {"en": "Draw one box per nodule"}, "dimensions": 2,
        },
        {
            "key": "lesion_mask", "name": {"en": "Lesion mask", "zh-hans": "病灶掩膜"}, "level": "series",
            "kind": "mask", "required": False, "instructions": {},
            "segments": [
                {"value": 1, "key": "solid", "name": {"en": "Solid part"}},
                {"value": 2, "key": "ground_glass", "name": {"en": "Ground glass"}},
            ],
        },
        {
            "key": "grade", "name": {"en": "Malignancy grade", "zh-hans": "恶性程度"}, "level": "study",
            "kind": "ordinal", "required": True, "instructions": {},
            "scale": [
                {"value": 1, "name": {"en": "Benign"}},
                {"value": 2, "name": {"en": "Indeterminate"}},
                {"value": 3, "name": {"en": "Suspicious"}},
            ],
        },
        {
            "key": "margin", "name": {"en": "Margin"}, "level": "region", "kind": "single_choice", "required": False,
            "instructions": {}, "applies_to": ["nodule"], "selectable": "leaves",
            "choices": [
                {"key": "smooth", "name": {"en": "Smooth"}, "children": []},
                {"key": "spiculated", "name": {"en": "Spiculated"}, "children": []},
            ],
        },
        {
            "key": "location", "name": {"en": "Location"}, "level": "study", "kind": "multiple_choice",
            "required": False, "instructions": {}, "selectable": "leaves", "min_selected": 0, "max_selected": None,
            "choices": [
                {
                    "key": "lung", "name": {"en": "Lung"},
                    "children": [
                        {"key": "left", "name": {"en": "Left lung"}, "children": []},
                        {"key": "right", "name": {"en": "Right lung"}, "children": []},
                    ],
                },
                {"key": "mediastinum", "name": {"en": "Mediastinum"}, "children": []},
            ],
        },
    ],
}  # fmt: skip

browsers = panel_helpers.browsers


@pytest.fixture
def managers(db: None) -> tuple[Project, User, User]:
    """A project without a schema, its manager (English) and a second manager who reads Chinese."""
    project = cast(Project, ProjectFactory(slug=SLUG, name="Schema editing"))
    manager = cast(User, UserFactory(username="schema_manager"))
    chinese = cast(User, UserFactory(username="schema_manager_zh"))
    for user in (manager, chinese):
        MembershipFactory(project=project, user=user, role=Role.MANAGER)
    return project, manager, chinese


def test_a_schema_defined_in_the_form_is_stored_exactly_and_versions_are_diffed(
    browsers: panel_helpers.Browsers, managers: tuple[Project, User, User], tmp_path: Path
) -> None:
    project, manager, _ = managers
    user_page = browsers.page_for(manager, language="en")
    page = user_page.goto(f"/projects/{SLUG}/schema")
    expect(page.get_by_role("heading", name=f"Label schema: {SLUG}")).to_be_visible()
    expect(page.get_by_text("This project has no schema yet.")).to_be_visible()

    version = schema_flow.define_schema(page, SLUG, labels=LABELS)
    assert version == 1
    stored = LabelSchema.objects.get(project=project, version=1)
    assert stored.definition == validate_schema(EXPECTED) == EXPECTED
    assert stored.created_by == manager
    assert LabelSchema.objects.filter(project=project).count() == 1

    # The preview is the reader's form: the grade as the reader's radio scale, the box as a tool asking the margin.
    preview = page.get_by_test_id("schema-preview")
    expect(preview.get_by_test_id("preview-study").get_by_label("2 · Indeterminate")).to_be_disabled()
    tool = preview.get_by_test_id("preview-tool-nodule")
    expect(tool).to_contain_text("Box tool")
    expect(tool.get_by_label("Margin")).to_be_visible()
    expect(preview.get_by_test_id("preview-tool-lesion_mask")).to_contain_text("Ground glass")
    # The hierarchy as the reader sees it: only the most specific choices can be ticked.
    location = preview.get_by_test_id("preview-study")
    expect(location.get_by_label("Left lung")).to_be_visible()
    expect(location.get_by_label("Mediastinum")).to_be_visible()
    expect(location.get_by_label("Lung", exact=True)).to_have_count(0)
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "schema-editor")

    # Version 2: a fourth grade and a renamed segment; the diff of the history names both changes.
    card = page.get_by_test_id("label-2")
    card.get_by_test_id("add-step-labels[2]").click()
    card.locator('[data-path="labels[2].scale[3].name"] input').first.fill("Malignant")
    page.get_by_test_id("label-1").locator('[data-path="labels[1].segments[1].name"] input').first.fill("GGO")
    assert schema_flow.save(page) == 2
    second = LabelSchema.objects.get(project=project, version=2).definition
    assert second["labels"][2]["scale"][3] == {"value": 4, "name": {"en": "Malignant"}}
    assert second["labels"][1]["segments"][1]["name"] == {"en": "GGO"}
    assert stored.definition == LabelSchema.objects.get(project=project, version=1).definition  # v1 unchanged

    diff = page.get_by_test_id("schema-diff")
    expect(diff).to_contain_text("Changes from version 1 to version 2")
    added = diff.get_by_test_id("diff-labels[grade].scale[4].name.en")
    expect(added).to_contain_text("Added")
    expect(added).to_contain_text("Malignant")
    changed = diff.get_by_test_id("diff-labels[lesion_mask].segments[ground_glass].name.en")
    expect(changed).to_contain_text("Ground glass")
    expect(changed).to_contain_text("GGO")
    expect(diff.locator("tbody tr")).to_have_count(3)  # the step's value, its name, the segment's name
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "schema-history-diff")

    # Export: the file is the stored definition. Import: a changed file is saved as it came.
    with page.expect_download() as info:
        page.get_by_role("button", name="Export JSON file").click()
    exported = json.loads(Path(str(info.value.path())).read_text(encoding="utf-8"))
    assert exported == second
    exported["labels"][0]["dimensions"] = 3
    file = tmp_path / "schema.json"
    file.write_text(json.dumps(exported), encoding="utf-8")
    page.get_by_test_id("schema-import").set_input_files(str(file))
    expect(page.get_by_test_id("schema-notice")).to_contain_text("Imported schema.json")
    expect(page.get_by_test_id("preview-tool-nodule")).to_contain_text("3D box tool")
    assert schema_flow.save(page) == 3
    assert LabelSchema.objects.get(project=project, version=3).definition == exported

    # The JSON view: broken JSON is refused where it is typed; an edit applied there is what is saved next.
    page.get_by_role("button", name="JSON", exact=True).click()
    editor = page.get_by_label("The schema as JSON (edit, then apply or save)")
    expect(editor).to_be_visible()
    assert json.loads(editor.input_value()) == exported
    editor.fill('{"name": "x", "labels": [')
    page.get_by_role("button", name="Apply JSON to the form").click()
    expect(page.get_by_test_id("json-problem")).to_contain_text("This is not valid JSON")
    edited = {**exported, "name": {"en": "Chest nodules", "zh-hans": "肺结节"}}
    editor.fill(json.dumps(edited))
    page.get_by_role("button", name="Apply JSON to the form").click()
    expect(page.locator('[data-path="name"] input').nth(1)).to_have_value("肺结节")
    assert LabelSchema.objects.filter(project=project).count() == 3  # applying is not saving
    assert schema_flow.save(page) == 4
    assert LabelSchema.objects.get(project=project, version=4).definition == edited
    user_page.assert_no_console_errors()


@pytest.mark.parametrize(
    ("language", "message"), [("en", "max 1 < min 10"), ("zh-hans", "最大值 1 小于最小值 10")], ids=["en", "zh-hans"]
)
def test_an_invalid_number_range_is_refused_at_its_field_and_nothing_is_stored(
    browsers: panel_helpers.Browsers, managers: tuple[Project, User, User], language: str, message: str
) -> None:
    project, manager, chinese = managers
    user = manager if language == "en" else chinese
    page = browsers.page_for(user, language=language).goto("/")
    schema_flow.open_editor(page, SLUG)
    schema_flow.add_label(page, {"key": "grade", "kind": "ordinal", "level": "study"})
    index = schema_flow.add_label(
        page, {"key": "diameter", "kind": "number", "level": "study", "unit": "mm", "min": 10, "max": 1}
    )
    page.get_by_test_id("schema-save").click()
    problem = page.get_by_test_id(f"error-labels[{index}].max")
    expect(problem).to_have_text(message)
    # At the field: inside the number's form, the maximum marked invalid.
    card = page.get_by_test_id(f"label-{index}")
    expect(card.locator(f'[data-path="labels[{index}].max"]')).to_have_class("field invalid")
    expect(card.get_by_test_id(f"error-labels[{index}].max")).to_be_visible()
    assert not LabelSchema.objects.filter(project=project).exists()
    if language == "zh-hans":
        panel_helpers.save_screenshot(page.screenshot(full_page=True), "schema-editor-refused-zh")

    # Corrected, it is saved.
    card.locator(f'[data-path="labels[{index}].max"] input').fill("30")
    assert schema_flow.save(page) == 1
    label = LabelSchema.objects.get(project=project).definition["labels"][index]
    assert (label["unit"], label["min"], label["max"]) == ("mm", 10, 30)
