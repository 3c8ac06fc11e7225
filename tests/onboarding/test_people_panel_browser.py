"""The dashboard's channels-and-people panel in a real headless Chromium: a channel failing on an untrusted
certificate is shown as failed with its fix, and a new chat is answered with its button."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from nanoclaw.channels.base import InboundEvent
from nanoclaw.host.app import Host
from tests.channels.platforms.email import EmailPlatform
from tests.web.conftest import ARTIFACTS, browser  # noqa: F401 - fixture
from tests.onboarding.helpers import wait_until
from tests.onboarding.platform_host import host_with

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture
async def failing_email(tmp_path: Path) -> AsyncIterator[tuple[Host, EmailPlatform]]:
    platform = EmailPlatform(tls="ssl", trust=False)
    async with host_with(platform, tmp_path) as host:
        yield host, platform


@pytest.fixture
async def page(browser: Browser, failing_email: tuple[Host, EmailPlatform],  # noqa: F811
               request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await browser.new_context()
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    await p.goto(failing_email[0].web.login_link)
    try:
        yield p
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await p.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        await context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


async def test_channel_health_failed_and_a_new_chat_answered_on_the_dashboard(
        page: Page, failing_email: tuple[Host, EmailPlatform]) -> None:
    host, _platform = failing_email
    await page.click("[role=tab][data-tab=dashboard]")
    panel = page.locator("#d-people")
    await expect(panel).to_contain_text("Channels and people")
    email_row = panel.locator("tr", has_text="email")
    await expect(email_row).to_contain_text("failed (the IMAP server 127.0.0.1:")
    await expect(email_row).to_contain_text("EMAIL_CA_FILE")

    await host.receive(  # a chat nobody wired: a second terminal
        InboundEvent("terminal", "guest-tty", "g1", "hello from a second terminal", "guest", is_dm=True))
    await expect(panel.locator("tr", has_text="hello from a second terminal")).to_be_visible(timeout=10_000)
    await panel.locator("tr", has_text="hello from a second terminal").get_by_role(
        "button", name="Answer with main").click()
    await wait_until(lambda: not host.conn.execute(
        "SELECT 1 FROM approvals WHERE kind = 'new_chat' AND status = 'open'").fetchone())
    await expect(panel).not_to_contain_text("hello from a second terminal", timeout=10_000)
