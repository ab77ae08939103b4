"""Headless Chromium driven by Playwright against pytest-django's `live_server`.

The browser comes from scripts/ensure_browser.sh: `$CASELOOP_CHROMIUM`, /usr/bin/chromium,
chromium-browser on PATH, else Playwright's own download (`playwright install chromium`).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No calls home: the test machines only reach package mirrors.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The Chromium to launch; None means Playwright's own (same order as ensure_browser.sh)."""
    if configured := os.environ.get("CASELOOP_CHROMIUM"):
        return configured
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium-browser")


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    # The sync API runs an asyncio loop in this thread, so Django would refuse the test's own
    # ORM calls (SynchronousOnlyOperation). Scoped to the test, not the whole session.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            pytest.fail(f"Cannot start Chromium for the e2e tests; run scripts/ensure_browser.sh.\n{exc}")
        yield launched
        launched.close()
        # Inside `sync_playwright()` the test runs in another contextvars context, so its ORM
        # calls open a second connection that pytest-django never sees; close it here, or
        # PostgreSQL refuses to drop the test database ("accessed by other users").
        connections.close_all()


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url)
    # Fail fast with Playwright's message rather than waiting 30 s on a wrong selector.
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()
