"""The dashboard in the browser: live state without polling, human times, and the owner's levers."""

from __future__ import annotations

import re
import time

import pytest
from playwright.async_api import Page, expect

from nanoclaw.db import messaging_groups, tasks, wirings
from nanoclaw.host.app import Host
from tests.web.conftest import Watched, assistant, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


async def test_state_is_pushed_live_without_polling(page: Page, host: Host) -> None:
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/api/dashboard") else None)
    await page.click("#tab-dashboard")
    await expect(page.locator("#d-status")).to_contain_text("mock")
    await expect(page.locator("#d-sessions")).to_contain_text("None.")
    await page.click("#tab-chat")
    await say(page, "wake a runner")
    await expect(assistant(page)).to_have_count(1, timeout=30_000)
    await page.click("#tab-dashboard")
    await expect(page.locator("#d-sessions")).to_contain_text("running", timeout=10_000)
    task = tasks.create(host.conn, agent_group_id="main", prompt="water the plants", kind="interval", spec="3600",
                        timezone="UTC", next_run=time.time() + 3 * 3600 + 60)
    host.scheduler.reschedule()
    from nanoclaw.logs import get_logger

    get_logger("nanoclaw.test").info("test.task_created", task=task.id)  # what any change does: an event
    row = page.locator("#d-tasks tr", has_text="water the plants")
    await expect(row).to_contain_text("in 3 h", timeout=5_000)  # pushed, human time
    await expect(page.locator("#d-logs")).to_contain_text("test.task_created")
    await page.wait_for_timeout(5500)  # the old page polled every 5 s: it must not any more
    assert len(polls) == 2, polls  # one GET each time the tab opened, nothing else


async def test_a_task_is_paused_added_and_edited_from_the_dashboard(watched: Watched, host: Host) -> None:
    page = watched.page
    watched.allowed.append("400 (Bad Request)")  # the wrong schedule below, refused on purpose
    task = tasks.create(host.conn, agent_group_id="main", prompt="water the plants", kind="interval", spec="3600",
                        timezone="UTC", next_run=time.time() + 3600)
    await page.click("#tab-dashboard")
    row = page.locator("#d-tasks tr", has_text="water the plants")
    await row.locator("button.task-toggle").click()
    await expect(row).to_contain_text("paused")
    assert tasks.get(host.conn, task.id).status == "paused"  # type: ignore[union-attr]
    await page.locator("summary", has_text="Add a task").click()
    form = page.locator("#task-form")
    await form.locator("[name=prompt]").fill("send me the news")
    await form.locator("[name=kind]").select_option("cron")
    await form.locator("[name=spec]").fill("0 8 * * *")
    await form.locator("[name=timezone]").fill("Europe/Oslo")
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".result")).to_have_text("Added.")
    news = page.locator("#d-tasks tr", has_text="send me the news")
    await expect(news).to_contain_text("Europe/Oslo")
    await news.locator("button", has_text="Edit").click()
    await expect(form.locator("[name=prompt]")).to_have_value("send me the news")
    await form.locator("[name=spec]").fill("not a schedule")
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".result")).not_to_have_text(re.compile("Changed"))  # a sentence saying why
    await form.locator("[name=spec]").fill("30 7 * * *")
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".result")).to_have_text("Changed.")
    [changed] = [t for t in tasks.list_for(host.conn) if t.prompt == "send me the news"]
    assert (changed.kind, changed.spec, changed.timezone) == ("cron", "30 7 * * *", "Europe/Oslo")


async def test_secrets_are_added_rotated_and_removed_and_the_value_never_comes_back(page: Page, host: Host) -> None:
    await page.click("#tab-dashboard")
    await page.locator("summary", has_text="Add a secret").click()
    form = page.locator("#secret-form")
    await form.locator("[name=name]").fill("weather")
    await form.locator("[name=host]").fill("api.weather.test")
    await form.locator("[name=header]").fill("X-Api-Key")
    await form.locator("[name=format]").fill("{value}")
    await form.locator("[name=value]").fill("sk-dash-canary-1")
    await form.locator("button[type=submit]").click()
    row = page.locator("#d-secrets tr", has_text="weather")
    await expect(row).to_contain_text("api.weather.test")
    await expect(form.locator("[name=value]")).to_have_value("")
    assert host.vault.for_request("api.weather.test", "GET", "/", "main") == [("X-Api-Key", "sk-dash-canary-1")]
    await row.locator("input[type=password]").fill("sk-dash-canary-2")
    await row.locator("button", has_text="Rotate").click()
    await expect(row.locator(".result")).to_have_text("Rotated.")
    assert host.vault.for_request("api.weather.test", "GET", "/", "main") == [("X-Api-Key", "sk-dash-canary-2")]
    assert "sk-dash-canary" not in await page.content()
    await row.locator("button", has_text="Remove").click()
    await expect(page.locator("#d-secrets tr", has_text="weather")).to_have_count(0)
    assert host.vault.rules() == []


async def test_memory_triggers_and_wiring_a_new_chat(page: Page, host: Host) -> None:
    await page.click("#tab-dashboard")
    await page.locator("#d-groups tr", has_text="Main (admin)").locator("button.edit-memory").click()
    await expect(page.locator("#memory-dialog")).to_be_visible()
    await expect(page.locator("#memory-text")).to_have_value(re.compile("admin group"))
    await page.fill("#memory-text", "# Main\n\nThe owner likes tea.\n")
    await page.click("#memory-save")
    memory = host.settings.groups_dir / "main" / "CLAUDE.md"
    await expect(page.locator("#memory-dialog")).to_be_hidden()
    for _ in range(50):
        if "likes tea" in memory.read_text():
            break
        await page.wait_for_timeout(100)
    assert memory.read_text() == "# Main\n\nThe owner likes tea.\n"
    terminal = page.locator("#d-chats tr", has_text="terminal:local")
    await terminal.locator(".wiring select").select_option("prefix")
    await terminal.locator(".wiring input").fill("!ai")
    await terminal.locator(".wiring button", has_text="Save").click()
    await expect(terminal.locator(".wiring button", has_text="Saved")).to_be_visible()
    chat = messaging_groups.upsert(host.conn, "web", "guest-room", name="Guest room")  # wrote in, not answered
    from nanoclaw.logs import get_logger

    get_logger("nanoclaw.test").info("test.chat_seen")
    guest = page.locator("#d-chats tr", has_text="Guest room")
    await expect(guest).to_contain_text("Unwired", timeout=5_000)
    await guest.locator(".wire-form select[name=trigger]").select_option("always")
    await guest.locator(".wire-form button").click()
    await expect(guest.locator(".wiring")).to_contain_text("main", timeout=5_000)
    [wired] = wirings.for_messaging_group(host.conn, chat.id)
    assert (wired.agent_group_id, wired.trigger) == ("main", "always")


async def test_log_filters_and_a_session_transcript(page: Page) -> None:
    await say(page, "something for the transcript")
    await expect(assistant(page)).to_have_count(1, timeout=30_000)
    await page.click("#tab-dashboard")
    logs = page.locator("#d-logs li")
    await expect(logs.filter(has_text="runner.started")).to_have_count(1, timeout=10_000)
    await page.select_option("#log-level", "WARNING")
    await expect(logs.filter(has_text="runner.started")).to_have_count(0)
    await page.select_option("#log-level", "")
    await page.fill("#log-text", "web.login")
    await expect(logs.first).to_contain_text("web.login")
    assert all("web.login" in t for t in await logs.all_inner_texts())
    await page.locator("#d-sessions button.transcript-open").first.click()
    dialog = page.locator("#transcript-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("li").first).to_contain_text("something for the transcript")
    await expect(dialog.locator("li.out")).to_contain_text("received 1 message")
    await page.click("#transcript-close")
    await expect(dialog).to_be_hidden()
