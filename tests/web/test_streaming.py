"""Replies that grow while the agent writes them, and stopping them, in the browser."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from nanoclaw.host.app import Host
from nanoclaw.runner.main import STOPPED
from tests.web.conftest import Watched, assistant, close_page, open_page, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

# Every length the reply being written had, with whether its final message was there yet.
RECORD_GROWTH = """() => {
    window.__growth = [];
    new MutationObserver(() => {
        const live = document.querySelector('#messages .msg.streaming .body');
        const final = document.querySelector('#messages .msg.assistant:not(.streaming)');
        if (live) window.__growth.push([live.textContent.length, Boolean(final)]);
    }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""
WORDS = " ".join(f"w{i}" for i in range(80))


async def test_text_grows_before_the_turn_ends_then_the_final_message_takes_its_place(page: Page) -> None:
    await page.evaluate(RECORD_GROWTH)
    await say(page, f"[mock:reply={WORDS}][mock:stream=80/2]")
    await expect(page.locator("#messages .msg.streaming")).to_be_visible(timeout=30_000)
    await expect(page.locator("#stop")).to_be_visible()  # while it writes, the answer can be stopped
    await expect(assistant(page)).to_have_count(1, timeout=30_000)
    await expect(assistant(page)).to_contain_text("w79")
    await expect(page.locator("#messages .msg.streaming")).to_have_count(0)
    growth = await page.evaluate("window.__growth")
    lengths = [n for n, final in growth if not final]
    assert len(set(lengths)) >= 4, growth  # seen at several sizes before the answer was complete
    assert lengths == sorted(lengths)  # it only grows
    assert min(lengths) < len(WORDS) // 4  # the first text came early, long before the whole answer
    await expect(page.locator("#stop")).to_be_hidden()
    await page.reload()  # the final message is stored once; nothing of the partial remains
    await expect(page.locator("#messages .msg.assistant")).to_have_count(1, timeout=10_000)


async def test_the_stop_button_interrupts_and_the_agent_says_it_stopped(page: Page) -> None:
    await say(page, "[mock:stream=400/40]")
    live = page.locator("#messages .msg.streaming")
    await expect(live).to_contain_text("word5", timeout=30_000)
    await page.click("#stop")
    answer = assistant(page)
    await expect(answer).to_contain_text(STOPPED, timeout=10_000)
    text = await answer.inner_text()
    assert "word1 word2 word3 word4 word5" in text and "word400" not in text  # what it wrote, then that it stopped
    await expect(live).to_have_count(0)
    await expect(page.locator("#stop")).to_be_hidden()
    await expect(page.locator("#messages .msg.owner .status")).to_have_attribute("data-status", "done")
    await expect(page.locator("#text")).to_be_focused()
    await say(page, "[mock:reply=ready again]")  # the conversation goes on
    await expect(assistant(page).last).to_contain_text("ready again", timeout=30_000)


async def test_escape_in_the_box_stops_the_answer(page: Page) -> None:
    await say(page, "[mock:stream=300/30]")
    await expect(page.locator("#messages .msg.streaming")).to_contain_text("word3", timeout=30_000)
    await page.focus("#text")
    await page.keyboard.press("Escape")
    await expect(assistant(page)).to_contain_text(STOPPED, timeout=10_000)


async def test_a_page_opened_while_the_reply_is_written_sees_it_grow(page: Page, browser: Browser, host: Host) -> None:
    await say(page, f"[mock:reply={WORDS}][mock:stream=80/4]")
    await expect(page.locator("#messages .msg.streaming")).to_contain_text("w5", timeout=30_000)
    second: Watched = await open_page(browser, host)
    try:
        late = second.page.locator("#messages .msg.streaming")
        await expect(late).to_be_visible()  # the text so far, at once
        await expect(assistant(second.page)).to_contain_text("w79", timeout=30_000)
        await expect(late).to_have_count(0)
    finally:
        await close_page(second, "second-page")
