"""Browser steps of the label schema editor (/projects/<slug>/schema), for tests that need a schema made the way a
manager makes one: ``define_schema(page, slug, labels=[...])`` fills the editor's form label by label and saves
it as a new version, returning the version number the server gave it.

The steps find the form's fields by their schema path (``data-path="labels[2].scale[0].value"``) and the editor's
buttons by test id, so they work whatever the page's language. A label is a dict:

- ``key``, ``kind`` (labels.py KINDS), ``level`` (default: study for value kinds, region for drawings, series
  for masks), ``name`` and ``name_zh``, ``instructions`` and ``instructions_zh``, ``required`` (bool);
- ``choices``: ``[(key, name), ...]`` for single and multiple choice, ``(key, name, [sub-choices])`` for a
  hierarchy, with ``selectable`` ("leaves" or "any"); ``scale``: ``[(value, name), ...]`` for an
  ordinal grade; ``segments``: ``[(value, key, name), ...]`` for a mask; ``unit``, ``min``, ``max``, ``integer``
  for a number; ``dimensions`` (2 or 3) for a box; ``applies_to``: ``[key, ...]`` for a region attribute.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

GEOMETRY = ("box", "polygon", "point")


def _field(card: Locator, path: str, nth: int = 0) -> Locator:
    """The nth input (or select, textarea) of the form field at a schema path."""
    return card.locator(f'[data-path="{path}"]').first.locator("input, select, textarea").nth(nth)


def _fill_texts(card: Locator, path: str, en: str | None, zh: str | None) -> None:
    if en is not None:
        _field(card, path, 0).fill(en)
    if zh is not None:
        _field(card, path, 1).fill(zh)


def _rows(card: Locator, testid_prefix: str) -> int:
    return card.locator(f'[data-testid^="{testid_prefix}"]').count()


def _set_count(card: Locator, path: str, what: str, wanted: int) -> None:
    """Add or remove rows (steps, segments) until there are ``wanted``."""
    while (have := _rows(card, f"{what}-{path}-")) < wanted:
        card.get_by_test_id(f"add-{what}-{path}").click()
        expect(card.locator(f'[data-testid="{what}-{path}-{have}"]')).to_be_visible()
    while (have := _rows(card, f"{what}-{path}-")) > wanted:
        card.get_by_test_id(f"remove-{what}-{path}-{have - 1}").click()
        expect(card.locator(f'[data-testid="{what}-{path}-{have - 1}"]')).to_have_count(0)


def _choice_count(card: Locator, path: str) -> int:
    count = 0
    while card.get_by_test_id(f"choice-{path}[{count}]").count():
        count += 1
    return count


def _fill_choices(card: Locator, path: str, choices: list[Any], *, add: str) -> None:
    """Make the choice list at ``path`` hold ``choices``: ``(key, name)`` or ``(key, name, [children...])``."""
    while (have := _choice_count(card, path)) < len(choices):
        card.get_by_test_id(add).click()
        expect(card.get_by_test_id(f"choice-{path}[{have}]")).to_be_visible()
    while (have := _choice_count(card, path)) > len(choices):
        card.get_by_test_id(f"remove-choice-{path}[{have - 1}]").click()
        expect(card.get_by_test_id(f"choice-{path}[{have - 1}]")).to_have_count(0)
    for position, (key, name, *rest) in enumerate(choices):
        here = f"{path}[{position}]"
        _field(card, f"{here}.key").fill(key)
        _fill_texts(card, f"{here}.name", name, None)
        if rest and rest[0]:
            # The first sub-choice comes from the choice's own button, the next ones from the list's.
            if not _choice_count(card, f"{here}.children"):
                card.get_by_test_id(f"add-child-{here}").click()
            _fill_choices(card, f"{here}.children", rest[0], add=f"add-choice-{here}.children")


def open_editor(page: Page, slug: str) -> None:
    """Go to the editor (the page must already be on the app, e.g. signed in at "/")."""
    origin = page.evaluate("location.origin")
    page.goto(f"{origin}/projects/{slug}/schema")
    expect(page.get_by_test_id("schema-save")).to_be_visible()


def fill_label(page: Page, index: int, spec: dict[str, Any]) -> None:
    """Fill the form of the label at ``index`` (already on the page) from a spec (see the module's docstring)."""
    card = page.get_by_test_id(f"label-{index}")
    path = f"labels[{index}]"
    kind = spec["kind"]
    _field(card, f"{path}.kind").select_option(kind)
    default_level = "region" if kind in GEOMETRY else "series" if kind == "mask" else "study"
    _field(card, f"{path}.level").select_option(spec.get("level", default_level))
    _field(card, f"{path}.key").fill(spec["key"])
    _fill_texts(card, f"{path}.name", spec.get("name"), spec.get("name_zh"))
    _fill_texts(card, f"{path}.instructions", spec.get("instructions"), spec.get("instructions_zh"))
    required = _field(card, f"{path}.required")
    if spec.get("required", False) != required.is_checked():
        required.click()
    for target in spec.get("applies_to", ()):
        box = card.get_by_test_id(f"applies-{path}-{target}")
        if not box.is_checked():
            box.click()
    if kind in ("single_choice", "multiple_choice") and "choices" in spec:
        _fill_choices(card, f"{path}.choices", spec["choices"], add=f"add-choice-{path}.choices")
        if "selectable" in spec:
            _field(card, f"{path}.selectable").select_option(spec["selectable"])
    if kind == "ordinal" and "scale" in spec:
        _set_count(card, path, "step", len(spec["scale"]))
        for position, (value, name) in enumerate(spec["scale"]):
            _field(card, f"{path}.scale[{position}].value").fill(str(value))
            _fill_texts(card, f"{path}.scale[{position}].name", name, None)
    if kind == "mask" and "segments" in spec:
        _set_count(card, path, "segment", len(spec["segments"]))
        for position, (value, key, name) in enumerate(spec["segments"]):
            _field(card, f"{path}.segments[{position}].value").fill(str(value))
            _field(card, f"{path}.segments[{position}].key").fill(key)
            _fill_texts(card, f"{path}.segments[{position}].name", name, None)
    if kind == "number":
        for name in ("unit", "min", "max"):
            if name in spec:
                _field(card, f"{path}.{name}").fill("" if spec[name] is None else str(spec[name]))
        if "integer" in spec and spec["integer"] != _field(card, f"{path}.integer").is_checked():
            _field(card, f"{path}.integer").click()
    if kind == "box" and "dimensions" in spec:
        _field(card, f"{path}.dimensions").select_option(str(spec["dimensions"]))


def add_label(page: Page, spec: dict[str, Any]) -> int:
    """Add a label at the end of the form and fill it; returns its index."""
    index = page.locator('[data-testid^="label-"][data-key]').count()
    page.get_by_test_id("add-label").click()
    expect(page.get_by_test_id(f"label-{index}")).to_be_visible()
    fill_label(page, index, spec)
    return index


def remove_all_labels(page: Page) -> None:
    while (count := page.locator('[data-testid^="label-"][data-key]').count()) > 0:
        page.get_by_test_id(f"remove-labels[{count - 1}]").click()
        expect(page.get_by_test_id(f"label-{count - 1}")).to_have_count(0)


def save(page: Page) -> int:
    """Save the editor's schema as a new version; returns the version the server made (fails on a refusal)."""
    page.get_by_test_id("schema-save").click()
    notice = page.get_by_test_id("schema-notice").and_(page.locator("[data-saved-version]"))
    refused = page.get_by_test_id("save-error")
    expect(notice.or_(refused)).to_be_visible()
    assert not refused.is_visible(), refused.inner_text()
    return int(notice.get_attribute("data-saved-version") or 0)


def define_schema(
    page: Page,
    slug: str,
    *,
    labels: list[dict[str, Any]],
    name: str | None = None,
    name_zh: str | None = None,
    replace: bool = True,
) -> int:
    """Open the schema editor of ``slug``, define ``labels`` through its form (after removing the labels of the
    latest version when ``replace``), save, and return the new version's number."""
    open_editor(page, slug)
    card = page.locator("body")
    if name is not None:
        _fill_texts(card, "name", name, name_zh)
    if replace:
        remove_all_labels(page)
    for spec in labels:
        add_label(page, spec)
    return save(page)
