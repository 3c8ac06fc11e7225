"""`nanoclaw run` as a person starts it: the link it prints opens the web chat in Chromium."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.web.conftest import ARTIFACTS, say

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


async def test_nanoclaw_run_serves_the_web_chat_on_port_8700(browser: Browser, tmp_path: Path) -> None:
    """Acceptance, literally: `nanoclaw run --provider mock` with its defaults; Chromium at 127.0.0.1:8700."""
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
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        await page.goto(link.strip())
        assert page.url == "http://127.0.0.1:8700/"
        await expect(page.locator("#conn")).to_have_text("connected", timeout=10_000)
        await say(page, "hello from Chromium")
        await expect(page.locator("#messages .msg.assistant").first).to_contain_text("Owner: hello from Chromium",
                                                                                    timeout=30_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "nanoclaw-run-port-8700.png"))
        await context.close()
        assert errors == []
    finally:
        host.stop()
