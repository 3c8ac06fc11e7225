"""The web chat and dashboard in a real headless Chromium (Playwright), against a real host.

The host runs the mock provider in real sandboxes. Screenshots of each test's
last screen are kept in test-artifacts/browser/ (or $NANOCLAW_TEST_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.db import tasks
from nanoclaw.host.app import Host
from nanoclaw.host.bootstrap import WEB_CHAT
from nanoclaw.protocol.messages import Route
from tests.conftest import make_settings

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("NANOCLAW_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "browser"


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    h = Host(make_settings(tmp_path / "home"))
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


@pytest.fixture
async def page(browser: Browser, host: Host, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await browser.new_context(accept_downloads=True)
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    await p.goto(host.web.login_link)
    await expect(p.locator("#conn")).to_have_text("connected", timeout=10_000)
    try:
        yield p
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await p.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        await context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


def assistant(page: Page, scope: str = "#messages") -> object:
    return page.locator(f"{scope} .msg.assistant")


async def test_browser_chat_answers_a_message_typed_into_it(page: Page) -> None:
    """Acceptance: a message typed into the web chat is answered (mock provider, real sandbox)."""
    await say(page, "hello from the browser")
    await expect(page.locator("#messages .msg.owner").first).to_contain_text("hello from the browser")
    answer = page.locator("#messages .msg.assistant").first
    await expect(answer).to_contain_text("Owner: hello from the browser", timeout=30_000)
    await expect(page.locator("#messages .msg.owner .status").first).to_have_text("✓", timeout=10_000)


async def test_browser_renders_markdown_and_never_runs_html_from_the_agent(page: Page) -> None:
    await say(page, "[mock:reply=**bold** and `code` <img src=x onerror=\"document.title='pwned'\"> <script>x()</script>]")
    answer = page.locator("#messages .msg.assistant").first
    await expect(answer.locator("strong")).to_have_text("bold", timeout=30_000)
    await expect(answer.locator("code")).to_have_text("code")
    assert await answer.locator("img, script").count() == 0
    await expect(answer).to_contain_text("<img src=x")  # shown as text
    assert await page.title() != "pwned"


async def test_browser_question_card_buttons_answer_the_agent(page: Page) -> None:
    ask = json.dumps({"question": "Deploy to production?", "options": ["Yes", "No"]})
    await say(page, f"[mock:tool=ask_user_question:{ask}]")
    card = page.locator("#messages .msg.assistant", has_text="Deploy to production?")
    await expect(card.locator("button", has_text="No")).to_be_visible(timeout=30_000)
    await card.locator("button", has_text="No").click()
    await expect(card.locator("button.chosen")).to_have_text("No")
    # The tool returns the person's answer, which the mock agent says as its reply.
    await expect(page.locator("#messages .msg.assistant", has_text="No").last).to_be_visible(timeout=30_000)
    assert await card.locator("button:enabled").count() == 0


async def test_browser_file_upload_reaches_the_sandbox_and_downloads_work(page: Page, host: Host, tmp_path: Path) -> None:
    upload = tmp_path / "notes.csv"
    upload.write_text("city,temp\nOslo,4\n")
    await page.set_input_files("#file", str(upload))
    await expect(page.locator("#files-chosen")).to_have_text("notes.csv")
    await say(page, "see the attached")
    echo = page.locator("#messages .msg.assistant", has_text="attachment notes.csv")
    await expect(echo).to_be_visible(timeout=30_000)
    sandbox_path = (await echo.inner_text()).split(" at ", 1)[1].split()[0]
    assert sandbox_path.startswith("/workspace/inbox/") and sandbox_path.endswith("/notes.csv")
    await say(page, f"[mock:read={sandbox_path}]")
    await expect(page.locator("#messages .msg.assistant", has_text="Oslo,4")).to_be_visible(timeout=30_000)
    # A file the assistant sends is a download link.
    data = bytes(range(256)) * 4
    await host.channels["web"].send(OutgoingMessage(route=Route("web", WEB_CHAT), kind="file", text="your report",
                                                    id="f1", file=FileAttachment("report.bin", data)))
    link = page.locator("#messages .msg.assistant .file a", has_text="report.bin")
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    assert Path(await download.path()).read_bytes() == data


async def test_browser_threads_keep_their_own_conversation(page: Page) -> None:
    await say(page, "start a topic")
    root = page.locator("#messages .msg.owner", has_text="start a topic")
    await expect(page.locator("#messages .msg.assistant")).to_have_count(1, timeout=30_000)
    await root.locator(".open-thread").click()
    await expect(page.locator("#thread")).to_be_visible()
    await page.fill("#thread-text", "a reply in the thread")
    await page.press("#thread-text", "Enter")
    in_thread = page.locator("#thread-messages .msg.assistant")
    await expect(in_thread).to_contain_text("a reply in the thread", timeout=30_000)
    await expect(in_thread).not_to_contain_text("start a topic")  # its own session: no main-chat history
    await expect(page.locator("#messages .msg.assistant")).to_have_count(1)
    await expect(root.locator(".open-thread")).to_contain_text("in thread")


async def test_browser_shows_typing_while_the_agent_works(page: Page) -> None:
    await say(page, "[mock:sleep=3][mock:reply=done thinking]")
    await expect(page.locator("#typing")).to_be_visible(timeout=15_000)
    await expect(page.locator("#typing")).to_contain_text("is typing")
    await expect(page.locator("#messages .msg.assistant", has_text="done thinking")).to_be_visible(timeout=30_000)
    await expect(page.locator("#typing")).to_be_hidden(timeout=10_000)


async def test_browser_credential_request_opens_a_modal_form(page: Page, host: Host, private_config_dir: Path) -> None:
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
    await expect(page.locator("#messages .msg.assistant", has_text="saved")).to_be_visible(timeout=30_000)
    rules = SecretStore.open(private_config_dir).for_request("api.weather.test", "GET", "/", "main")
    assert rules == [("X-Api-Key", "sk-browser-canary-123")]
    assert "sk-browser-canary-123" not in await page.content()


async def test_browser_dashboard_shows_the_host_and_pauses_a_task(page: Page, host: Host) -> None:
    await say(page, "wake a runner")
    await expect(page.locator("#messages .msg.assistant")).to_have_count(1, timeout=30_000)
    task = tasks.create(host.conn, agent_group_id="main", prompt="water the plants", kind="interval", spec="3600",
                        timezone="UTC", next_run=time.time() + 3600)
    await page.click("nav button[data-tab=dashboard]")
    await expect(page.locator("#d-groups")).to_contain_text("Main (admin)")
    await expect(page.locator("#d-chats")).to_contain_text("web:owner")
    await expect(page.locator("#d-sessions")).to_contain_text("running", timeout=10_000)
    await expect(page.locator("#d-status")).to_contain_text("mock")
    await expect(page.locator("#onboarding")).to_be_visible()  # no model key yet
    row = page.locator("#d-tasks tr", has_text="water the plants")
    await row.locator("button.task-toggle").click()
    await expect(row).to_contain_text("paused")
    assert tasks.get(host.conn, task.id).status == "paused"  # type: ignore[union-attr]
    await expect(page.locator("#d-logs")).to_contain_text("host.started")


async def test_browser_dashboard_edits_memory_and_triggers(page: Page, host: Host) -> None:
    await page.click("nav button[data-tab=dashboard]")
    await page.locator("#d-groups tr", has_text="Main (admin)").locator("button.edit-memory").click()
    await expect(page.locator("#memory-dialog")).to_be_visible()
    await expect(page.locator("#memory-text")).to_have_value(re.compile("admin group"))
    await page.fill("#memory-text", "# Main\n\nThe owner likes tea.\n")
    await page.click("#memory-save")
    memory = host.settings.groups_dir / "main" / "CLAUDE.md"
    for _ in range(50):
        if "likes tea" in memory.read_text():
            break
        await page.wait_for_timeout(100)
    assert memory.read_text() == "# Main\n\nThe owner likes tea.\n"
    terminal = page.locator("#d-chats tr", has_text="terminal:local")
    await terminal.locator("select").select_option("prefix")
    await terminal.locator("input").fill("!ai")
    await terminal.locator("button", has_text="save").click()
    await expect(terminal.locator("button", has_text="saved")).to_be_visible()
    row = host.conn.execute("SELECT trigger, trigger_value FROM wirings w JOIN messaging_groups m "
                            "ON m.id = w.messaging_group_id WHERE m.channel_type = 'terminal'").fetchone()
    assert tuple(row) == ("prefix", "!ai")


async def test_browser_without_the_login_link_sees_no_chat(browser: Browser, host: Host) -> None:
    context = await browser.new_context()
    p = await context.new_page()
    response = await p.goto(host.web_url + "/")
    assert response is not None and response.status == 401
    await expect(p.locator("body")).to_contain_text("nanoclaw web-url")
    assert await p.locator("#composer").count() == 0
    bad = await p.goto(host.web_url + "/login?token=wrong")
    assert bad is not None and bad.status == 403
    await context.close()


async def test_browser_nanoclaw_run_serves_the_web_chat_on_port_8700(browser: Browser, tmp_path: Path) -> None:
    """Acceptance, literally: `nanoclaw run --provider mock` with its defaults; Chromium at 127.0.0.1:8700."""
    import socket
    import subprocess

    from tests.integration.hostproc import NANOCLAW, HostProcess

    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 8700)) != 0, "port 8700 is taken by another program"
    host = HostProcess(tmp_path / "home", env={"NANOCLAW_WEB_PORT": "8700"}).start()
    try:
        link = subprocess.run([NANOCLAW, "web-url"], env=host.env, capture_output=True, text=True, check=True).stdout
        assert link.startswith("http://127.0.0.1:8700/login?token=")
        assert link.strip() in host.log()  # printed at start, for the owner to click
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(link.strip())
        assert page.url == "http://127.0.0.1:8700/"
        await expect(page.locator("#conn")).to_have_text("connected", timeout=10_000)
        await say(page, "hello from Chromium")
        await expect(page.locator("#messages .msg.assistant").first).to_contain_text("Owner: hello from Chromium",
                                                                                    timeout=30_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "nanoclaw-run-port-8700.png"))
        await context.close()
    finally:
        host.stop()
