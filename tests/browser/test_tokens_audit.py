"""The personal API tokens screen and the audit log screen in Chromium (issue 16, item 9), checked against
the database: a token created in the screen is shown once and works, and once revoked in the screen the API
refuses it; the audit log's filter shows the rows the database holds for that user, and its CSV download has
the same rows."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Dialog, expect

from accounts.models import ApiToken
from annotation.models import AnnotationRevision, Case, Project
from review.models import CaseEvent
from tests.browser import panel_helpers
from tests.review.test_audit import submit_first_reading

pytestmark = pytest.mark.django_db(transaction=True)


def _me_with(secret: str) -> int:
    return Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code


def test_token_created_in_the_screen_works_and_once_revoked_is_refused(
    browsers: panel_helpers.Browsers, users: dict[str, User]
) -> None:
    reader = users["annotator"]
    user_page = browsers.page_for(reader, language="zh-hans")
    page = user_page.goto("/")
    page.get_by_role("link", name="API 令牌").click()
    expect(page.get_by_role("heading", name="个人 API 令牌")).to_be_visible()
    expect(page.get_by_text("您还没有 API 令牌。")).to_be_visible()

    page.get_by_label("名称").fill("OHIF on my laptop")
    page.get_by_label("有效期（天，留空表示永不过期）").fill("30")
    page.get_by_role("button", name="创建令牌").click()
    secret = page.get_by_test_id("token-secret").inner_text().strip()
    expect(page.get_by_test_id("new-token")).to_contain_text("请立即复制此令牌：它不会再次显示。")
    token = ApiToken.objects.get(user=reader)
    assert token.name == "OHIF on my laptop" and token.revoked_at is None and token.expires_at is not None
    assert secret.startswith(token.prefix) and secret not in (token.prefix, "")
    assert _me_with(secret) == 200  # the token works for scripts and DICOMweb clients
    row = page.get_by_test_id(f"token-{token.pk}")
    expect(row).to_contain_text("OHIF on my laptop")
    expect(row).to_contain_text("有效")
    panel_helpers.save_screenshot(page.screenshot(), "tokens-created-zh")

    # Shown once: after a reload the secret is nowhere on the page.
    page.reload()
    expect(page.get_by_test_id(f"token-{token.pk}")).to_be_visible()
    assert secret not in page.content()

    def accept(dialog: Dialog) -> None:
        assert "OHIF on my laptop" in dialog.message
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_test_id(f"token-{token.pk}").get_by_role("button", name="吊销").click()
    expect(page.get_by_test_id(f"token-{token.pk}")).to_have_attribute("data-state", "revoked")
    expect(page.get_by_test_id(f"token-{token.pk}")).to_contain_text("已吊销")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _me_with(secret) == 401  # refused from now on
    user_page.assert_no_console_errors()


def _db_rows_of(project: Project, username: str) -> list[tuple[str, str]]:
    """(kind, case) of every audit row the database holds for this user in this project."""
    events = CaseEvent.objects.filter(case__project=project, actor__username=username)
    revisions = AnnotationRevision.objects.filter(annotation__case__project=project, author__username=username)
    return sorted(
        [("case_transition", str(e.case_id)) for e in events]
        + [("annotation_revision", str(r.annotation.case_id)) for r in revisions]
    )


def test_audit_filter_shows_the_users_rows_and_the_csv_matches(
    browsers: panel_helpers.Browsers, reading_project: Project, users: dict[str, User]
) -> None:
    slug = reading_project.slug
    read = submit_first_reading(reading_project, users["annotator"])
    other = Case.objects.filter(project=reading_project).exclude(pk=read.pk).first()
    assert other is not None
    CaseEvent.objects.create(case=other, actor=users["manager"], from_status="new", to_status="new", reason="moved")
    expected = _db_rows_of(reading_project, "annotator")
    assert len(expected) == 3

    user_page = browsers.page_for(users["manager"])
    page = user_page.goto("/")
    page.get_by_test_id(f"project-{slug}").get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name=f"Audit log: {slug}")).to_be_visible()
    total = (
        CaseEvent.objects.filter(case__project=reading_project).count()
        + AnnotationRevision.objects.filter(annotation__case__project=reading_project).count()
    )
    expect(page.get_by_test_id("audit-count")).to_have_text(f"Entries: {total}")

    page.get_by_label("Who", exact=True).fill("annotator")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("audit-count")).to_have_text(f"Entries: {len(expected)}")
    rows = page.get_by_test_id("audit-row")
    expect(rows).to_have_count(len(expected))
    shown = sorted(
        (str(rows.nth(i).get_attribute("data-kind")), rows.nth(i).locator("td").nth(2).inner_text())
        for i in range(len(expected))
    )
    assert shown == expected
    for i in range(len(expected)):
        expect(rows.nth(i).locator("td").nth(3)).to_have_text("annotator")

    # The same filter by kind and case narrows to the transition.
    page.get_by_label("What", exact=True).select_option("case_transition")
    page.get_by_label("Case", exact=True).fill(str(read.pk))
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("audit-count")).to_have_text("Entries: 1")
    # The status in the user's words (the API and the CSV keep the stored code).
    expect(rows.first.locator("td").nth(4)).to_contain_text("→ Awaiting cross-verification")
    panel_helpers.save_screenshot(page.screenshot(), "audit-filtered")

    # CSV of the user filter only: the download has exactly the database's rows.
    page.get_by_label("What", exact=True).select_option("")
    page.get_by_label("Case", exact=True).fill("")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("audit-count")).to_have_text(f"Entries: {len(expected)}")
    with page.expect_download() as info:
        page.get_by_test_id("audit-csv").click()
    download = info.value
    assert re.fullmatch(rf"audit-{slug}-\d{{4}}-\d{{2}}-\d{{2}}\.csv", download.suggested_filename)
    path = download.path()
    assert path is not None
    lines: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert sorted((line["kind"], line["case"]) for line in lines) == expected
    assert {line["actor"] for line in lines} == {"annotator"}
    user_page.assert_no_console_errors()
