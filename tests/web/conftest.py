"""The web chat and dashboard in a real headless Chromium (Playwright on Debian's /usr/bin/chromium), against a
real host with the mock provider in real sandboxes.

Every page fixture fails its test on a JavaScript error or a console error (a CSP violation, a 404, an
exception). A screenshot of each test's last screen is kept in test-artifacts/browser/ (or
$NANOCLAW_TEST_ARTIFACTS); the documentation's screenshots are written by test_screenshots.py.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, async_playwright, expect

from nanoclaw.host.app import Host
from tests.conftest import make_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("NANOCLAW_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "browser"
DOC_IMAGES = Path(__file__).parents[2] / "docs" / "images"
MOBILE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    # A fixed port, so a test can stop and start the web server where the page expects it.
    h = Host(make_settings(tmp_path / "home", web_port=free_port()))
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: ./scripts/test installs it"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


class Watched:
    """A logged-in page whose console errors and exceptions are collected."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        self.allowed: list[str] = []  # substrings of errors a test expects (e.g. the host down on purpose)
        page.on("pageerror", lambda exc: self.errors.append(f"exception: {exc}"))
        page.on("console", lambda msg: self.errors.append(f"console: {msg.text}") if msg.type == "error" else None)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


async def open_page(browser: Browser, host: Host, **context_options: Any) -> Watched:
    context = await browser.new_context(accept_downloads=True, **context_options)
    watched = Watched(context, await context.new_page())
    await watched.page.goto(host.web.login_link)
    await expect(watched.page.locator("#conn")).to_have_text("connected", timeout=10_000)
    return watched


async def close_page(watched: Watched, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await watched.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    await watched.context.close()
    assert watched.unexpected() == [], f"errors on the page: {watched.unexpected()}"


@pytest.fixture
async def watched(browser: Browser, host: Host, request: pytest.FixtureRequest) -> AsyncIterator[Watched]:
    w = await open_page(browser, host)
    try:
        yield w
    finally:
        await close_page(w, request.node.name)


@pytest.fixture
async def page(watched: Watched) -> Page:
    return watched.page


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


def assistant(page: Page) -> Locator:
    return page.locator("#messages .msg.assistant:not(.streaming)")


async def no_horizontal_overflow(page: Page) -> None:
    """Nothing makes the page wider than the screen (scrolling inside a code block is fine)."""
    widths = await page.evaluate("""() => {
        const doc = document.documentElement;
        const wide = [...document.querySelectorAll('body *')].filter(e => {
            const r = e.getBoundingClientRect();
            return r.width > 0 && r.right > doc.clientWidth + 1 && !e.closest('pre, table, .sidebar:not(.open)');
        }).map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5);
        return {scroll: doc.scrollWidth, client: doc.clientWidth, body: document.body.scrollWidth, wide};
    }""")
    assert widths["scroll"] <= widths["client"] and widths["body"] <= widths["client"], widths
    assert widths["wide"] == [], widths
