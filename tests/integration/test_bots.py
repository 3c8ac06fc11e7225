"""Messages written by bots never start an agent unless the chat's wiring allows bots (no bot loops)."""

from __future__ import annotations

import asyncio

import pytest

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db import messaging_groups, wirings
from nanoclaw.host.app import Host
from tests.conftest import fake, wire

pytestmark = pytest.mark.sandbox


def bot_says(text: str, message_id: str) -> InboundEvent:
    return InboundEvent(channel_type="fake", platform_id="chat1", message_id=message_id, text=text,
                        sender_id="otherbot", sender_name="OtherBot", from_bot=True)


async def test_a_bot_mentioning_the_assistant_does_not_start_it(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    result = await host.receive(bot_says("@Andy answer me [mock:reply=loop]", "b1"))
    assert result.accepted and not result.triggered  # stored as context, nothing woken
    ch = fake(host)
    await asyncio.sleep(0.5)
    assert ch.sent == []
    await ch.say("@Andy and now a person", chat="chat1")
    sent = await ch.wait_sent(1, timeout=30)
    assert "OtherBot (context): @Andy answer me" in sent[0].text  # the bot's words reach the agent as context


async def test_a_wiring_may_allow_bots(host: Host) -> None:
    group = messaging_groups.upsert(host.conn, "fake", "chat1")
    wirings.wire(host.conn, group.id, "main", trigger="mention", allow_bots=True)
    result = await host.receive(bot_says("@Andy [mock:reply=hello bot]", "b2"))
    assert result.triggered
    assert (await fake(host).wait_sent(1, timeout=30))[0].text == "hello bot"


def test_the_wire_command_takes_allow_bots(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from nanoclaw.cli import main

    monkeypatch.setenv("NANOCLAW_HOME", str(host.settings.home))
    result = CliRunner().invoke(main, ["groups", "wire", "telegram:-100", "main", "--allow-bots"])
    assert result.exit_code == 0, result.output
    chat = messaging_groups.find(host.conn, "telegram", "-100")
    assert chat is not None and [w.allow_bots for w in wirings.for_messaging_group(host.conn, chat.id)] == [True]
