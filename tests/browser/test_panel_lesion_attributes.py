"""The panel shows each reader's attribute values per lesion, side by side (issue 13, item 3), in Chromium.

The defect: two readers boxed different nodules (solid, 12 mm, left upper lobe, malignancy 3 against calcified,
8 mm, right lower lobe, malignancy 1), the case went to the panel, and the experts were never shown the values.
Here the two readings are submitted through the API; a seated expert opens the panel, in English and in
Chinese, and finds one table per lesion, named as the server's reasons number it, with one column per reading.
Every cell is checked against the stored readings (the AnnotationRevision items) and the schema's display
names; the lesion one reader did not find says so and each of its rows is marked.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Locator, Page, expect

from annotation.models import Annotation, AnnotationRevision, Assignment, Case, Project
from review.models import AgreementResult
from tests.annotation.conftest import chest_values
from tests.browser import panel_helpers
from tests.browser import test_panel_dashboard_jobs as panel_case
from tests.review.conftest import case_of, claim, save, set_policy

Browsers = panel_helpers.Browsers
save_screenshot = panel_helpers.save_screenshot

ROLES = ("first_reader", "second_reader")
NOT_FOUND = {"en": "not found", "zh-hans": "未发现"}


def different_nodules_case(slug: str, clients: dict[str, Client]) -> int:
    """The defect report's readings: each reader boxes one nodule, far from the other's, on another slice."""
    set_policy(clients["manager"], slug, panel_size=3, quorum=3)
    case_id = claim(clients["annotator"], slug, "first_reader")
    assert claim(clients["reviewer"], slug, "second_reader") == case_id
    case = case_of(case_id)
    first = chest_values(
        case,
        slice_index=3,
        geometry={"x": 10, "y": 10, "width": 8, "height": 8},
        nodule_type="solid",
        diameter=12.0,
        lobe="left_upper",
        malignancy=3,
    )
    second = chest_values(
        case,
        slice_index=5,
        geometry={"x": 40, "y": 40, "width": 8, "height": 8},
        nodule_type="calcified",
        diameter=8.0,
        lobe="right_lower",
        malignancy=1,
    )
    save(clients["annotator"], case_id, first, role="first_reader")
    save(clients["reviewer"], case_id, second, role="second_reader")
    assert Case.objects.get(pk=case_id).status == "in_panel"
    return case_id


def option_name(choices: list[dict[str, Any]], key: str, language: str) -> str | None:
    for choice in choices:
        if choice["key"] == key:
            return str(choice["name"][language])
        inner = option_name(choice.get("children") or [], key, language)
        if inner is not None:
            return inner
    return None


def in_words(label: dict[str, Any], value: Any, language: str) -> str:
    """A stored value as the panel must word it: the schema's option and scale names, a number with its unit."""
    if value is None:
        return "—"
    if label["kind"] == "single_choice":
        return option_name(label["choices"], value, language) or str(value)
    if label["kind"] == "ordinal":
        name = next(s["name"][language] for s in label["scale"] if s["value"] == value)
        return f"{value} ({name})" if language == "en" else f"{value}（{name}）"
    if label["kind"] == "number":
        return f"{value:g} {label['unit']}"
    return str(value)


def expected_tables(case_id: int, language: str) -> dict[int, list[list[str]]]:
    """Per lesion number of the stored matching: per attribute row, its name and each reading's value in words,
    from the readings as stored (AnnotationRevision items)."""
    result = AgreementResult.objects.filter(case_id=case_id).latest("created_at")
    matching = next(entry["matching"] for entry in result.labels if entry["key"] == "nodule_box")
    # The readings in the panel's column order: (the reader's name as the server matched them, the stored revision).
    readings: list[tuple[str, AnnotationRevision]] = []
    for role in ROLES:
        annotation = Annotation.objects.select_related("reader", "current_revision__schema").get(
            case_id=case_id, role=role
        )
        assert annotation.reader is not None and annotation.current_revision is not None
        readings.append((annotation.reader.username, annotation.current_revision))
    definition = readings[0][1].schema.definition
    attributes = [
        label
        for label in definition["labels"]
        if label["level"] == "region" and "nodule_box" in (label.get("applies_to") or [])
    ]
    numbers: set[int] = set()
    for reader, _ in readings:
        numbers |= set(matching["numbers"][reader].values())
    tables: dict[int, list[list[str]]] = {}
    for number in sorted(numbers):
        rows = []
        for label in attributes:
            row = [str(label["name"][language])]
            for reader, revision in readings:
                ids = [rid for rid, n in matching["numbers"][reader].items() if n == number]
                if not ids:
                    row.append(NOT_FOUND[language])
                    continue
                values = [
                    i["value"] for i in revision.items if i.get("region") == ids[0] and i["label"] == label["key"]
                ]
                row.append(in_words(label, values[0] if values else None, language))
            rows.append(row)
        tables[number] = rows
    return tables


def shown_rows(table: Locator) -> list[list[str]]:
    return [
        [cell.strip() for cell in row.locator("th, td").all_inner_texts()] for row in table.locator("tbody tr").all()
    ]


def lines_of(cell: Locator) -> int:
    return int(
        cell.evaluate(
            "cell => { const r = document.createRange(); r.selectNodeContents(cell);"
            " return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size; }"
        )
    )


def open_panel(page: Page, case_id: int) -> Locator:
    section = page.get_by_test_id("lesion-attributes")
    expect(section).to_be_visible(timeout=30_000)
    page.wait_for_selector('[data-testid="panel-viewer-first_reader"][data-first-image="true"]', timeout=30_000)
    return section


def test_the_panel_shows_each_readers_values_of_lesions_they_boxed_differently(
    live_server: Any,
    browsers: Browsers,
    reading_project: Project,
    users: dict[str, User],
    experts: dict[str, User],
    clients: dict[str, Client],
) -> None:
    case_id = different_nodules_case(reading_project.slug, clients)
    seated = sorted(
        Assignment.objects.filter(case_id=case_id, role="panel_member").values_list("user__username", flat=True)
    )
    result = AgreementResult.objects.filter(case_id=case_id).latest("created_at")
    matching = next(entry["matching"] for entry in result.labels if entry["key"] == "nodule_box")
    # The server matched neither box: two lesions, each found by one reader.
    assert matching["pairs"] == [] and sorted(len(ids) for ids in matching["unmatched"].values()) == [1, 1]

    by_name = {**users, **experts}
    for language, name in (("en", seated[0]), ("zh-hans", seated[1])):
        expert = browsers.page_for(by_name[name], language=language)
        page = expert.goto(f"/cases/{case_id}/panel")
        section = open_panel(page, case_id)
        expected = expected_tables(case_id, language)
        assert sorted(expected) == [1, 2], expected
        title = "Nodule bounding box {n}" if language == "en" else "结节包围框 {n}"
        heads = (
            ["Attribute", "First reading (annotator)", "Second reading (reviewer)"]
            if language == "en"
            else ["属性", "初读 (annotator)", "复读 (reviewer)"]
        )
        for number, rows in expected.items():
            table = section.get_by_test_id(f"lesion-attrs-nodule_box-{number}")
            expect(table.locator("caption")).to_contain_text(title.format(n=number))
            assert [h.strip() for h in table.locator("thead th").all_inner_texts()] == heads
            # Each reader's values, side by side, as stored.
            assert shown_rows(table) == rows, (number, shown_rows(table), rows)
            # Found by one reader only: every row of the lesion is marked, and the caption names the reader.
            finder = 2 if rows[0][1] == NOT_FOUND[language] else 1
            assert rows[0][3 - finder] == NOT_FOUND[language] and rows[0][finder] != NOT_FOUND[language]
            assert table.locator("tbody tr").evaluate_all("rows => rows.map((r) => r.dataset.mark)") == ["missing"] * 4
            expect(table.get_by_test_id("found-by")).to_contain_text(heads[finder])
        # The defect report's values are all there.
        text = section.inner_text()
        words = (
            [
                "Solid",
                "12 mm",
                "Left upper lobe",
                "3 (Indeterminate)",
                "Calcified",
                "8 mm",
                "Right lower lobe",
                "1 (Highly unlikely)",
            ]
            if language == "en"
            else ["实性", "12 mm", "左肺上叶", "3（不确定）", "钙化", "8 mm", "右肺下叶", "1（极不可能）"]
        )
        for word in words:
            assert word in text, (word, text)
        # Compact but readable: a name or value wraps between words at most, never inside one (so a Chinese
        # name, one word without spaces, never one character per line); attribute names not at all.
        for cell in section.locator("tbody th, tbody td").all():
            spaced = len(cell.inner_text().split())
            assert lines_of(cell) <= spaced, f"{cell.inner_text()!r} wraps onto {lines_of(cell)} lines"
        for cell in section.locator("tbody th").all():
            assert lines_of(cell) == 1, f"{cell.inner_text()!r} wraps onto {lines_of(cell)} lines"
        section.scroll_into_view_if_needed()
        save_screenshot(section.screenshot(), f"panel-lesion-attributes-{language}", min_std=4.0)
        save_screenshot(page.screenshot(full_page=True), f"panel-lesion-attributes-page-{language}")
        expert.assert_no_console_errors()


def test_a_lesion_both_readers_found_marks_only_the_attribute_that_differs(
    live_server: Any,
    browsers: Browsers,
    reading_project: Project,
    users: dict[str, User],
    experts: dict[str, User],
    clients: dict[str, Client],
) -> None:
    # The panel tests' disputed case: both readers box nodule 1 (diameters 6 and 9 mm), the reviewer a second.
    case_id = panel_case.disputed_case(reading_project.slug, clients)
    seated = sorted(
        Assignment.objects.filter(case_id=case_id, role="panel_member").values_list("user__username", flat=True)
    )
    expert = browsers.page_for({**users, **experts}[seated[0]], language="zh-hans")
    page = expert.goto(f"/cases/{case_id}/panel")
    section = open_panel(page, case_id)
    expected = expected_tables(case_id, "zh-hans")
    assert sorted(expected) == [1, 2], expected
    both = section.get_by_test_id("lesion-attrs-nodule_box-1")
    assert shown_rows(both) == expected[1]
    marks = dict(
        zip(
            both.locator("tbody tr").evaluate_all("rows => rows.map((r) => r.dataset.attribute)"),
            both.locator("tbody tr").evaluate_all("rows => rows.map((r) => r.dataset.mark)"),
            strict=True,
        )
    )
    # Only the diameter differs (6 against 9 mm); the lesion was found by both, so no "found by" note.
    assert marks == {"nodule_type": "same", "lobe": "same", "diameter": "differ", "malignancy": "same"}, marks
    assert [row[1:] for row in expected[1] if row[0] == "长径"] == [["6 mm", "9 mm"]]
    expect(both.get_by_test_id("found-by")).to_have_count(0)
    assert shown_rows(section.get_by_test_id("lesion-attrs-nodule_box-2")) == expected[2]
    section.scroll_into_view_if_needed()
    save_screenshot(section.screenshot(), "panel-lesion-attributes-matched-zh-hans", min_std=4.0)
    expert.assert_no_console_errors()
