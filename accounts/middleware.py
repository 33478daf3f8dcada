from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation

from accounts.selectors import saved_language


class UserLanguageMiddleware:
    """Activate the signed-in user's saved language (after LocaleMiddleware and authentication), so
    Django's pages and the API's messages come in it. Without a saved language the browser's stays."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = saved_language(request.user) if hasattr(request, "user") else ""
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        response = self.get_response(request)
        if language:
            response.headers.setdefault("Content-Language", language)
        return response
