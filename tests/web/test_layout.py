"""Layout and access: 390 px phones without horizontal scroll on any page, dark mode, keyboard use,
accessible names, the first load's weight, the favicon, and the login."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Browser, Page, expect

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.db import tasks
from nanoclaw.host.app import Host
from nanoclaw.host.bootstrap import WEB_CHAT
from nanoclaw.protocol.messages import Route
from tests.web.conftest import MOBILE, assistant, close_page, no_horizontal_overflow, open_page, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

WIDE = ("A long line: " + "x" * 300 + "\n\nhttps://example.org/" + "very-long-path/" * 20 + "\n\n"
        "| " + " | ".join(f"column {i}" for i in range(12)) + " |\n|" + "---|" * 12 + "\n| " +
        " | ".join(f"value {i}" for i in range(12)) + " |\n\n```python\n" + "print('" + "y" * 200 + "')\n```")


async def luminance(page: Page, selector: str = "body") -> float:
    rgb = await page.evaluate(f"getComputedStyle(document.querySelector('{selector}')).backgroundColor")
    r, g, b = (int(v) for v in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("screen", ["greeting", "long-messages", "conversations", "dashboard", "transcript"])
async def test_a_390px_phone_never_scrolls_sideways(browser: Browser, host: Host, screen: str) -> None:
    tasks.create(host.conn, agent_group_id="main", prompt="a fairly long task prompt " * 6, kind="cron",
                 spec="0 8 * * *", timezone="Europe/Oslo", next_run=time.time() + 7200)
    watched = await open_page(browser, host, viewport=MOBILE, is_mobile=True, has_touch=True)
    page = watched.page
    try:
        if screen == "greeting":
            await expect(page.locator("#greeting")).to_be_visible()
            await expect(page.locator("#sidebar")).not_to_be_in_viewport()  # a drawer on a phone
        elif screen == "long-messages":
            await host.channels["web"].send(OutgoingMessage(route=Route("web", WEB_CHAT), kind="chat", text=WIDE,
                                                            id="wide"))
            await say(page, "z" * 400)
            await expect(assistant(page)).to_have_count(2, timeout=30_000)
        elif screen == "conversations":
            await page.click("#menu")
            await expect(page.locator("#sidebar")).to_be_in_viewport()
            await expect(page.locator("#menu")).to_have_attribute("aria-expanded", "true")
        elif screen in ("dashboard", "transcript"):
            await say(page, "start a session")
            await expect(assistant(page)).to_have_count(1, timeout=30_000)
            await page.click("#tab-dashboard")
            await expect(page.locator("#d-sessions")).to_contain_text("web:owner")
            if screen == "transcript":
                await page.locator("#d-sessions button.transcript-open").click()
                await expect(page.locator("#transcript-dialog")).to_be_visible()
        await no_horizontal_overflow(page)
    finally:
        await close_page(watched, f"mobile-{screen}")


async def test_dark_mode_follows_the_system_and_the_theme_button_overrides_it(browser: Browser, host: Host) -> None:
    watched = await open_page(browser, host, color_scheme="dark")
    page = watched.page
    try:
        assert await luminance(page) < 0.15  # dark, because the system is
        assert await luminance(page, ".composer") < 0.2
        await expect(page.locator("#theme")).to_have_attribute("aria-label", "Theme: follow the system")
        await page.click("#theme")
        await expect(page.locator("html")).to_have_attribute("data-theme", "light")
        assert await luminance(page) > 0.85
        await page.reload()  # the choice is kept
        await expect(page.locator("html")).to_have_attribute("data-theme", "light")
        await page.click("#theme")
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        assert await luminance(page) < 0.15
    finally:
        await close_page(watched, "dark-mode")


async def test_keyboard_alone_is_enough(page: Page) -> None:
    await expect(page.locator("#text")).to_be_focused()
    await page.keyboard.type("first line")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("second line")
    await page.keyboard.press("Enter")
    await expect(page.locator("#messages .msg.owner .body")).to_have_text("first line\nsecond line")
    await expect(assistant(page)).to_have_count(1, timeout=30_000)
    await page.locator("#tab-chat").focus()
    await page.keyboard.press("ArrowRight")  # tabs move with the arrow keys
    await expect(page.locator("#tab-dashboard")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#dashboard")).to_be_visible()
    await page.keyboard.press("ArrowLeft")
    await expect(page.locator("#chat")).to_be_visible()
    first = await page.evaluate("document.querySelector('a[href], button, input, textarea, select').className")
    assert first == "skip"  # the first stop of the Tab key skips to the box
    await page.locator("a.skip").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#text")).to_be_focused()
    await page.keyboard.press("Control+k")
    await expect(page.locator("#search")).to_be_focused()


async def test_every_control_has_an_accessible_name(page: Page) -> None:
    await page.click("#tab-dashboard")
    await expect(page.locator("#d-status")).to_contain_text("mock")
    unnamed = await page.evaluate("""() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
        .filter(e => e.type !== 'hidden' && !e.closest('[hidden]') && !e.classList.contains('sr'))
        .filter(e => {
            const labelled = e.getAttribute('aria-labelledby');
            const name = e.getAttribute('aria-label') || (labelled && document.getElementById(labelled)?.textContent)
                || [...(e.labels || [])].map(l => l.textContent).join('') || e.textContent || e.title;
            return !(name || '').trim();
        }).map(e => e.outerHTML.slice(0, 80))""")
    assert unnamed == []
    assert await page.locator("[role=log][aria-live=polite]").count() == 1  # new messages are announced


async def test_the_first_load_is_under_300_kb_and_the_favicon_is_there(browser: Browser, host: Host) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    sizes: dict[str, int] = {}
    statuses: dict[str, int] = {}

    async def record(response: object) -> None:
        statuses[response.url] = response.status  # type: ignore[attr-defined]
        if response.request.method == "GET" and response.status == 200:  # type: ignore[attr-defined]
            sizes[response.url] = len(await response.body())  # type: ignore[attr-defined]

    page.on("response", lambda r: page.context.pages and __import__("asyncio").ensure_future(record(r)))
    await page.goto(host.web.login_link)
    await expect(page.locator("#conn")).to_have_text("connected", timeout=10_000)
    await page.wait_for_load_state("networkidle")
    total = sum(sizes.values())
    assert 20_000 < total < 300_000, sizes
    assert not [u for u, s in statuses.items() if s >= 400], statuses
    favicon = await page.request.get(host.web_url + "/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"] == "image/x-icon"
    assert not [u for u in sizes if not u.startswith(host.web_url)]  # nothing from anywhere else
    await context.close()


async def test_without_the_login_link_there_is_no_chat(browser: Browser, host: Host) -> None:
    context = await browser.new_context()
    p = await context.new_page()
    response = await p.goto(host.web_url + "/")
    assert response is not None and response.status == 401
    await expect(p.locator("body")).to_contain_text("nanoclaw web-url")
    assert await p.locator("#composer").count() == 0
    assert response.headers["x-frame-options"] and "default-src 'none'" in response.headers["content-security-policy"]
    bad = await p.goto(host.web_url + "/login?token=wrong")
    assert bad is not None and bad.status == 403
    await context.close()
