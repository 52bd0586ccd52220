"""The browser tests' parts: Debian's chromium driven by Playwright for Python, in front of the
real stack and ``plantd-proxy`` of ``proxy_stack`` (tests/integration/proxy/conftest.py).

Playwright is used only as a driver: it never downloads a browser of its own (no network at
test time); it launches ``/usr/bin/chromium``, which ``tests/deps.sh`` installs from Debian
when ``make test`` runs as root. So as root a missing chromium is a failure, and only another
user, who cannot have installed it, is told it is missing by a skip.

Every test gets a fresh browser context (its own cookies: one person each) at the size it
asks for; screenshots go to ``$PLANTD_TEST_ARTIFACTS/browser/`` or, without that variable,
``test-artifacts/browser/`` in the checkout (ignored by git), named after the test and the
screen size. Uncaught JavaScript errors of any page are collected and fail the test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

from tests.integration.proxy.conftest import PEOPLE, ROOT, ProxyStack, proxy_stack

__all__ = ["DESKTOP", "PHONE", "Opener", "Screen", "browser", "open_page", "proxy_stack"]

CHROMIUM = Path("/usr/bin/chromium")

# The two screens the app must work on: a 1366×768 panel PC and a phone.
DESKTOP = ViewportSize(width=1366, height=768)
PHONE = ViewportSize(width=360, height=640)


def artifacts_dir() -> Path:
    base = os.environ.get("PLANTD_TEST_ARTIFACTS")
    directory = (Path(base) if base else ROOT / "test-artifacts") / "browser"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.geteuid() == 0:
            pytest.fail(f"{CHROMIUM} is missing: tests/deps.sh installs it (Debian chromium)")
        pytest.skip(f"{CHROMIUM} is missing (as root, tests/deps.sh installs Debian chromium)")
    # Chromium's own sandbox refuses to run as root; the page is our own app, on loopback.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Screen:
    """A page in its own browser context, with what a test needs around it."""

    page: Page
    context: BrowserContext
    stack: ProxyStack
    test_name: str
    errors: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.stack.url.rstrip("/") + path

    def log_in(self, principal: str, next_path: str = "/") -> None:
        """Through the login form, as a person would; ends on ``next_path``."""
        self.page.goto(self.url("/login" if next_path == "/" else f"/login?next={next_path}"))
        self.page.get_by_test_id("login-user").fill(principal)
        self.page.get_by_test_id("login-password").fill(PEOPLE[principal][1])
        self.page.get_by_test_id("login-submit").click()
        self.page.wait_for_url(self.url(next_path), timeout=30_000)

    def shoot(self, what: str) -> Path:
        """A full-page PNG of what the page shows now, named after the test and the size."""
        size = self.page.viewport_size or {"width": 0, "height": 0}
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.test_name}-{what}").strip("-")
        path = artifacts_dir() / f"{stem}-{size['width']}x{size['height']}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        return path


Opener = Callable[[ViewportSize], Screen]


@pytest.fixture
def open_page(
    browser: Browser, proxy_stack: ProxyStack, request: pytest.FixtureRequest
) -> Iterator[Opener]:
    """``open_page(viewport)``: a new context and page at that size; all closed afterwards,
    and the test fails if any page threw an uncaught JavaScript error."""
    screens: list[Screen] = []

    def opener(viewport: ViewportSize) -> Screen:
        context = browser.new_context(viewport=viewport, ignore_https_errors=True)
        context.set_default_timeout(30_000)
        page = context.new_page()
        screen = Screen(page, context, proxy_stack, request.node.originalname)
        page.on("pageerror", lambda error: screen.errors.append(f"{page.url}: {error}"))
        screens.append(screen)
        return screen

    yield opener
    for screen in screens:
        screen.context.close()
    errors = [error for screen in screens for error in screen.errors]
    assert not errors, "uncaught JavaScript errors:\n" + "\n".join(errors)
