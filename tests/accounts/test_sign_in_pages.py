"""Sign-in, sign-out and password change are the app's own pages (issue 16, item 1): a non-staff user never
lands on a Django admin page, signing in returns to where the user was (``next``) or to the app, and the
pages come in the user's language (English or Simplified Chinese)."""

from __future__ import annotations

from typing import cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import Profile
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "test-password-123"
ADMIN_MARKS = ("Django administration", "Django site admin", "admin/css", "Log in again")


@pytest.fixture
def reader() -> User:
    return cast(User, UserFactory(username="reader1"))


def _signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _assert_not_admin(html: str) -> None:
    for mark in ADMIN_MARKS:
        assert mark not in html, f"an admin page: {mark!r} in it"


def test_sign_out_lands_on_the_apps_sign_in_page_not_the_admins_logged_out_page(reader: User) -> None:
    client = _signed_in(reader)
    response = client.post("/accounts/logout/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain and response.redirect_chain[-1][0].startswith("/accounts/login/")
    html = response.content.decode()
    _assert_not_admin(html)
    assert "You are signed out." in html
    assert 'name="username"' in html and 'name="password"' in html  # sign in again right here
    assert "_auth_user_id" not in client.session


def test_sign_in_without_next_goes_to_the_app_not_to_accounts_profile(reader: User) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "reader1", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/api/v1/me/").json()["username"] == "reader1"


def test_sign_in_returns_to_where_the_user_was(reader: User) -> None:
    page = Client().get("/projects/alpha/dashboard")
    assert page.status_code == 302 and page["Location"] == "/accounts/login/?next=/projects/alpha/dashboard"
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": "reader1", "password": PASSWORD, "next": "/projects/alpha/dashboard"}
    )
    assert response.status_code == 302 and response["Location"] == "/projects/alpha/dashboard"


def test_sign_in_never_redirects_to_another_site(reader: User) -> None:
    response = Client().post(
        "/accounts/login/", {"username": "reader1", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_old_profile_address_is_not_a_404(reader: User) -> None:
    response = _signed_in(reader).get("/accounts/profile/")
    assert response.status_code == 302 and response["Location"] == "/"


def test_wrong_password_says_so_and_signs_nobody_in(reader: User) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "reader1", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_password_change_is_the_apps_page_and_changes_the_password(reader: User) -> None:
    client = _signed_in(reader)
    form = client.get("/accounts/password_change/")
    assert form.status_code == 200
    _assert_not_admin(form.content.decode())
    assert 'name="old_password"' in form.content.decode()
    bad = client.post(
        "/accounts/password_change/",
        {"old_password": "wrong", "new_password1": "N3w-passw0rd-xyz", "new_password2": "N3w-passw0rd-xyz"},
    )
    assert bad.status_code == 200 and "Your old password was entered incorrectly" in bad.content.decode()
    reader.refresh_from_db()
    assert reader.check_password(PASSWORD)  # nothing changed
    done = client.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": "N3w-passw0rd-xyz", "new_password2": "N3w-passw0rd-xyz"},
        follow=True,
    )
    assert done.status_code == 200
    _assert_not_admin(done.content.decode())
    assert "Your password was changed." in done.content.decode()
    reader.refresh_from_db()
    assert reader.check_password("N3w-passw0rd-xyz")
    assert client.get("/api/v1/me/").status_code == 200  # still signed in on this browser


def test_password_change_needs_sign_in() -> None:
    response = Client().get("/accounts/password_change/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/accounts/password_change/"


def test_sign_out_keeps_the_users_language_for_the_sign_in_page(reader: User) -> None:
    Profile.objects.create(user=reader, language="zh-hans")
    client = _signed_in(reader)
    response = client.post("/accounts/logout/", follow=True)
    html = response.content.decode()
    _assert_not_admin(html)
    assert "您已退出登录。" in html and "登录" in html
    # Anonymous now: the language stays with the browser (cookie), not with a session.
    again = client.get("/accounts/login/")
    assert "登录" in again.content.decode()


def test_password_change_page_in_chinese(reader: User) -> None:
    Profile.objects.create(user=reader, language="zh-hans")
    html = _signed_in(reader).get("/accounts/password_change/").content.decode()
    assert "修改密码" in html and "旧密码" in html


def test_sign_in_page_switches_language_for_anonymous_visitors() -> None:
    client = Client()
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/accounts/login/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert "登录" in client.get("/accounts/login/").content.decode()


def test_signed_in_non_staff_user_at_the_admin_goes_to_the_app(reader: User) -> None:
    client = _signed_in(reader)
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/"
    _assert_not_admin(response.content.decode())


def test_staff_still_reach_the_admin_login() -> None:
    page = Client().get("/admin/login/")
    assert page.status_code == 200 and "Django" in page.content.decode()
    staff = cast(User, UserFactory(username="root"))
    staff.is_staff = staff.is_superuser = True
    staff.save(update_fields=["is_staff", "is_superuser"])
    assert _signed_in(staff).get("/admin/").status_code == 200
