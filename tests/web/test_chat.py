"""Chatting in the browser: answers, message states, line breaks and times, focus, greeting, files, typing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.host.app import Host
from nanoclaw.host.bootstrap import WEB_CHAT
from nanoclaw.protocol.messages import Route
from tests.web.conftest import assistant, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

# Records every state an owner message shows, in order (to prove states never go back).
RECORD_STATES = """() => {
    window.__states = [];
    new MutationObserver(() => {
        for (const s of document.querySelectorAll('#messages .msg.owner .status')) {
            const id = s.closest('.msg').dataset.id, last = window.__states.filter(x => x[0] === id).pop();
            if (!last || last[1] !== s.dataset.status) window.__states.push([id, s.dataset.status]);
        }
    }).observe(document.getElementById('messages'), {subtree: true, childList: true, attributes: true});
}"""


async def test_a_message_typed_in_the_box_is_answered_and_marked_answered(page: Page) -> None:
    """Acceptance: a message typed into the web chat is answered (mock provider, real sandbox)."""
    await expect(page.locator("#text")).to_be_focused()  # the box has the focus on load
    await say(page, "hello from the browser")
    await expect(page.locator("#messages .msg.owner").first).to_contain_text("hello from the browser")
    await expect(assistant(page).first).to_contain_text("Owner: hello from the browser", timeout=30_000)
    await expect(page.locator("#messages .msg.owner .status").first).to_have_attribute("data-status", "done",
                                                                                       timeout=10_000)
    await expect(page.locator("#text")).to_be_focused()


async def test_states_of_fast_replies_only_move_forward_and_all_end_answered(page: Page) -> None:
    """The ✓ race: the answer to the post could arrive after 'done' and overwrite it; states never go back."""
    await page.evaluate(RECORD_STATES)
    for n in range(6):
        await say(page, f"quick {n}")
    owner = page.locator("#messages .msg.owner")
    await expect(owner).to_have_count(6)
    for n in range(6):
        await expect(owner.nth(n).locator(".status")).to_have_attribute("data-status", "done", timeout=30_000)
    states = await page.evaluate("window.__states")
    rank = {"sending": 0, "queued": 0, "stored": 1, "working": 2, "done": 3}
    by_message: dict[str, list[str]] = {}
    for message_id, status in states:
        by_message.setdefault(message_id.removeprefix("local-"), []).append(status)
    assert all(rank[a] <= rank[b] for seq in by_message.values() for a, b in zip(seq, seq[1:])), states
    await page.reload()  # and after a reload, from the host's own record
    await expect(page.locator("#messages .msg.owner .status[data-status=done]")).to_have_count(6, timeout=10_000)


async def test_line_breaks_and_times_are_shown(page: Page) -> None:
    await say(page, "[mock:reply=first line\nsecond line\n\nnew paragraph]")
    answer = assistant(page).first
    await expect(answer.locator(".body br")).to_have_count(1, timeout=30_000)
    await expect(answer.locator(".body p")).to_have_count(2)
    stamp = answer.locator("time")
    assert (await stamp.get_attribute("datetime") or "").startswith("20")  # an ISO time for machines
    assert await stamp.get_attribute("title")  # the full date and time on hover
    assert ":" in await stamp.inner_text()


async def test_the_empty_screen_greets_with_suggestions_that_send(page: Page) -> None:
    greeting = page.locator("#greeting")
    await expect(greeting).to_be_visible()
    await expect(greeting.locator("h2")).to_contain_text("I'm Andy")
    suggestions = greeting.locator(".suggestion")
    assert await suggestions.count() >= 3
    first = (await suggestions.first.inner_text()).strip()
    await suggestions.first.click()
    await expect(page.locator("#messages .msg.owner")).to_contain_text(first)
    await expect(greeting).to_be_hidden()
    await expect(assistant(page).first).to_contain_text(first, timeout=30_000)


async def test_working_is_shown_and_clears_when_the_answer_comes(page: Page) -> None:
    await say(page, "[mock:sleep=3][mock:reply=done thinking]")
    await expect(page.locator("#typing")).to_contain_text("is working", timeout=15_000)
    await expect(page.locator("#stop")).to_be_visible()
    await expect(page.locator("#messages .msg.owner .status")).to_have_attribute("data-status", "working")
    await expect(assistant(page).filter(has_text="done thinking")).to_be_visible(timeout=30_000)
    await expect(page.locator("#typing")).to_be_hidden(timeout=10_000)
    await expect(page.locator("#stop")).to_be_hidden()


async def test_a_file_reaches_the_sandbox_and_files_the_agent_sends_download(page: Page, host: Host, tmp_path: Path) -> None:
    upload = tmp_path / "notes.csv"
    upload.write_text("city,temp\nOslo,4\n")
    await page.set_input_files("#file", str(upload))
    await expect(page.locator("#attachments li")).to_contain_text("notes.csv")
    await say(page, "see the attached")
    await expect(page.locator("#attachments li")).to_have_count(0)
    echo = assistant(page).filter(has_text="attachment notes.csv")
    await expect(echo).to_be_visible(timeout=30_000)
    sandbox_path = (await echo.inner_text()).split(" at ", 1)[1].split()[0]
    assert sandbox_path.startswith("/workspace/inbox/") and sandbox_path.endswith("/notes.csv")
    await say(page, f"[mock:read={sandbox_path}]")
    await expect(assistant(page).filter(has_text="Oslo,4")).to_be_visible(timeout=30_000)
    data = bytes(range(256)) * 4
    await host.channels["web"].send(OutgoingMessage(route=Route("web", WEB_CHAT), kind="file", text="your report",
                                                    id="f1", file=FileAttachment("report.bin", data)))
    async with page.expect_download() as info:
        await page.locator("#messages .msg.assistant .file a", has_text="report.bin").click()
    assert Path(await (await info.value).path()).read_bytes() == data


PNG_1PX = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cf"
                        "c0f01f0005000201a1a7e2650000000049454e44ae426082")


async def test_a_dropped_image_is_previewed_sent_and_shown_inline(page: Page, host: Host) -> None:
    await page.evaluate("""(bytes) => {
        const file = new File([new Uint8Array(bytes)], 'dot.png', {type: 'image/png'});
        const data = new DataTransfer();
        data.items.add(file);
        const chat = document.getElementById('chat');
        chat.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
        chat.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", list(PNG_1PX))
    preview = page.locator("#attachments li img")
    await expect(preview).to_have_count(1)
    assert (await preview.get_attribute("src") or "").startswith("blob:")
    await say(page, "a picture")
    sent = page.locator("#messages .msg.owner img.preview")
    await expect(sent).to_have_count(1, timeout=10_000)
    await expect(sent).to_have_js_property("naturalWidth", 1)  # served inline by the host, and it loads
    await expect(assistant(page).filter(has_text="attachment dot.png")).to_be_visible(timeout=30_000)
    # An SVG is never shown inline (it could carry script): a download link only.
    await host.channels["web"].send(OutgoingMessage(route=Route("web", WEB_CHAT), kind="file", text="", id="svg1",
                                                    file=FileAttachment("x.svg", b"<svg onload='alert(1)'/>",
                                                                        "image/svg+xml")))
    svg = page.locator("#messages .msg.assistant", has_text="x.svg")
    await expect(svg).to_be_visible()
    assert await svg.locator("img").count() == 0


async def test_the_credential_request_opens_a_modal_form(page: Page, private_config_dir: Path) -> None:
    from nanoclaw.vault.store import SecretStore

    ask = json.dumps({"name": "weather", "host_pattern": "api.weather.test", "header_name": "X-Api-Key",
                      "value_format": "{value}", "description": "Your key from weather.test"})
    await say(page, f"[mock:tool=request_credential:{ask}]")
    button = page.locator("#messages .msg.assistant button.open-form")
    await expect(button).to_be_visible(timeout=30_000)
    await button.click()
    form = page.frame_locator("#modal-frame")
    await form.locator("input[name=value]").fill("sk-browser-canary-123")
    await form.locator("button[value=save]").click()
    await expect(form.locator("body")).to_contain_text("Saved", timeout=10_000)
    await page.click("#modal-close")
    await expect(assistant(page).last).to_contain_text("saved", timeout=30_000)
    card = page.locator("#messages .msg.assistant", has_text="Credential needed")
    await expect(card.locator(".outcome")).to_contain_text("Saved in the vault")  # the card's final state
    await expect(card.locator("button.open-form")).to_have_count(0)
    rules = SecretStore.open(private_config_dir).for_request("api.weather.test", "GET", "/", "main")
    assert rules == [("X-Api-Key", "sk-browser-canary-123")]
    assert "sk-browser-canary-123" not in await page.content()
