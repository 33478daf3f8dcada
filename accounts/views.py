"""The app's own sign-in pages (sign out, password change): Django's auth views with our templates, so a
non-staff user never lands on a page of the Django admin (issue 16, item 1)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.utils.translation import gettext as _

from accounts.selectors import saved_language


class SignInView(auth_views.LoginView):
    template_name = "accounts/sign_in.html"
    redirect_authenticated_user = False  # a signed-in user may still want to sign in as someone else


class SignOutView(auth_views.LogoutView):
    """Signs out and goes to the sign-in page (LOGOUT_REDIRECT_URL) with a note, in the user's language."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Read before logout() forgets the user: the saved language moves to the language cookie, so the
        # sign-in page that follows (now anonymous) still speaks it.
        language = saved_language(request.user)
        response = super().post(request, *args, **kwargs)
        messages.success(request, _("You are signed out."))
        if language:
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                language,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
                secure=settings.LANGUAGE_COOKIE_SECURE,
            )
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("password_change_done")


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's sign-in, for staff. A signed-in user who is not staff (sent here by a link to /admin/)
    goes to the app instead of the admin's "not authorized" page."""
    if request.user.is_authenticated and not request.user.is_staff:
        return redirect("/")
    return admin.site.login(request)
