"""Ask the agent what's wrong: the admin agent reads the host's status, channel health, filtered log events and
doctor's checks with its tools, and answers in chat. A real host, real sandboxes, the mock provider calling the
tools; the email channel fails on an untrusted certificate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db import agent_groups, messaging_groups, wirings
from nanoclaw.db.sessions import Session
from nanoclaw.errors import DestinationRefused
from nanoclaw.host.app import Host
from nanoclaw.logs import get_logger
from tests.channels.platforms.email import EmailPlatform
from tests.conftest import fake
from tests.onboarding.helpers import wait_until, web_chat
from tests.onboarding.platform_host import host_with

pytestmark = pytest.mark.sandbox
SECRET = "xoxb-diagnostics-canary-123456"


def tool(name: str, **args: object) -> str:
    return f"[mock:tool={name}:{json.dumps(args)}]"


async def ask(host: Host, text: str, n: int) -> str:
    """The owner writes in the web chat; returns the agent's answer."""
    await host.receive(InboundEvent("web", "owner", f"ask-{n}", text, "owner", is_dm=True))
    await wait_until(lambda: len([m for m in web_chat(host) if m["author"] != "owner" and m["kind"] == "chat"]) >= n,
                     timeout=60)
    return [m for m in web_chat(host) if m["author"] != "owner" and m["kind"] == "chat"][n - 1]["text"]


async def test_channel_health_and_filtered_logs_read_by_the_admin_agent(tmp_path: Path) -> None:
    platform = EmailPlatform(tls="ssl", trust=False)
    async with host_with(platform, tmp_path, SLACK_BOT_TOKEN=SECRET) as host:
        health = json.loads(await ask(host, tool("channel_health"), 1))
        assert health["email"]["state"] == "failed" and "EMAIL_CA_FILE" in health["email"]["fix"]
        status = json.loads(await ask(host, tool("host_status"), 2))
        assert status["provider"] == "mock" and status["channel_health"]["email"]["state"] == "failed"
        assert "main" in status["sessions_per_group"]

        get_logger("nanoclaw.channels.probe").warning("probe.failed", text="what someone wrote in another chat",
                                                      error=f"refused {SECRET} for good")
        logs = await ask(host, tool("recent_logs", contains="probe"), 3)
        assert "probe.failed" in logs and "text=…" in logs and "[secret]" in logs
        assert SECRET not in logs and "what someone wrote" not in logs
        assert "channel.start_failed channel=email" in await ask(host, tool("recent_logs", level="error"), 4)

        checks = await ask(host, tool("doctor_checks"), 5)
        assert "FAIL channel email: failed (the IMAP server" in checks and "ok   python" not in checks
        assert "ok python: Python 3" in checks


async def test_channel_health_tools_are_for_the_admin_group_only(host: Host) -> None:
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    chat = messaging_groups.upsert(host.conn, "fake", "fam")
    wirings.wire(host.conn, chat.id, "family", trigger="always")
    ch = fake(host)
    await ch.say(tool("recent_logs"), chat="fam")
    assert (await ch.wait_sent(1))[0].text == "Error: no tool recent_logs"
    session = Session("s-x", "k", "family", chat.id, None, "shared", "active", 0.0)
    from nanoclaw.host.diagnostics import Diagnostics

    diagnostics = Diagnostics(host.conn, host.status, lambda: [], {}, host.settings.home)
    with pytest.raises(DestinationRefused, match="only for the admin agent group"):
        await diagnostics.handle(session, "host_status", {})
