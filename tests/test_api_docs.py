"""The API docs (/api/docs/ Swagger UI, /api/redoc/ Redoc) work offline (issue 16, item 10): their pages
reference no external host, and every script and stylesheet they load is one of our static files."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import cast

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


class _References(HTMLParser):
    """Every src and href of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_api_docs_reference_no_external_host(path: str) -> None:
    client = Client()
    client.force_login(cast(User, UserFactory()))
    page = client.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    references = _References()
    references.feed(html)
    assert references.urls, "the page loads nothing: not the docs page"
    external = [url for url in references.urls if re.match(r"^(?:[a-z]+:)?//", url, re.IGNORECASE)]
    assert external == [], f"{path} loads from other hosts: {external}"
    # Nor in inline scripts (a CDN URL built in JavaScript, the Swagger validator badge).
    assert re.findall(r"https?://[^\s\"'<>]+", html) == []
    static = [url for url in references.urls if url.startswith("/static/")]
    assert any(url.endswith(".js") for url in static), static
    for url in static:
        assert finders.find(url.removeprefix("/static/")), f"{url} is not one of our static files"


def test_api_docs_schema_is_served_by_us() -> None:
    client = Client()
    client.force_login(cast(User, UserFactory()))
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "MedLabel QA API"


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_api_docs_forbid_the_browser_to_load_from_other_hosts(path: str) -> None:
    client = Client()
    client.force_login(cast(User, UserFactory()))
    policy = client.get(path)["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy and "connect-src 'self'" in policy
