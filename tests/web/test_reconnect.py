"""A message typed while the host cannot be reached is kept, and sent (once) when it is back."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from nanoclaw.host.app import Host
from tests.web.conftest import Watched, assistant, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
DOWN = ("ERR_CONNECTION_REFUSED", "WebSocket connection", "Failed to load resource")  # expected while it is down


async def test_a_message_typed_while_the_host_is_down_is_kept_and_sent_on_reconnect(watched: Watched, host: Host) -> None:
    page = watched.page
    watched.allowed.extend(DOWN)
    await host.web.stop()
    await expect(page.locator("#conn")).to_have_text("reconnecting…", timeout=10_000)
    await say(page, "typed while the host was down")
    owner = page.locator("#messages .msg.owner")
    await expect(owner.locator(".status")).to_have_attribute("data-status", "queued", timeout=10_000)
    await expect(owner).to_contain_text("typed while the host was down")  # not lost: shown, and kept
    await expect(page.locator("#text")).to_have_value("")
    kept = await page.evaluate("JSON.parse(localStorage.getItem('nanoclaw.outbox'))")
    assert [item["text"] for item in kept] == ["typed while the host was down"]
    await host.web.start()  # the same port: the page reconnects by itself
    await expect(page.locator("#conn")).to_have_text("connected", timeout=20_000)
    await expect(assistant(page)).to_contain_text("typed while the host was down", timeout=30_000)
    await expect(owner.locator(".status")).to_have_attribute("data-status", "done", timeout=10_000)
    await expect(owner).to_have_count(1)
    stored = [m for m in host.channels["web"].store.history(None) if m["author"] == "owner"]  # type: ignore[attr-defined]
    assert [m["text"] for m in stored] == ["typed while the host was down"]  # stored once
    assert await page.evaluate("JSON.parse(localStorage.getItem('nanoclaw.outbox'))") == []


async def test_a_resend_after_a_lost_answer_is_stored_and_answered_once(page: Page, host: Host) -> None:
    statuses = await page.evaluate("""async () => {
        const csrf = document.cookie.match(/nanoclaw_csrf=([^;]+)/)[1];
        const post = () => fetch('/api/chat/messages', {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
            body: JSON.stringify({text: 'only once please', client_id: 'mfixedclientid01'})}).then(r => r.json());
        const first = await post(), second = await post();
        return [first.message.id, second.message.id, Boolean(second.duplicate)];
    }""")
    assert statuses[0] == statuses[1] and statuses[2]
    await expect(assistant(page)).to_contain_text("only once please", timeout=30_000)
    await page.wait_for_timeout(500)  # a second answer would have come by now
    await expect(assistant(page)).to_have_count(1)
    await expect(page.locator("#messages .msg.owner")).to_have_count(1)
