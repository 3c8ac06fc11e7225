"""Cards show their final state in the chat, whoever decided them and wherever."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Page, expect

from nanoclaw.db import approvals
from nanoclaw.host.app import Host
from tests.web.conftest import Watched, assistant, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
MCP = json.dumps({"name": "issues", "url": "https://mcp.example.com/mcp", "transport": "sse"})


async def test_an_approval_decided_on_the_dashboard_closes_the_card_in_the_chat(watched: Watched, host: Host) -> None:
    page = watched.page
    await say(page, f"[mock:tool=add_mcp_server:{MCP}]")
    card = page.locator("#messages .msg.assistant", has_text="Add MCP server")
    await expect(card.locator("button", has_text="Approve")).to_be_enabled(timeout=30_000)
    await page.click("#tab-dashboard")
    row = page.locator("#d-approvals tr", has_text="mcp")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text(re.compile(r"in 2\d h"))  # a human time
    await row.locator("button", has_text="Approve").click()
    await expect(page.locator("#d-approvals")).to_contain_text("None.", timeout=10_000)  # pushed, no reload
    await page.click("#tab-chat")
    await expect(card.locator(".outcome")).to_have_text("✅ Approved by the owner on the dashboard")
    for button in await card.locator(".buttons button").all():
        await expect(button).to_be_disabled()  # no live buttons that look like they work
    approval_id = host.conn.execute("SELECT id FROM approvals").fetchone()[0]
    assert approvals.get(host.conn, approval_id).status == "approved"  # type: ignore[union-attr]
    await page.reload()  # the final state is kept by the web chat
    await expect(card.locator(".outcome")).to_contain_text("Approved")
    watched.allowed.append("409 (Conflict)")  # the refusal below, on purpose
    refused = await page.evaluate(f"""async () => {{
        const csrf = document.cookie.match(/nanoclaw_csrf=([^;]+)/)[1];
        const r = await fetch('/api/chat/cards/{approval_id}', {{method: 'POST', credentials: 'same-origin',
            headers: {{'Content-Type': 'application/json', 'X-CSRF-Token': csrf}}, body: JSON.stringify({{value: 'Deny'}})}});
        return [r.status, (await r.json()).error];
    }}""")
    assert refused[0] == 409 and "closed" in refused[1]


async def test_a_question_card_answered_by_button_shows_the_choice_and_the_agent_gets_it(page: Page) -> None:
    ask = json.dumps({"question": "Deploy to production?", "options": ["Yes", "No"]})
    await say(page, f"[mock:tool=ask_user_question:{ask}]")
    card = page.locator("#messages .msg.assistant", has_text="Deploy to production?")
    await card.locator("button", has_text="No").click()
    await expect(card.locator("button.chosen")).to_have_text("No")
    await expect(card.locator(".outcome")).to_have_text("✅ Answered: No")
    await expect(assistant(page).last.locator(".body")).to_have_text("The person answered: No", timeout=30_000)
    assert await card.locator("button:enabled").count() == 0


async def test_a_question_answered_by_typing_closes_its_card(page: Page) -> None:
    ask = json.dumps({"question": "Which colour?", "options": ["Red", "Blue"]})
    await say(page, f"[mock:tool=ask_user_question:{ask}]")
    card = page.locator("#messages .msg.assistant", has_text="Which colour?")
    await expect(card.locator("button", has_text="Blue")).to_be_enabled(timeout=30_000)
    await say(page, "2")
    await expect(card.locator(".outcome")).to_have_text("✅ Answered: Blue", timeout=10_000)
    await expect(card.locator("button", has_text="Blue")).to_be_disabled()
