"""Signing out and in again in Chromium, as a non-staff user, in English and in Chinese (issue 16, item 1):
sign-out lands on the app's sign-in page (never the Django admin's "Logged out"), signing in again ends in
the app, and a page opened while signed out comes back after signing in (``next``). The database is checked:
the session is gone after signing out, and ``last_login`` moves when the user signs in again."""

from __future__ import annotations

import re
from typing import cast

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from annotation.models import Project, Role
from tests.browser import panel_helpers
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

browsers = panel_helpers.browsers
PASSWORD = "test-password-123"

TEXTS = {
    "en": {
        "sign_out": "Sign out",
        "signed_out": "You are signed out.",
        "sign_in": "Sign in",
        "projects": "Your projects",
    },
    "zh-hans": {"sign_out": "退出登录", "signed_out": "您已退出登录。", "sign_in": "登录", "projects": "我的项目"},
}


def _sessions_of(user: User) -> int:
    return sum(1 for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk))


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_non_staff_user_signs_out_and_in_again_and_stays_in_the_app(
    browsers: panel_helpers.Browsers, language: str
) -> None:
    texts = TEXTS[language]
    user = cast(User, UserFactory(username="reader1"))
    assert not user.is_staff
    project = cast(Project, ProjectFactory(slug="alpha", name="Alpha"))
    MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    signed_in = browsers.page_for(user, language=language)
    page = signed_in.goto("/")
    expect(page.get_by_test_id("username")).to_have_text("reader1")
    assert _sessions_of(user) == 1

    page.get_by_role("button", name=texts["sign_out"]).click()
    page.wait_for_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_role("status")).to_have_text(texts["signed_out"])
    body = page.content()
    assert "Django" not in body and "/admin/" not in page.url
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans" if language == "zh-hans" else "en")
    assert _sessions_of(user) == 0
    panel_helpers.save_screenshot(page.screenshot(), f"sign-out-{language}", min_std=2.0)

    # A page opened while signed out asks to sign in and comes back afterwards.
    page.goto(f"{signed_in.base}/projects/alpha")
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/projects/alpha"))
    before = User.objects.get(pk=user.pk).last_login
    page.get_by_label(re.compile("Username|用户名")).fill("reader1")
    page.get_by_label(re.compile("Password|密码")).fill(PASSWORD)
    page.get_by_role("button", name=texts["sign_in"], exact=True).click()
    page.wait_for_url(f"{signed_in.base}/projects/alpha")
    expect(page.get_by_test_id("username")).to_have_text("reader1")
    after = User.objects.get(pk=user.pk).last_login
    assert after is not None and (before is None or after > before)
    assert _sessions_of(user) == 1

    # Sign out and in again from the sign-in page itself: the app's home, not /accounts/profile/.
    page.get_by_role("button", name=texts["sign_out"]).click()
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.get_by_label(re.compile("Username|用户名")).fill("reader1")
    page.get_by_label(re.compile("Password|密码")).fill(PASSWORD)
    page.get_by_role("button", name=texts["sign_in"], exact=True).click()
    page.wait_for_url(f"{signed_in.base}/")
    expect(page.get_by_role("heading", name=texts["projects"])).to_be_visible()
    signed_in.assert_no_console_errors()


def test_password_change_from_the_header_then_sign_in_with_the_new_password(
    browsers: panel_helpers.Browsers,
) -> None:
    user = cast(User, UserFactory(username="reader2"))
    signed_in = browsers.page_for(user, language="zh-hans")
    page = signed_in.goto("/")
    page.get_by_role("link", name="修改密码").click()
    page.wait_for_url(re.compile(r"/accounts/password_change/$"))
    assert "Django" not in page.content()
    page.get_by_label("旧密码").fill(PASSWORD)
    page.get_by_label("新密码", exact=True).fill("Another-passw0rd-77")
    page.get_by_label("新密码确认").fill("Another-passw0rd-77")
    page.get_by_role("button", name="修改密码").click()
    page.wait_for_url(re.compile(r"/accounts/password_change/done/$"))
    expect(page.get_by_role("status")).to_have_text("您的密码已修改。")
    user.refresh_from_db()
    assert user.check_password("Another-passw0rd-77") and not user.check_password(PASSWORD)

    page.get_by_role("link", name="返回 MedLabel QA").click()
    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.get_by_label("用户名").fill("reader2")
    page.get_by_label("密码").fill("Another-passw0rd-77")
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_url(f"{signed_in.base}/")
    expect(page.get_by_test_id("username")).to_have_text("reader2")
    signed_in.assert_no_console_errors()
