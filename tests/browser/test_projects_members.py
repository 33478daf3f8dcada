"""The projects and members screens in Chromium (issue 16, item 2), checked against the database: an administrator
creates a project (the Project row, with its PACS source; the creator its manager), adds a member, changes their
role and creates a user; a manager (not an administrator) is refused user creation and sees no "New project"; a
refused change is explained in the user's language (Chinese here) and changes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from annotation.models import Membership, Project, Role
from annotation.services import assignment_create
from imaging.models import DicomSource
from tests.annotation import conftest as annotation_fixtures
from tests.browser import manager_flow, panel_helpers
from tests.browser import test_manager_screens_chinese as chinese_check
from tests.factories import DicomSourceFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

admin = annotation_fixtures.admin
FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


def assert_only_refusals_logged(user_page: panel_helpers.UserPage) -> None:
    """The browser logs each 4xx answer as a console error; the refusals these tests provoke are expected, any
    other error is not."""
    unexpected = [e for e in user_page.errors if "the server responded with a status of 40" not in e]
    assert unexpected == [], unexpected


reading_cases = annotation_fixtures.reading_cases


def test_an_administrator_creates_a_project_and_manages_its_members(
    browsers: panel_helpers.Browsers, admin: User, users: dict[str, User]
) -> None:
    source = cast(DicomSource, DicomSourceFactory(name="ward-pacs"))
    user_page = browsers.page_for(admin)
    page = user_page.goto("/")
    card = manager_flow.create_project(
        page, slug="lung-ct", name="Lung CT", modality="CT", description="Screening", pacs_source="ward-pacs"
    )
    expect(card.get_by_text("Manager", exact=True)).to_be_visible()
    project = Project.objects.get(slug="lung-ct")
    assert (project.name, project.modality, project.description, project.dicom_source) == (
        "Lung CT",
        "CT",
        "Screening",
        source,
    )
    assert list(Membership.objects.filter(project=project).values_list("user__username", "role")) == [
        ("admin", "manager")
    ]
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "projects-created")

    # A project with that short name exists: the server's reason, nothing created.
    page.get_by_role("button", name="New project").click()
    form = page.get_by_role("form", name="New project")
    form.get_by_label("Name", exact=True).fill("Again")
    form.get_by_label("Short name (in URLs)").fill("lung-ct")
    form.get_by_role("button", name="Create project").click()
    expect(form.get_by_role("alert")).to_contain_text("lung-ct")
    assert Project.objects.filter(slug="lung-ct").count() == 1 and not Project.objects.filter(name="Again").exists()

    row = manager_flow.add_member(page, "lung-ct", "annotator", "annotator")
    membership = Membership.objects.get(project=project, user=users["annotator"])
    assert membership.role == "annotator"
    expect(row.get_by_test_id("assigned")).to_have_text("0")
    manager_flow.change_role(page, "lung-ct", "annotator", "annotator", "reviewer")
    expect(page.get_by_role("status")).to_contain_text("annotator is now Reviewer")
    membership.refresh_from_db()
    assert membership.role == "reviewer"

    manager_flow.create_user(page, "lung-ct", "radiologist7", "a-long-Passw0rd!", first_name="Mei", last_name="Li")
    created = User.objects.get(username="radiologist7")
    assert created.check_password("a-long-Passw0rd!") and not created.is_staff and created.get_full_name() == "Mei Li"
    manager_flow.add_member(page, "lung-ct", "radiologist7", "expert")
    assert Membership.objects.filter(project=project, user=created, role="expert").exists()
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "members")

    manager_flow.remove_member(page, "lung-ct", "radiologist7", "expert")
    expect(page.get_by_role("status")).to_contain_text("radiologist7 removed")
    assert not Membership.objects.filter(project=project, user=created).exists()

    # Archive: the project leaves the list (nothing deleted), and comes back.
    manager_flow.open_screen(page, "/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("project-lung-ct").get_by_role("button", name="Archive").click()
    expect(page.get_by_test_id("project-lung-ct")).to_have_count(0)
    project.refresh_from_db()
    assert project.archived_at is not None
    page.get_by_label("Show archived projects").check()
    page.get_by_test_id("archived-lung-ct").get_by_role("button", name="Bring back").click()
    expect(page.get_by_test_id("project-lung-ct")).to_be_visible()
    project.refresh_from_db()
    assert project.archived_at is None and Membership.objects.filter(project=project).count() == 2
    assert_only_refusals_logged(user_page)


def test_a_manager_sees_workloads_and_is_refused_what_is_not_theirs_in_chinese(
    browsers: panel_helpers.Browsers, reading_cases: list[Any], users: dict[str, User]
) -> None:
    project = reading_cases[0].project
    manager = users["manager"]
    for case in reading_cases[:2]:
        assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=manager)
    user_page = browsers.page_for(manager, language="zh-hans")
    page = user_page.goto("/")
    card = page.get_by_test_id(f"project-{project.slug}")
    expect(card.get_by_role("link", name="成员")).to_be_visible()
    expect(page.get_by_role("button", name="新建项目")).to_have_count(0)  # only administrators create projects

    card.get_by_role("link", name="成员").click()
    expect(page.get_by_role("heading", name=f"成员：{project.slug}")).to_be_visible()
    row = page.get_by_test_id("member-annotator-annotator")
    expect(row.get_by_test_id("assigned")).to_have_text("2")
    expect(row.get_by_test_id("done")).to_have_text("0")
    expect(page.get_by_role("form", name="创建用户（管理员）")).to_have_count(0)
    panel_helpers.save_screenshot(page.screenshot(full_page=True), "members-zh-hans")

    # The only manager stepping down: refused, in Chinese, and the role stays.
    page.get_by_test_id("member-manager-manager").get_by_role("combobox").select_option("annotator")
    expect(page.get_by_role("alert")).to_contain_text("是该项目唯一的项目经理")
    assert Membership.objects.filter(project=project, user=manager, role="manager").exists()
    expect(page.get_by_test_id("member-manager-manager")).to_be_visible()

    # Creating a user is for administrators: the server refuses the manager (the screen offers no form).
    answer = page.evaluate(
        """async () => {
            const token = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
            const response = await fetch("/api/v1/users/", {
                method: "POST",
                headers: {"Content-Type": "application/json", "X-CSRFToken": token},
                body: JSON.stringify({username: "sneaky", password: "a-long-Passw0rd!"}),
            });
            return {status: response.status, body: await response.json()};
        }"""
    )
    assert answer["status"] == 403 and answer["body"]["detail"] == "只有管理员可以创建用户。"
    assert not User.objects.filter(username="sneaky").exists()
    assert_only_refusals_logged(user_page)


def _projects_data_dictionaries() -> tuple[dict[str, str], dict[str, str]]:
    """The English and Chinese strings of frontend/src/i18n/projectsData.ts (one ``"key": "text",`` per line)."""
    source = (FRONTEND / "src" / "i18n" / "projectsData.ts").read_text(encoding="utf-8")
    english_part, chinese_part = source.split("export const zhHansProjectsData", 1)
    entry = re.compile(r'^\s*"([\w.]+)": "((?:[^"\\]|\\.)*)",?$', re.MULTILINE)

    def parse(part: str) -> dict[str, str]:
        return {key: json.loads(f'"{value}"') for key, value in entry.findall(part)}

    english, chinese = parse(english_part), parse(chinese_part)
    assert english and english.keys() == chinese.keys()
    return english, chinese


def test_projects_members_and_data_screens_have_no_english_ui_text_in_chinese(
    browsers: panel_helpers.Browsers,
) -> None:
    english, chinese = _projects_data_dictionaries()
    manager = cast(User, UserFactory(username="manager"))
    reader = cast(User, UserFactory(username="reader"))
    source = cast(DicomSource, DicomSourceFactory(name="ward"))
    project = cast(Project, ProjectFactory(slug="lung", name="Lung", dicom_source=source, modality="CT"))
    MembershipFactory(project=project, user=manager, role=Role.MANAGER)
    MembershipFactory(project=project, user=reader, role=Role.ANNOTATOR)
    user_page = browsers.page_for(manager, language="zh-hans")
    user_page.page.set_default_navigation_timeout(60_000)
    checks = {
        "/": "我的项目",
        "/projects/lung/members": chinese["members.title"].replace("{project}", "lung"),
        "/projects/lung/data": chinese["data.title"].replace("{project}", "lung"),
    }
    # PACS, ID and zip are names of things, written so in Chinese too.
    allowed = chinese_check.NOT_UI_TEXT | {"PACS", "ID", "zip", "Lung", "reader", "ward"}
    for path, heading in checks.items():
        page = user_page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        page.wait_for_load_state("networkidle")
        text = chinese_check._visible_text(page)
        words = set(re.findall(r"[A-Za-z][A-Za-z0-9.\-]*[A-Za-z0-9]", text)) - allowed
        assert words == set(), (path, words)
        left = [
            key
            for key, value in english.items()
            if value != chinese[key] and len(literal := re.sub(r"\{\w+\}", "", value).strip()) >= 4 and literal in text
        ]
        assert left == [], (path, left)
        panel_helpers.save_screenshot(
            page.screenshot(full_page=True), f"projects-zh{path.replace('/', '-')}", min_std=2
        )
    user_page.assert_no_console_errors()
