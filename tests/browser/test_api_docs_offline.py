"""/api/docs/ and /api/redoc/ in Chromium with every request to another host refused, as on a hospital
network without internet: the docs still render the API's operations (issue 16, item 10)."""

from __future__ import annotations

import re
from typing import cast
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Route, expect

from tests.browser import panel_helpers
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

browsers = panel_helpers.browsers


def test_api_docs_render_without_internet(browsers: panel_helpers.Browsers) -> None:
    user_page = browsers.page_for(cast(User, UserFactory(username="scripter")))
    page = user_page.page
    local = urlparse(user_page.base).netloc
    outside: list[str] = []

    def refuse_outside(route: Route) -> None:
        if urlparse(route.request.url).netloc != local:
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", refuse_outside)
    user_page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("MedLabel QA API")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/me/tokens/").first).to_be_visible()
    panel_helpers.save_screenshot(page.screenshot(), "api-docs-offline")
    user_page.goto("/api/redoc/")
    expect(page.get_by_role("heading", name=re.compile("MedLabel QA API"))).to_be_visible(timeout=30_000)
    assert outside == [], f"the docs asked other hosts: {outside}"
