"""Each channel inside a real host: a person's message on the fake platform reaches an agent in a real sandbox
(mock provider) and its answer comes back to the platform, in the same chat."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from nanoclaw.db import messaging_groups, wirings
from nanoclaw.host.app import Host
from tests.channels.conftest import PLATFORMS
from tests.conftest import make_settings

pytestmark = pytest.mark.sandbox


@pytest.mark.parametrize("name", list(PLATFORMS))
async def test_answer_comes_back_through_the_platform(name: str, tmp_path: Path) -> None:
    port = free_port()  # webhook URLs are known before the channels start, as the host's own start binds first
    platform = PLATFORMS[name]()
    platform.webhook_base = f"http://127.0.0.1:{port}/hooks"
    env = await platform.start(tmp_path)
    host = Host(make_settings(tmp_path / "home", extra=env, web_port=port))
    try:
        await host.start()
        channel = platform.channel_type
        assert await host.starter.wait(30), f"{channel} was still connecting after 30 s"
        assert host.starter.state.get(channel) == "connected", f"{channel} did not start: {host.starter.errors}"
        group = messaging_groups.upsert(host.conn, channel, platform.group_chat)
        wirings.wire(host.conn, group.id, "main", trigger="mention", session_mode="shared")
        await platform.user_says("[mock:reply=pong from the sandbox]", mention=True)
        sent = await platform.wait_bot_messages(1, platform.group_chat, timeout=30)
        assert any("pong from the sandbox" in m.text for m in sent), sent
    finally:
        await host.stop()
        await platform.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
