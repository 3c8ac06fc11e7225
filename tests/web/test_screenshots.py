"""The screenshots in the documentation (docs/images/), taken from a real host in Chromium: the chat and the
dashboard, light, dark and on a phone. Each also checks what it shows."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Browser, Page, expect

from nanoclaw.channels.base import InboundEvent, OutgoingMessage
from nanoclaw.db import tasks
from nanoclaw.host.app import Host
from nanoclaw.host.bootstrap import WEB_CHAT
from nanoclaw.protocol.messages import Route
from tests.web.conftest import DOC_IMAGES, MOBILE, close_page, no_horizontal_overflow, open_page

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

QUESTION = "How do I count the lines of every Python file in a folder?"
ANSWER = """Use `wc` with `find`, or a few lines of Python:

```python
from pathlib import Path

for path in sorted(Path(".").rglob("*.py")):
    lines = path.read_text().count("\\n")
    print(f"{lines:6}  {path}")
```

| tool | counts |
|---|---|
| `wc -l` | newlines |
| the script | newlines, per file |

Want me to run it on your **workspace**?"""
STREAMING = ("Here is a plan for the week:\n\n1. Monday: sort the photos from the trip\n2. Tuesday: renew the "
             "library books\n3. Wednesday: call the garage about the winter tyres\n4. Thursday: pay the electricity "
             "bill\n5. Friday: book the table for Saturday")


async def conversation(host: Host) -> None:
    """A conversation as the owner would have it (stored as the web chat stores it), and two more in the sidebar."""
    web = host.channels["web"]
    store = web.store  # type: ignore[attr-defined]
    for title in ("Holiday packing list", "Garden: tomatoes"):
        store.add_conversation(title)
    store.add(author="owner", kind="chat", text=QUESTION, status="done")
    await web.send(OutgoingMessage(route=Route("web", WEB_CHAT), kind="chat", text=ANSWER, id="shot-1"))
    await web.send(OutgoingMessage(route=Route("web", WEB_CHAT), kind="question", id="shot-2",
                                   text="Run it on /workspace/agent now?", title="Question",
                                   buttons=("Yes", "Not now"), card_id="q-shot0001"))


async def start_streaming(host: Host) -> None:
    """The owner asks; the (mock) model writes its answer over a few seconds."""
    row = host.channels["web"].store.add(author="owner", kind="chat", text="Plan my week, please.",  # type: ignore[attr-defined]
                                         status="stored")
    await host.receive(InboundEvent("web", WEB_CHAT, row["id"], f"[mock:reply={STREAMING}][mock:stream=60/30]",
                                    WEB_CHAT, "Owner", is_dm=True))


async def shoot(page: Page, name: str) -> None:
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(DOC_IMAGES / f"{name}.png"))


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_screenshot_of_the_chat(browser: Browser, host: Host, theme: str) -> None:
    await conversation(host)
    watched = await open_page(browser, host, viewport={"width": 1280, "height": 800}, color_scheme=theme)
    page = watched.page
    try:
        await start_streaming(host)
        await expect(page.locator("#messages .msg.streaming")).to_contain_text("Tuesday", timeout=30_000)
        await expect(page.locator("#stop")).to_be_visible()
        await expect(page.locator("#conversations li")).to_have_count(3)
        await expect(page.locator("#messages pre .hl-kn").first).to_be_visible()
        await shoot(page, f"web-chat-{theme}")
    finally:
        await close_page(watched, f"shot-chat-{theme}")


async def test_screenshot_of_the_chat_on_a_phone(browser: Browser, host: Host) -> None:
    await conversation(host)
    watched = await open_page(browser, host, viewport=MOBILE, is_mobile=True, has_touch=True)
    page = watched.page
    try:
        await expect(page.locator("#messages .msg.assistant")).to_have_count(2)
        await page.locator("#messages .msg.assistant").last.scroll_into_view_if_needed()
        await no_horizontal_overflow(page)
        await shoot(page, "web-chat-mobile")
    finally:
        await close_page(watched, "shot-chat-mobile")


async def dashboard_state(host: Host, page: Page) -> None:
    tasks.create(host.conn, agent_group_id="main", prompt="Every morning: the weather and my calendar for today",
                 kind="cron", spec="0 7 * * *", timezone="Europe/Oslo", next_run=time.time() + 5 * 3600)
    tasks.create(host.conn, agent_group_id="main", prompt="Check the backup disk", kind="interval", spec="86400",
                 timezone="Europe/Oslo", next_run=time.time() + 20 * 3600)
    from nanoclaw.vault.store import SecretRule

    host.vault.add(SecretRule("github", "api.github.com"), "placeholder-value")
    await page.fill("#text", "good morning")
    await page.press("#text", "Enter")
    await expect(page.locator("#messages .msg.assistant")).to_have_count(1, timeout=30_000)
    await page.click("#tab-dashboard")
    await expect(page.locator("#d-sessions")).to_contain_text("running", timeout=10_000)
    await expect(page.locator("#d-tasks")).to_contain_text("in 5 h")


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_screenshot_of_the_dashboard(browser: Browser, host: Host, theme: str) -> None:
    watched = await open_page(browser, host, viewport={"width": 1280, "height": 900}, color_scheme=theme)
    page = watched.page
    try:
        await dashboard_state(host, page)
        await shoot(page, f"dashboard-{theme}")
    finally:
        await close_page(watched, f"shot-dashboard-{theme}")


async def test_screenshot_of_the_dashboard_on_a_phone(browser: Browser, host: Host) -> None:
    watched = await open_page(browser, host, viewport=MOBILE, is_mobile=True, has_touch=True)
    page = watched.page
    try:
        await dashboard_state(host, page)
        await page.locator("#d-sessions").scroll_into_view_if_needed()
        await no_horizontal_overflow(page)
        await shoot(page, "dashboard-mobile")
    finally:
        await close_page(watched, "shot-dashboard-mobile")
