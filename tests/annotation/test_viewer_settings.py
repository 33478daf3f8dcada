"""Per-project viewer settings (issue 15 item 7): the `viewer` section of a label schema version (W/L presets,
layout, enabled tools, hotkeys, the series that opens first), checked by annotation/labels.py when a manager
saves a schema version through the API. A refusal names the field in the user's language and stores nothing;
a schema without `viewer` is stored exactly as before."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import load_example_schema
from annotation.models import LabelSchema, Project, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.i18n import assert_chinese

API = "/api/v1"
JSON = "application/json"
SLUG = "viewer-settings"

VIEWER: dict[str, Any] = {
    "presets": [
        {"key": "lung", "name": {"en": "Lung", "zh-hans": "肺窗"}, "width": 1600, "center": -550},
        {"key": "soft", "name": "Soft tissue", "width": 400, "center": 40},
    ],
    "layout": "mpr_1x3",
    "tools": ["zoom", "windowLevel", "box", "length"],
    "hotkeys": {"box": "x", "zoom": "Q"},
    "first_series": {"description": "axial", "modality": "ct"},
}


@pytest.fixture
def manager(db: None) -> Client:
    project = cast(Project, ProjectFactory(slug=SLUG, name="Viewer settings"))
    user = cast(User, UserFactory(username="vs-manager"))
    MembershipFactory(project=project, user=user, role=Role.MANAGER)
    client = Client()
    client.force_login(user)
    return client


def with_viewer(viewer: Any) -> dict[str, Any]:
    definition = load_example_schema("chest_ct_nodules")
    definition["viewer"] = copy.deepcopy(viewer)
    return definition


def post(client: Client, definition: Any, language: str = "en") -> Any:
    return client.post(
        f"{API}/projects/{SLUG}/schemas/", {"definition": definition}, content_type=JSON, HTTP_ACCEPT_LANGUAGE=language
    )


def test_a_valid_viewer_section_is_stored_normalised_with_the_version(manager: Client) -> None:
    response = post(manager, with_viewer(VIEWER))
    assert response.status_code == 201, response.content
    stored = LabelSchema.objects.get(project__slug=SLUG, version=response.json()["version"])
    assert stored.definition["viewer"] == {
        "presets": [
            {"key": "lung", "name": {"en": "Lung", "zh-hans": "肺窗"}, "width": 1600, "center": -550},
            {"key": "soft", "name": {"en": "Soft tissue"}, "width": 400, "center": 40},
        ],
        "layout": "mpr_1x3",
        # In the toolbar's order; keys lower-case; the modality upper-case.
        "tools": ["windowLevel", "zoom", "box", "length"],
        "hotkeys": {"zoom": "q", "box": "x"},
        "first_series": {"description": "axial", "modality": "CT"},
    }
    assert response.json()["definition"]["viewer"] == stored.definition["viewer"]
    # Saved again as returned, it is the same (normalising is idempotent).
    again = post(manager, stored.definition)
    assert again.status_code == 201
    assert LabelSchema.objects.get(project__slug=SLUG, version=again.json()["version"]).definition == stored.definition


def test_a_schema_without_viewer_is_stored_as_before(manager: Client) -> None:
    response = post(manager, load_example_schema("chest_ct_nodules"))
    assert response.status_code == 201
    stored = LabelSchema.objects.get(project__slug=SLUG)
    assert set(stored.definition) == {"name", "description", "labels"}
    assert "viewer" not in response.json()["definition"]


def test_an_empty_viewer_section_is_kept_empty(manager: Client) -> None:
    response = post(manager, with_viewer({}))
    assert response.status_code == 201
    assert LabelSchema.objects.get(project__slug=SLUG).definition["viewer"] == {}


def _bad(change: Any) -> dict[str, Any]:
    viewer = copy.deepcopy(VIEWER)
    change(viewer)
    return viewer


@pytest.mark.parametrize(
    ("viewer", "field", "reason"),
    [
        ([], "viewer", "expected the viewer settings (an object), got a list"),
        ({"colour": "red"}, "viewer.colour", "unknown field for the viewer settings"),
        (_bad(lambda v: v.update(layout="grid")), "viewer.layout", "unknown layout 'grid'"),
        (_bad(lambda v: v["presets"][1].update(width=0)), "viewer.presets[1].width", "must be > 0"),
        (_bad(lambda v: v["presets"][1].pop("center")), "viewer.presets[1].center", "required"),
        (_bad(lambda v: v["presets"][1].update(key="lung")), "viewer.presets[1].key", "'lung' listed twice"),
        (_bad(lambda v: v["presets"][0].update(center="high")), "viewer.presets[0].center", "expected a finite number"),
        (_bad(lambda v: v["tools"].append("polygon")), "viewer.tools[4]", "no label for the tool polygon"),
        (_bad(lambda v: v["tools"].append("laser")), "viewer.tools[4]", "unknown tool 'laser'"),
        (_bad(lambda v: v["hotkeys"].update(brush="r")), "viewer.hotkeys.brush", "brush is not enabled"),
        (_bad(lambda v: v["hotkeys"].update(length="x")), "viewer.hotkeys.length", "'x' is already the key of box"),
        # The project's key for box collides with zoom's default (Z), which the project kept.
        (_bad(lambda v: v.update(hotkeys={"box": "z"})), "viewer.hotkeys.box", "'z' is already the key of zoom"),
        (_bad(lambda v: v["hotkeys"].update(box="?")), "viewer.hotkeys.box", "reader's own (the list of shortcuts)"),
        (_bad(lambda v: v["hotkeys"].update(box="ArrowDown")), "viewer.hotkeys.box", "reader's own (the next slice)"),
        (_bad(lambda v: v["hotkeys"].update(box="Ctrl+Z")), "viewer.hotkeys.box", "expected a single key"),
        (_bad(lambda v: v.update(first_series={})), "viewer.first_series", "description, a modality or both"),
        (_bad(lambda v: v.update(first_series={"modality": "C T"})), "viewer.first_series.modality", "DICOM modality"),
    ],
    ids=[
        "not-an-object",
        "unknown-field",
        "unknown-layout",
        "zero-width",
        "no-center",
        "duplicate-preset",
        "center-not-a-number",
        "tool-without-label",
        "unknown-tool",
        "hotkey-of-disabled-tool",
        "duplicate-hotkey",
        "hotkey-of-a-default",
        "reserved-help-key",
        "reserved-slice-key",
        "not-a-single-key",
        "empty-first-series",
        "bad-modality",
    ],
)
def test_an_invalid_viewer_section_is_400_naming_the_field_and_stores_nothing(
    manager: Client, viewer: Any, field: str, reason: str
) -> None:
    response = post(manager, with_viewer(viewer))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == field, body
    assert body["detail"].startswith(f"{field}: ") and reason in body["detail"], body
    assert not LabelSchema.objects.filter(project__slug=SLUG).exists()


def test_a_refused_viewer_section_is_explained_in_chinese(manager: Client) -> None:
    cases = [
        _bad(lambda v: v["tools"].append("polygon")),
        _bad(lambda v: v["hotkeys"].update(length="x")),
        _bad(lambda v: v["hotkeys"].update(box="?")),
        _bad(lambda v: v.update(layout="grid")),
    ]
    reasons = []
    for viewer in cases:
        response = post(manager, with_viewer(viewer), language="zh-hans")
        assert response.status_code == 400
        body = response.json()
        reasons.append(body["detail"].removeprefix(f"{body['field']}: "))
    # Tool names, keys and layouts are data (the reader shows them as they are).
    assert_chinese(reasons, data=["polygon", "x", "box", "grid", "stack", "mpr_1x3", "mpr_2x2"])
    assert not LabelSchema.objects.filter(project__slug=SLUG).exists()
