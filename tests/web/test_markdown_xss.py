"""Markdown rendered well and safely: code with highlighting and a copy button, tables, lists, safe links;
and an XSS battery: whatever the agent (or anyone) writes, nothing runs and no link can run script.

The battery shares one host and one page (module scope): each payload arrives as an assistant message
through the web channel (what every reply goes through), a few through the real agent too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Page, async_playwright, expect

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.host.app import Host
from nanoclaw.host.bootstrap import WEB_CHAT
from nanoclaw.protocol.messages import Route
from tests.conftest import make_settings
from tests.web.conftest import CHROMIUM, Watched, assistant, close_page, open_page, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

HOOK = "window.__xss.push"
PAYLOADS = [
    f"<script>{HOOK}(1)</script>",
    f'<img src=x onerror="{HOOK}(2)">',
    f'<svg onload="{HOOK}(3)"><circle r=1></svg>',
    f"[click me](javascript:{HOOK}(4))",
    f"[click me](JaVaScRiPt:{HOOK}(5))",
    f"[click me](java\tscript:{HOOK}(6))",
    f"[click me](&#106;avascript:{HOOK}(7))",
    "[click me](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click me](vbscript:msgbox(8))",
    f"![pic](javascript:{HOOK}(9))",
    f'![pic" onerror="{HOOK}(10)](https://example.org/a.png)',
    f'<a href="javascript:{HOOK}(11)">raw link</a>',
    f'<iframe src="javascript:{HOOK}(12)"></iframe>',
    f'<details open ontoggle="{HOOK}(13)"><summary>x</summary></details>',
    f'[hover](https://example.org" onmouseover="{HOOK}(14))',
    "<style>body { display: none }</style>",
    f"`<script>{HOOK}(16)</script>`",
    f"```html\n<script>{HOOK}(17)</script>\n<img src=x onerror={HOOK}(17)>\n```",
    f"[reference link][1]\n\n[1]: javascript:{HOOK}(18)",
    f"<javascript:{HOOK}(19)>",
    f'<math><mi xlink:href="javascript:{HOOK}(20)">x</mi></math>',
    f"| col |\n|---|\n| <img src=x onerror={HOOK}(21)> |",
    "[local file](file:///etc/passwd)",
    f'<form action="javascript:{HOOK}(23)"><button>go</button></form>',
    f"**bold <b onmouseover={HOOK}(24)>x</b>**",
    f"[x](  javascript:{HOOK}(25)  )",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[tuple[Host, Watched]]:
    home = Path(tempfile.mkdtemp(prefix="nanoclaw-xss-"))
    host = Host(make_settings(home / "home"))
    await host.start()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        watched = await open_page(browser, host)
        await watched.page.evaluate("window.__xss = []")
        watched.page.on("dialog", lambda dialog: watched.errors.append(f"dialog: {dialog.message}"))
        try:
            yield host, watched
        finally:
            await close_page(watched, "xss-battery")
            await browser.close()
            await host.stop()


async def show(host: Host, page: Page, text: str, n: int) -> Any:
    """The payload as an assistant message; returns its element once shown."""
    marker = f"payload-{n}-end"
    await host.channels["web"].send(OutgoingMessage(route=Route("web", WEB_CHAT), kind="chat",
                                                    text=f"{text}\n\n{marker}", id=f"xss-{n}"))
    message = page.locator("#messages .msg.assistant", has_text=marker)
    await expect(message).to_be_visible(timeout=10_000)
    return message


async def assert_inert(page: Page, message: Any) -> None:
    for link in await message.locator("a").all():  # hovering runs mouse handlers, if there were any
        await link.hover()
    found = await message.evaluate("""(m) => {
        const body = m.querySelector('.body');
        const all = [...body.querySelectorAll('*')];
        return {
            handlers: all.filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).map(e => e.outerHTML),
            hrefs: [...body.querySelectorAll('[href], [src], [action], [formaction], [xlink\\\\:href]')]
                     .map(e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action') || ''),
            tags: all.map(e => e.tagName.toLowerCase()),
        };
    }""")
    assert found["handlers"] == [], found
    assert all(h.startswith(("https:", "http:", "mailto:")) for h in found["hrefs"]), found
    assert not set(found["tags"]) & {"script", "img", "svg", "iframe", "object", "embed", "style", "form",
                                     "details", "math", "input"}, found
    assert await page.evaluate("window.__xss") == []  # nothing ran


@pytest.mark.parametrize("n", range(len(PAYLOADS)))
async def test_xss_payload_is_shown_inert(shared: tuple[Host, Watched], n: int) -> None:
    host, watched = shared
    message = await show(host, watched.page, PAYLOADS[n], n)
    await assert_inert(watched.page, message)
    assert await watched.page.evaluate("getComputedStyle(document.body).display") != "none"
    assert not any(e.startswith("dialog") for e in watched.errors)


async def test_xss_in_what_the_owner_types_cards_and_file_names_is_text(shared: tuple[Host, Watched]) -> None:
    host, watched = shared
    page = watched.page
    await say(page, f"<img src=x onerror={HOOK}(90)> [x](javascript:{HOOK}(91))")
    owner = page.locator("#messages .msg.owner").last
    await expect(owner).to_contain_text("<img src=x")
    await host.channels["web"].send(OutgoingMessage(
        route=Route("web", WEB_CHAT), kind="question", id="xss-card", text=f"<b onclick={HOOK}(92)>pick</b>",
        title=f"<img src=x onerror={HOOK}(93)>", buttons=(f"<script>{HOOK}(94)</script>", "ok"), card_id="q-xss00001"))
    card = page.locator("#messages .msg.assistant", has_text="pick")
    await expect(card.locator(".title")).to_have_text(f"<img src=x onerror={HOOK}(93)>")
    await expect(card.locator(".buttons button").first).to_have_text(f"<script>{HOOK}(94)</script>")
    await expect(assistant(page).last).to_be_visible(timeout=30_000)
    for message in (owner, card):
        await assert_inert(page, message)


async def test_markdown_code_tables_lists_and_safe_links(shared: tuple[Host, Watched]) -> None:
    host, watched = shared
    page = watched.page
    text = ("Steps:\n\n1. first\n2. second\n\n- a\n- b\n\n| name | n |\n|---|---|\n| x | 1 |\n\n"
            "```python\ndef double(x):\n    return x * 2  # twice\n```\n\nSee [the docs](https://example.org/docs).")
    message = await show(host, page, text, 100)
    body = message.locator(".body")
    await expect(body.locator("ol li")).to_have_count(2)
    await expect(body.locator("ul li")).to_have_count(2)
    await expect(body.locator("table td")).to_have_count(2)
    await expect(body.locator("pre code .hl-k").first).to_have_text("def")  # highlighted
    link = body.locator("a", has_text="the docs")
    assert await link.get_attribute("href") == "https://example.org/docs"
    assert await link.get_attribute("target") == "_blank" and "noopener" in (await link.get_attribute("rel") or "")
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await body.locator("pre .copy").click()
    await expect(body.locator("pre .copy")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == "def double(x):\n    return x * 2  # twice\n"


async def test_a_payload_through_the_real_agent_is_inert_too(shared: tuple[Host, Watched]) -> None:
    host, watched = shared
    page = watched.page
    await say(page, f"[mock:reply=**bold** <img src=x onerror={HOOK}(99)> [go](javascript:{HOOK}(98)) agent-end]")
    message = assistant(page).filter(has_text="agent-end")
    await expect(message.locator("strong")).to_have_text("bold", timeout=30_000)
    await assert_inert(page, message)
