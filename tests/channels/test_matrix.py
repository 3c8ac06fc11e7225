"""Matrix specifics, against a real Synapse: login, history, mentions, files, idempotent sends, reconnects."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from nanoclaw.channels.base import FileAttachment, InboundEvent, OutgoingMessage
from nanoclaw.channels.matrix import MAX_EVENT_BYTES, MatrixChannel, _text_content
from nanoclaw.errors import ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, start_platform
from tests.channels.harness import RecordingHost
from tests.channels.platforms.matrix import MatrixPlatform
from tests.conftest import make_settings

matrix = pytest.mark.parametrize("running", ["matrix"], indirect=True)


def route(r: Running, chat: str | None = None) -> Route:
    return Route("matrix", chat or r.platform.group_chat)


async def say(r: Running, content: dict[str, Any]) -> str:
    """Alice sends a raw m.room.message content to the group room."""
    platform: MatrixPlatform = r.platform  # type: ignore[assignment]
    await platform.bot_joined(platform.group_chat)
    return await platform.people["u1"].send(platform.group_chat, content)


async def events_after_marker(r: Running, count: int) -> list[InboundEvent]:
    """The first `count` events, checked in order after a final "marker" message (so nothing else slipped in)."""
    await say(r, {"msgtype": "m.text", "body": "marker"})
    events = await r.host.wait_events(count + 1)
    assert events[-1].text == "marker", events
    return events[:-1]


async def test_matrix_missing_settings_name_the_variable(tmp_path: Path) -> None:
    for extra, named in [({"MATRIX_USER_ID": "@a:b"}, "MATRIX_HOMESERVER"),
                         ({"MATRIX_HOMESERVER": "http://127.0.0.1:1"}, "MATRIX_USER_ID"),
                         ({"MATRIX_HOMESERVER": "http://x", "MATRIX_USER_ID": "@a:b"}, "MATRIX_ACCESS_TOKEN")]:
        channel = MatrixChannel(RecordingHost(make_settings(tmp_path, extra=extra)))
        with pytest.raises(ConfigError, match=named):
            await channel.start()


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[MatrixPlatform, dict[str, str]]]:
    started, env = await start_platform("matrix", tmp_path)
    yield started, env  # type: ignore[misc]
    await started.stop()


async def test_matrix_password_login_works_and_a_wrong_password_is_a_config_error(
    platform: tuple[MatrixPlatform, dict[str, str]], tmp_path: Path,
) -> None:
    p, env = platform
    assert p.bot is not None
    base = {k: v for k, v in env.items() if k != "MATRIX_ACCESS_TOKEN"}
    wrong = MatrixChannel(RecordingHost(make_settings(tmp_path, extra={**base, "MATRIX_PASSWORD": "nope"})))
    with pytest.raises(ConfigError, match="MATRIX_PASSWORD"):
        await wrong.start()
    await wrong.stop()
    host = RecordingHost(make_settings(tmp_path, extra={**base, "MATRIX_PASSWORD": p.bot.account.password}))
    channel = MatrixChannel(host)
    await channel.start()
    try:
        await p.user_says("logged in with a password")
        [event] = await host.wait_events(1)
        assert event.text == "logged in with a password"
    finally:
        await channel.stop()


async def test_matrix_a_restart_misses_nothing_and_answers_nothing_twice(
    platform: tuple[MatrixPlatform, dict[str, str]], tmp_path: Path,
) -> None:
    p, env = platform
    first_host = RecordingHost(make_settings(tmp_path, extra=env))
    first = MatrixChannel(first_host)
    await first.start()
    await p.user_says("answered by the first process")
    await first_host.wait_events(1)
    await asyncio.sleep(0.3)
    assert [e.text for e in first_host.events] == ["answered by the first process"]
    await first.stop()
    await p.user_says("written while the bot was away")
    host = RecordingHost(make_settings(tmp_path, extra=env))  # the same home: the saved sync token
    second = MatrixChannel(host)
    await second.start()
    try:
        await p.user_says("new after the restart")
        await host.wait_events(2)
        await asyncio.sleep(0.3)
        assert [e.text for e in host.events] == ["written while the bot was away", "new after the restart"]
    finally:
        await second.stop()


@matrix
async def test_matrix_mentions_follow_intentional_mentions_then_pills(running: Running) -> None:
    bot = running.channel.user_id  # type: ignore[attr-defined]
    await say(running, {"msgtype": "m.text", "body": "hey you", "m.mentions": {"user_ids": [bot]}})
    # m.mentions present without the bot: the name in the text does not count (Matrix spec v1.7)
    await say(running, {"msgtype": "m.text", "body": "Andy: not for you", "m.mentions": {}})
    await say(running, {"msgtype": "m.text", "body": "Andy: legacy pill", "format": "org.matrix.custom.html",
                        "formatted_body": f'<a href="https://matrix.to/#/{bot}">Andy</a>: legacy pill'})
    await say(running, {"msgtype": "m.text", "body": f"ping {bot} please"})
    await say(running, {"msgtype": "m.text", "body": "andy is just a word here"})
    events = await events_after_marker(running, 5)
    assert [e.mentions_assistant for e in events] == [True, False, True, True, False]
    assert all(not e.is_dm and e.chat_name == "Team" and e.sender_name == "Alice" for e in events)


@matrix
async def test_matrix_reply_fallback_and_edits_and_own_messages(running: Running) -> None:
    first = await say(running, {"msgtype": "m.text", "body": "original"})
    await say(running, {"msgtype": "m.text", "body": "* fixed", "m.new_content": {"msgtype": "m.text", "body": "fixed"},
                        "m.relates_to": {"rel_type": "m.replace", "event_id": first}})
    await say(running, {"msgtype": "m.text", "body": "> <@u1:localhost> original\n\nmy reply",
                        "m.relates_to": {"m.in_reply_to": {"event_id": first}}})
    await running.channel.send(OutgoingMessage(route(running), "chat", "the bot itself", "own-1"))
    events = await events_after_marker(running, 2)
    assert [e.text for e in events] == ["original", "my reply"]  # the edit and the bot's own message are not events


@matrix
async def test_matrix_big_file_is_skipped_with_a_note_and_captions_come_in(running: Running) -> None:
    p: MatrixPlatform = running.platform  # type: ignore[assignment]
    alice = p.people["u1"]
    url = await alice.upload("photo.png", b"\x89PNG small", "image/png")
    await say(running, {"msgtype": "m.image", "body": "look at this", "filename": "photo.png", "url": url,
                        "info": {"mimetype": "image/png", "size": 10}})
    await say(running, {"msgtype": "m.video", "body": "huge.mp4", "url": url,
                        "info": {"mimetype": "video/mp4", "size": 60 * 2**20}})
    await say(running, {"msgtype": "m.file", "body": "gone.txt", "url": "mxc://localhost/doesnotexist"})
    photo, huge, gone = await events_after_marker(running, 3)
    assert photo.text == "look at this"
    assert [(f.name, f.data, f.mime_type) for f in photo.files] == [("photo.png", b"\x89PNG small", "image/png")]
    assert not huge.files and "huge.mp4" in huge.text and "50 MB" in huge.text
    assert not gone.files and "could not be downloaded" in gone.text


@matrix
async def test_matrix_image_goes_out_as_m_image_with_caption(running: Running) -> None:
    image = FileAttachment("chart.png", b"\x89PNG chart", "image/png")
    await running.channel.send(OutgoingMessage(route(running), "file", "the **chart**", "img-1", file=image))
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.raw["msgtype"] == "m.image" and msg.raw["body"] == "the **chart**"
    assert msg.file_name == "chart.png" and msg.file_data == image.data
    assert "<strong>chart</strong>" in msg.text


@matrix
async def test_matrix_resend_of_the_same_message_is_idempotent_and_found(running: Running) -> None:
    message = OutgoingMessage(route(running), "chat", "exactly once", "row-42")
    first = await running.channel.send(message)
    again = await running.channel.send(message)  # the host retries after a timeout that did reach the server
    assert first.platform_message_id == again.platform_message_id
    assert len(await running.platform.bot_messages(running.platform.group_chat)) == 1
    assert await running.channel.already_sent(route(running), "row-42") == first.platform_message_id
    assert await running.channel.already_sent(route(running), "row-never") is None
    for _ in range(2):  # a retried reaction is the same event (Synapse refuses a duplicate annotation)
        await running.channel.react(route(running), str(first.platform_message_id), "👍")
    assert await running.platform.reactions_on(str(first.platform_message_id)) == ["👍"]


@matrix
async def test_matrix_unknown_room_is_refused_for_good(running: Running) -> None:
    with pytest.raises(DestinationRefused):
        await running.channel.send(OutgoingMessage(route(running, "!nosuchroom:localhost"), "chat", "hi", "x1"))


@matrix
async def test_matrix_wide_characters_stay_under_the_event_size_cap(running: Running) -> None:
    text = "字" * 16000 + " <b>not markup</b>"
    await running.channel.send(OutgoingMessage(route(running), "chat", text, "wide-1"))
    sent = await running.platform.wait_bot_messages(2)
    assert all(len(json.dumps(m.raw, ensure_ascii=False).encode()) <= MAX_EVENT_BYTES for m in sent)
    assert "".join(m.raw["body"] for m in sent).replace(" ", "") == text.replace(" ", "")
    assert "&lt;b&gt;not markup&lt;/b&gt;" in sent[-1].text  # the agent's text never becomes markup
    assert _text_content("a\nb")["formatted_body"] == "a<br>b"


@matrix
async def test_matrix_sync_reconnects_with_backoff_and_reports_ready(
    running: Running, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nanoclaw.channels.matrix")
    await running.platform.set_down(True)  # refuses connections and cuts the live long-poll
    deadline = asyncio.get_running_loop().time() + 15
    while sum(r.getMessage().startswith("channel.reconnect ") for r in caplog.records) < 2:  # two refused
        assert asyncio.get_running_loop().time() < deadline, "no second reconnect attempt within 15 s"
        await asyncio.sleep(0.05)
    await running.platform.set_down(False)
    await running.platform.user_says("back again")
    [event] = await running.host.wait_events(1, timeout=15)
    assert event.text == "back again"
    delays = [float(r.getMessage().split("delay=")[1].split()[0]) for r in caplog.records
              if r.getMessage().startswith("channel.reconnect ")]
    assert delays[:3] == [0.5, 1.0, 2.0][:len(delays[:3])] and len(delays) >= 2
    assert "matrix" in running.host.ready  # deliveries that waited are retried now


async def test_matrix_channel_starts_while_the_homeserver_is_down(
    platform: tuple[MatrixPlatform, dict[str, str]], tmp_path: Path,
) -> None:
    p, env = platform
    await p.set_down(True)
    host = RecordingHost(make_settings(tmp_path, extra=env))
    channel = MatrixChannel(host)
    await channel.start()  # not a ConfigError: the homeserver may just be restarting
    try:
        await asyncio.sleep(0.3)
        await p.set_down(False)
        await p.user_says("you are up")  # waits until the channel has joined the rooms it was invited to
        [event] = await host.wait_events(1, timeout=15)
        assert event.text == "you are up"
    finally:
        await channel.stop()


async def test_matrix_a_restart_keeps_room_names_members_and_two_person_rooms_as_dms(
    platform: tuple[MatrixPlatform, dict[str, str]], tmp_path: Path,
) -> None:
    """After a restart the channel resumes from its sync token, whose syncs carry no room state: the rooms'
    names and members come back from a full-state sync, and the rooms invited to as direct from its file."""
    p, env = platform
    assert p.bot is not None
    alice = p.people["u1"]
    pair = await alice.create_room([p.bot.user_id], preset="private_chat")  # two people, not marked direct
    for stage in ("before", "after"):
        host = RecordingHost(make_settings(tmp_path, extra=env))
        channel = MatrixChannel(host)
        await channel.start()
        try:
            await p.user_says(f"{stage}: just us", chat=pair)
            await p.user_says(f"Andy, {stage}: in the team")  # the bot by its display name, no m.mentions
            await p.user_says(f"{stage}: privately", dm=True)
            pair_event, team_event, dm_event = await host.wait_events(3)
            assert (pair_event.is_dm, pair_event.sender_name, pair_event.chat_name) == (True, "Alice", "Alice")
            assert (team_event.is_dm, team_event.chat_name, team_event.mentions_assistant) == (False, "Team", True)
            assert dm_event.is_dm and dm_event.sender_name == "Alice", stage
        finally:
            await channel.stop()


@matrix
async def test_matrix_quotes_are_blockquotes(running: Running) -> None:
    await running.channel.send(OutgoingMessage(route(running), "chat", "> the plan\n> is set\n\nagreed", "q-1"))
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.raw["formatted_body"] == "<blockquote>the plan<br>is set</blockquote>agreed"
    assert msg.raw["body"].startswith("> the plan")  # clients without HTML show the Markdown
