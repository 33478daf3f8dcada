"""Browser-test helpers for the panel, dashboard and jobs screens: Debian's Chromium through Playwright,
signed-in pages per user (the session cookie of ``Client.force_login``), console-error capture, and
screenshots saved under ``$TEST_ARTIFACTS_DIR/screenshots/`` with a check that they are not blank."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from accounts.services import profile_set_language

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}  # the smallest screen the app supports
# Messages the browser logs that are not the app's errors.
IGNORED_CONSOLE = ("favicon.ico", "Download the React DevTools")


def server_url(live_server: Any) -> str:
    """The live server on 127.0.0.1 (not "localhost", which may resolve to ::1 first)."""
    return str(live_server.url).replace("://localhost:", "://127.0.0.1:")


def artifacts_dir() -> Path:
    root = Path(os.environ.get("TEST_ARTIFACTS_DIR") or Path(__file__).resolve().parents[2] / "test-artifacts")
    path = root / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pixel_std(png: bytes) -> float:
    """Standard deviation of the greyscale pixels: ~0 for a blank (single-colour) image."""
    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64).std())


def save_screenshot(png: bytes, name: str, *, min_std: float = 8.0) -> Path:
    """Save a screenshot as an artefact and assert that it shows something (pixel variance)."""
    path = artifacts_dir() / f"{name}.png"
    path.write_bytes(png)
    std = pixel_std(png)
    assert std >= min_std, f"{path} looks blank (pixel std {std:.2f} < {min_std})"
    return path


@dataclass
class UserPage:
    """A signed-in browser page and the console errors it logged."""

    page: Page
    context: BrowserContext
    base: str
    errors: list[str] = field(default_factory=list)
    closed: bool = False

    def goto(self, path: str) -> Page:
        self.page.goto(f"{self.base}{path}")
        return self.page

    def assert_no_console_errors(self) -> None:
        assert self.errors == [], f"console errors: {self.errors}"

    def close(self) -> None:
        if not self.closed:
            self.context.close()
            self.closed = True


class Browsers:
    """Opens one page per user in its own browser context (its own cookies)."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.browser = browser
        self.base = base
        self.pages: list[UserPage] = []

    def page_for(self, user: User, *, language: str | None = None) -> UserPage:
        """A page signed in as ``user`` (in ``language``, saved on the user's profile, when given)."""
        if language is not None:
            profile_set_language(user=user, language=language)
        client = Client()
        client.force_login(user)
        session = client.cookies["sessionid"].value
        context = self.browser.new_context(viewport=VIEWPORT, device_scale_factor=1)  # type: ignore[arg-type]
        context.add_cookies([{"name": "sessionid", "value": session, "url": self.base}])
        page = context.new_page()
        page.set_default_timeout(20_000)
        user_page = UserPage(page=page, context=context, base=self.base)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not any(text in message.text for text in IGNORED_CONSOLE):
                user_page.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: user_page.errors.append(f"page error: {exc}"))
        self.pages.append(user_page)
        return user_page

    def close(self) -> None:
        for page in self.pages:
            page.close()
        # A request the closed pages had in flight (the Jobs screen polls) must end before the live server
        # stops, or its thread keeps a database connection open while the test database is dropped.
        time.sleep(0.5)


@pytest.fixture
def browsers(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browsers]:
    """Chromium against the live server; ORM calls between browser steps are allowed (Playwright's sync API
    runs an event loop in this thread, which Django would otherwise take for an async context)."""
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: scripts/services.sh installs Debian's chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    home = tempfile.mkdtemp(prefix="medlabel-chromium-")
    monkeypatch.setenv("XDG_CONFIG_HOME", home)
    monkeypatch.setenv("XDG_CACHE_HOME", home)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = Browsers(browser, server_url(live_server))
        try:
            yield pages
        finally:
            pages.close()
            browser.close()
            # While Playwright's event loop runs, Django keeps this thread's database connections apart from
            # the ones it uses outside it (asgiref keys them by the running loop): the test's ORM calls opened
            # their own, which must be closed here, before the loop stops, or the test database cannot be dropped.
            connections.close_all()
    shutil.rmtree(home, ignore_errors=True)
