"""Discord specifics beyond the contract: settings errors, mention and thread mapping, button custom ids,
interaction acknowledgement, nonce de-duplication, attachment limits, error mapping, reconnect after garbage."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.channels.base import IngestResult, OutgoingMessage
from nanoclaw.channels.discord import DiscordChannel
from nanoclaw.errors import ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running
from tests.channels.harness import RecordingHost
from tests.channels.platforms.discord import DiscordPlatform
from tests.conftest import make_settings
from tests.fakes.discord_server import BOT_ID, DM_CHANNEL, TEXT_CHANNEL, THREAD

discord_only = pytest.mark.parametrize("running", ["discord"], indirect=True)


def _route(chat: str = TEXT_CHANNEL, thread: str | None = None) -> Route:
    return Route("discord", chat, thread)


def _card(card_id: str | None, buttons: tuple[str, ...], id: str = "c1") -> OutgoingMessage:
    return OutgoingMessage(route=_route(), kind="question" if card_id else "card", text="Pick one", id=id,
                           title="Choice", buttons=buttons, card_id=card_id)


class _RefusingHost(RecordingHost):
    """A host that refuses every answer (an expired question)."""

    async def answer(self, card_id: str, value: str, sender_id: str) -> str | None:
        await super().answer(card_id, value, sender_id)
        return "This question has expired."


@pytest.fixture
async def refusing(tmp_path: Path) -> AsyncIterator[tuple[DiscordPlatform, RecordingHost, DiscordChannel]]:
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    host = _RefusingHost(make_settings(tmp_path / "home", extra=env), accept=lambda e: IngestResult(True))
    channel = DiscordChannel(host)
    await channel.start()
    try:
        yield platform, host, channel
    finally:
        await channel.stop()
        await platform.stop()


async def _start_with(tmp_path: Path, env: dict[str, str]) -> DiscordChannel:
    channel = DiscordChannel(RecordingHost(make_settings(tmp_path / "home", extra=env)))
    await channel.start()
    return channel


async def test_discord_missing_token_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        await _start_with(tmp_path, {"DISCORD_API_BASE": "http://127.0.0.1:9/api/v10"})


async def test_discord_refused_token_is_a_config_error(tmp_path: Path) -> None:
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    try:
        with pytest.raises(ConfigError, match="refused DISCORD_BOT_TOKEN"):
            await _start_with(tmp_path, {**env, "DISCORD_BOT_TOKEN": "not-the-token"})
    finally:
        await platform.stop()


async def test_discord_missing_message_content_intent_is_a_config_error(tmp_path: Path) -> None:
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    platform.fake.message_content_allowed = False
    try:
        with pytest.raises(ConfigError, match="Message Content"):
            await _start_with(tmp_path, env)
    finally:
        await platform.stop()


@discord_only
async def test_discord_mentions_become_the_assistant_name(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    alice = fake.user_json(fake.user_id("u1"), "Alice")
    await fake.say(TEXT_CHANNEL, f"<@!{BOT_ID}> hi and <@1400000000000000077>", user=alice,
                   mentions=[fake.bot_user(), fake.user_json("1400000000000000077", "Bob")])
    await fake.say(TEXT_CHANNEL, "<@1400000000000000077> not for the bot", user=alice,
                   mentions=[fake.user_json("1400000000000000077", "Bob")])
    first, second = await running.host.wait_events(2)
    assert first.mentions_assistant and first.text == "@Andy hi and <@1400000000000000077>"
    assert not second.mentions_assistant


@discord_only
async def test_discord_threads_dms_and_own_messages_are_mapped(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    await running.platform.user_says("in the thread", thread=THREAD)
    await running.platform.user_says("privately", dm=True)
    await fake.say(TEXT_CHANNEL, "my own echo", user=fake.bot_user())  # the bot's own message: dropped
    await running.platform.user_says("last")
    thread_event, dm_event, last = await running.host.wait_events(3)
    assert (thread_event.platform_id, thread_event.thread_id) == (TEXT_CHANNEL, THREAD)
    assert thread_event.chat_name == "Family #general" and not thread_event.is_dm
    assert dm_event.is_dm and dm_event.platform_id == DM_CHANNEL and dm_event.thread_id is None
    assert last.text == "last" and len(running.host.events) == 3


@discord_only
async def test_discord_buttons_carry_card_and_label_and_presses_are_acknowledged(running: Running) -> None:
    long_label = "L" * 80  # the longest label the host sends
    await running.channel.send(_card("oa-abc12345", ("Approve", long_label)))
    [msg] = await running.platform.wait_bot_messages(1)
    custom_ids = [c["custom_id"] for row in msg.raw["components"] for c in row["components"]]
    assert all(len(c) <= 100 for c in custom_ids) and len(set(custom_ids)) == 2
    assert msg.text == "**Choice**\nPick one"
    await running.platform.press(msg, long_label, sender="u2")
    [(card_id, value, sender)] = await running.host.wait_answers(1)
    assert (card_id, value) == ("oa-abc12345", long_label) and sender.isdigit()
    fake = running.platform.fake  # type: ignore[attr-defined]
    for _ in range(100):
        if fake.interaction_responses:
            break
        await asyncio.sleep(0.02)
    assert [r["type"] for r in fake.interaction_responses] == [6]  # DEFERRED_UPDATE_MESSAGE


async def test_discord_refused_answer_is_shown_only_to_the_presser(
        refusing: tuple[DiscordPlatform, RecordingHost, DiscordChannel]) -> None:
    platform, host, channel = refusing
    await channel.send(_card("q-abc12345", ("Yes", "No")))
    [msg] = await platform.wait_bot_messages(1)
    await platform.press(msg, "Yes")
    await host.wait_answers(1)
    for _ in range(100):
        if platform.fake.interaction_responses:
            break
        await asyncio.sleep(0.02)
    [response] = platform.fake.interaction_responses
    assert response["type"] == 4 and response["data"]["flags"] == 64  # an ephemeral message
    assert "expired" in response["data"]["content"]


@discord_only
async def test_discord_card_without_id_has_disabled_buttons(running: Running) -> None:
    await running.channel.send(_card(None, ("Docs", "Status")))
    [msg] = await running.platform.wait_bot_messages(1)
    buttons = [c for row in msg.raw["components"] for c in row["components"]]
    assert [b["label"] for b in buttons] == ["Docs", "Status"] and all(b.get("disabled") for b in buttons)


@discord_only
async def test_discord_retried_send_posts_once(running: Running) -> None:
    """The nonce with enforce_nonce makes a retry after a lost answer a no-op on Discord."""
    message = OutgoingMessage(route=_route(), kind="chat", text="only once " + "x " * 1200, id="row-7")
    first = await running.channel.send(message)
    second = await running.channel.send(message)
    sent = await running.platform.bot_messages()
    assert len(sent) == 2  # the text needed two pieces; the retry added none
    assert first.platform_message_id == second.platform_message_id == sent[-1].id


@discord_only
async def test_discord_agent_cannot_ping_everyone(running: Running) -> None:
    await running.channel.send(OutgoingMessage(route=_route(), kind="chat", text="@everyone look", id="o1"))
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.raw["allowed_mentions"]["parse"] == ["users"]


@discord_only
async def test_discord_oversized_attachment_is_skipped_with_a_note(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    alice = fake.user_json(fake.user_id("u1"), "Alice")
    await fake.say(TEXT_CHANNEL, "two files", user=alice,
                   files=[("huge.iso", b"tiny really", 60 * 2**20), ("photo.png", b"\x89PNG\r\n", None)])
    [event] = await running.host.wait_events(1)
    assert [(f.name, f.data, f.mime_type) for f in event.files] == [("photo.png", b"\x89PNG\r\n", "image/png")]
    assert "huge.iso" in event.text and "50 MB" in event.text


@discord_only
async def test_discord_unknown_destinations_are_refused(running: Running) -> None:
    with pytest.raises(DestinationRefused):
        await running.channel.send(OutgoingMessage(route=_route("1999999999999999999"), kind="chat", text="x", id="a"))
    with pytest.raises(DestinationRefused):
        await running.channel.send(OutgoingMessage(route=_route("general"), kind="chat", text="x", id="b"))


@discord_only
async def test_discord_replies_edits_and_reactions_in_a_thread(running: Running) -> None:
    result = await running.channel.send(OutgoingMessage(route=_route(thread=THREAD), kind="chat", text="v1", id="t"))
    assert result.platform_message_id
    await running.channel.edit(_route(thread=THREAD), result.platform_message_id, "v2 " + "y" * 2100)
    await running.channel.react(_route(thread=THREAD), result.platform_message_id, "✅")
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.thread == THREAD and msg.reactions == ["✅"]
    assert len(msg.edits[-1]) == 2000 and msg.edits[-1].endswith("…")


@discord_only
async def test_discord_typing_stops_when_switched_off(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    await running.channel.set_typing(_route(thread=THREAD), True)
    for _ in range(100):
        if THREAD in fake.typing:
            break
        await asyncio.sleep(0.02)
    await running.channel.set_typing(_route(thread=THREAD), False)
    assert fake.typing == [THREAD] and not running.channel._typing  # type: ignore[attr-defined]


@discord_only
async def test_discord_garbage_frame_reconnects_with_backoff(running: Running,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO, logger="nanoclaw.channels.discord")
    await fake.send_raw("{this is not json")
    for _ in range(200):
        if fake.identifies >= 2:
            break
        await asyncio.sleep(0.02)
    assert fake.identifies == 2
    assert "channel.reconnect channel=discord delay=0.5" in caplog.text
    await running.platform.user_says("back again")
    [event] = await running.host.wait_events(1)
    assert event.text == "back again"


@discord_only
async def test_discord_gateway_outage_backs_off_then_reconnects(running: Running,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO, logger="nanoclaw.channels.discord")
    fake.gateway_down = True
    await fake.drop()
    for _ in range(200):
        if "delay=1.0" in caplog.text:
            break
        await asyncio.sleep(0.02)
    delays = [r.getMessage().split("delay=")[1] for r in caplog.records if "channel.reconnect" in r.getMessage()
              and "delay=" in r.getMessage()]
    assert delays[:2] == ["0.5", "1.0"]  # doubling from 0.5 s
    fake.gateway_down = False
    for _ in range(200):
        if fake.identifies >= 2:
            break
        await asyncio.sleep(0.02)
    await running.platform.user_says("after the outage")
    [event] = await running.host.wait_events(1)
    assert event.text == "after the outage" and running.host.ready.count("discord") >= 2
