"""The case browser and the case page in Chromium (issue 16 item 6), checked against the database: filters are
applied by the server and list the cases the database holds for them; bulk distribute fills the selected cases
only; a reassignment moves the Assignment rows; the case page shows the case's timeline and opens the read-only
reader and the panel view."""

from __future__ import annotations

import json
import re
from typing import cast

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from annotation.models import Annotation, Assignment, Case, Role
from annotation.services import assignment_create
from review.gold import gold_case_mark
from review.services import reading_submit
from tests.annotation.conftest import chest_values
from tests.browser import panel_helpers
from tests.browser import test_manager_screens_chinese as chinese_check
from tests.factories import MembershipFactory, UserFactory
from tests.review import conftest as review_fixtures

pytestmark = pytest.mark.django_db(transaction=True)
SLUG = "nodules"
reading_cases = review_fixtures.reading_cases


def _shown_ids(page: Page) -> set[int]:
    return {
        int(x) for x in page.locator("[data-testid=case-row]").evaluate_all("rows => rows.map(r => r.dataset.case)")
    }


def test_filters_distribute_and_reassign_in_the_case_browser(
    browsers: panel_helpers.Browsers, users: dict[str, User], reading_cases: list[Case]
) -> None:
    a, b, c = reading_cases
    project = a.project
    annotator2 = cast(User, UserFactory(username="annotator2"))
    MembershipFactory(project=project, user=annotator2, role=Role.ANNOTATOR)
    Case.objects.filter(pk=a.pk).update(priority=3.0)
    gold_case_mark(case=c, marked_by=users["manager"], values=chest_values(c))

    manager = browsers.page_for(users["manager"])
    page = manager.goto(f"/projects/{SLUG}/cases")
    expect(page.get_by_test_id("case-count")).to_have_text("Cases: 3")

    # Gold only: what the database holds as gold cases.
    page.get_by_label("Gold", exact=True).select_option("true")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("case-count")).to_have_text("Cases: 1")
    assert _shown_ids(page) == set(
        Case.objects.filter(project=project, gold__isnull=False).values_list("pk", flat=True)
    )
    expect(page.get_by_test_id("gold-badge")).to_have_count(1)

    # Distribute first readings to the two selected non-gold cases only.
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Gold", exact=True).select_option("false")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("case-count")).to_have_text("Cases: 2")
    page.get_by_label(f"Select case {a.pk}").check()
    page.get_by_label(f"Select case {b.pk}").check()
    page.get_by_label("Reading role to fill").select_option("first_reader")
    page.get_by_role("button", name="Distribute").click()
    expect(page.get_by_role("status")).to_have_text("2 assignment(s) made.")
    made = dict(Assignment.objects.filter(role="first_reader").values_list("case_id", "user__username"))
    assert set(made) == {a.pk, b.pk} and sorted(made.values()) == ["annotator", "annotator2"]  # balanced
    assert not Assignment.objects.filter(case=c).exists()

    # The reader filter: the cases the database has for that reader.
    held_by_annotator = {case_id for case_id, name in made.items() if name == "annotator"}
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Reader", exact=True).fill("annotator")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("case-count")).to_have_text("Cases: 1")
    assert _shown_ids(page) == held_by_annotator
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "case-browser")

    # Reassign the annotator's case to annotator2... who already reads the other one: first refused, nothing moves.
    other = ({a.pk, b.pk} - held_by_annotator).pop()
    mine = held_by_annotator.copy().pop()
    page.get_by_role("button", name="Clear").click()
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("case-count")).to_have_text("Cases: 3")
    page.get_by_label(f"Select case {mine}").check()
    page.get_by_label(f"Select case {other}").check()
    page.get_by_label("From reader").fill("annotator")
    page.get_by_label("To reader").fill("annotator2")
    page.get_by_role("button", name="Reassign").click()
    expect(page.get_by_role("alert")).to_contain_text(f"annotator holds no reading of case(s) {other}")
    assert Assignment.objects.get(case_id=mine, role="first_reader").user.username == "annotator"
    page.get_by_label(f"Select case {other}").uncheck()
    page.get_by_role("button", name="Reassign").click()
    expect(page.get_by_role("status")).to_have_text("1 reading(s) handed over.")
    moved = Assignment.objects.select_related("user", "assigned_by").get(case_id=mine, role="first_reader")
    assert moved.user.username == "annotator2" and moved.how == "manual"
    assert moved.assigned_by is not None and moved.assigned_by.username == "manager"
    expect(page.locator(f"[data-testid=case-row][data-case='{mine}']")).to_contain_text("annotator2")
    # The refused reassignment is the one failed request the browser logs.
    assert [e for e in manager.errors if "status of 409" not in e] == [], manager.errors


def test_case_page_shows_the_timeline_and_opens_the_reader_and_the_panel(
    browsers: panel_helpers.Browsers, users: dict[str, User], reading_cases: list[Case]
) -> None:
    case = reading_cases[0]
    for name, role in (("annotator", "first_reader"), ("reviewer", "second_reader")):
        assignment_create(case=case, user=users[name], role=role, assigned_by=users["manager"])
    reading_submit(
        case=case, reader=users["annotator"], role="first_reader", base_revision=0, values=chest_values(case)
    )
    reading_submit(
        case=case,
        reader=users["reviewer"],
        role="second_reader",
        base_revision=0,
        values=chest_values(case, nodule_present="no", box=False),
    )
    case.refresh_from_db()

    manager = browsers.page_for(users["manager"], language="zh-hans")
    page = manager.goto(f"/projects/{SLUG}/cases")
    page.locator(f"[data-testid=case-row][data-case='{case.pk}']").get_by_role("link", name=str(case.pk)).click()
    expect(page.get_by_role("heading", name=f"病例 {case.pk}")).to_be_visible()
    events = list(case.events.order_by("created_at", "pk").values_list("to_status", flat=True))
    expect(page.get_by_test_id("case-event")).to_have_count(len(events))
    assert events[-1] == case.status
    expect(page.get_by_test_id("case-status")).to_have_text(
        {"disputed": "有分歧", "in_panel": "专家组审议中"}.get(case.status, case.status)
    )
    expect(page.get_by_test_id("case-agreement")).to_have_text("不一致")
    expect(page.get_by_test_id("case-reading")).to_have_count(2)
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "case-page-zh")
    # "Open in the reader" opens the reading submitted last, read-only (never a reading of the manager's own).
    last = Annotation.objects.filter(case=case, submitted_at__isnull=False).latest("submitted_at")
    assert last.reader == users["reviewer"]
    assert page.get_by_test_id("open-reader").get_attribute("href") == (
        f"/cases/{case.pk}/read?reading={last.pk}&project={SLUG}"
    )
    page.get_by_test_id("open-panel").click()
    page.wait_for_url(f"**/cases/{case.pk}/panel?project={SLUG}")


def _case_browser_dictionaries() -> tuple[dict[str, str], dict[str, str]]:
    source = (chinese_check.FRONTEND / "src" / "i18n" / "caseBrowser.ts").read_text(encoding="utf-8")
    english_part, chinese_part = source.split("export const zhHansCaseBrowser", 1)
    entry = re.compile(r'^\s*"([\w.]+)": "((?:[^"\\]|\\.)*)",?$', re.MULTILINE)

    def parse(part: str) -> dict[str, str]:
        return {key: json.loads(f'"{value}"') for key, value in entry.findall(part)}

    english, chinese = parse(english_part), parse(chinese_part)
    assert english and english.keys() == chinese.keys()
    return english, chinese


def test_case_browser_case_page_and_policy_screen_have_no_english_ui_text_in_chinese(
    browsers: panel_helpers.Browsers, users: dict[str, User], reading_cases: list[Case]
) -> None:
    english, chinese = _case_browser_dictionaries()
    case = reading_cases[0]
    assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=users["manager"])
    reading_submit(
        case=case, reader=users["annotator"], role="first_reader", base_revision=0, values=chest_values(case)
    )
    gold_case_mark(case=reading_cases[1], marked_by=users["manager"], values=chest_values(reading_cases[1]))
    data = (
        SLUG,
        "annotator",
        "manager",
        "Nodule reading",
        *(c.study.patient_id for c in reading_cases),
        # "AI 评分", "掩膜 Dice", "框 IoU": Chinese UIs write these names of methods and metrics in Latin letters.
        "AI",
        "Dice",
        "IoU",
    )
    manager = browsers.page_for(users["manager"], language="zh-hans")
    checks = {
        f"/projects/{SLUG}/cases": chinese["cases.title"].replace("{project}", SLUG),
        f"/cases/{case.pk}?project={SLUG}": chinese["case.title"].replace("{id}", str(case.pk)),
        f"/cases/{reading_cases[1].pk}?project={SLUG}": chinese["case.title"].replace("{id}", str(reading_cases[1].pk)),
        f"/projects/{SLUG}/settings/review": chinese["policy.title"].replace("{project}", SLUG),
    }
    for path, heading in checks.items():
        page = manager.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert chinese_check._english_left(page, english, chinese, data=data) == [], path
        name = path.split("?")[0].replace("/", "-")
        panel_helpers.save_screenshot(page.screenshot(full_page=True), f"case-browser-zh{name}", min_std=2)
