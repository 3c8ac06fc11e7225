"""Conversations in the sidebar: each its own agent session; new, rename, delete, search across them."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from nanoclaw.host.app import Host
from tests.web.conftest import assistant, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


async def test_a_new_conversation_has_its_own_session_and_is_named_by_its_first_message(page: Page, host: Host) -> None:
    await say(page, "remember the word pelican")
    await expect(assistant(page)).to_have_count(1, timeout=30_000)
    await page.click("#new-chat")
    await expect(page.locator("#title")).to_have_text("New chat")
    await expect(page.locator("#greeting")).to_be_visible()  # a fresh conversation starts empty
    await expect(page.locator("#text")).to_be_focused()
    await say(page, "what word did I say?")
    answer = assistant(page)
    await expect(answer).to_contain_text("what word did I say?", timeout=30_000)
    await expect(answer).not_to_contain_text("pelican")  # its own agent session: no history of the other
    await expect(page.locator("#title")).to_have_text("what word did I say?")
    items = page.locator("#conversations li")
    await expect(items).to_have_count(2)
    await expect(items.nth(1)).to_contain_text("what word did I say?")
    await items.first.locator(".open").click()  # back to the main chat, whose history is there
    await expect(assistant(page)).to_contain_text("pelican")
    sessions = {s["thread"] for s in host.status()["sessions"] if s["chat"] == "web:owner"}
    assert len(sessions) == 2 and None in sessions


async def test_rename_delete_and_search(page: Page) -> None:
    await page.click("#new-chat")
    await say(page, "plans for the garden: tomatoes")
    await expect(assistant(page)).to_have_count(1, timeout=30_000)
    item = page.locator("#conversations li", has_text="plans for the garden")
    await item.locator(".rename").click()
    field = page.locator("#conversations .rename-form input")
    await expect(field).to_be_focused()
    await field.fill("Garden")
    await field.press("Enter")
    await expect(page.locator("#conversations li", has_text="Garden")).to_be_visible()
    await expect(page.locator("#title")).to_have_text("Garden")
    await page.reload()  # kept by the host
    await expect(page.locator("#conversations li", has_text="Garden")).to_be_visible()
    await page.press("body", "Control+k")
    await expect(page.locator("#search")).to_be_focused()
    await page.fill("#search", "TOMATO")
    result = page.locator("#search-results li", has_text="Garden").first  # each message that matches
    await expect(result).to_be_visible()
    await expect(result).to_contain_text("tomatoes")
    await result.locator(".open").click()
    await expect(page.locator("#title")).to_have_text("Garden")
    await expect(page.locator("#messages .msg.owner")).to_contain_text("tomatoes")
    garden = page.locator("#conversations li", has_text="Garden")
    await garden.locator(".delete").click()
    await expect(garden.locator(".delete")).to_have_text("Delete?")  # a second press deletes
    await garden.locator(".delete").click()
    await expect(page.locator("#conversations li", has_text="Garden")).to_have_count(0)
    await expect(page.locator("#title")).to_have_text("Main chat")
    await page.fill("#search", "tomato")
    await expect(page.locator("#search-results")).to_contain_text("Nothing found")
    assert await page.locator("#conversations li[data-conversation=main] .delete").count() == 0  # main stays
