"""Slack specifics: the Events API's signatures, mention/thread/card mapping, errors, files, reconnect backoff.

The contract suite runs Slack in Socket Mode; here the Events API gets its own
fixture (`events`), with the real slack-bolt app behind the host's /hooks/slack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running
from tests.channels.harness import RecordingHost
from tests.channels.platforms.slack import SlackEventsPlatform, SlackPlatform, malformed_posts
from tests.conftest import make_settings
from tests.fakes.slack_server import BOT_ID, BOT_USER, sign

socket_mode = pytest.mark.parametrize("running", ["slack"], indirect=True)


@asynccontextmanager
async def _slack(platform: SlackPlatform, tmp: Path, host_cls: type[RecordingHost] = RecordingHost,
                 env_changes: dict[str, str | None] | None = None) -> AsyncIterator[Running]:
    """The channel started against `platform`, as the contract suite's `running` fixture does; None drops a variable."""
    env = await platform.start(tmp)
    for name, value in (env_changes or {}).items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    host = host_cls(make_settings(tmp / "home", extra=env))
    host.web.bind()
    platform.webhook_base = f"{host.web_url}/hooks"
    channel = platform.channel_class()(host)
    try:
        await channel.start()
        await host.web.start()
        yield Running(platform, host, channel, env)
    finally:
        try:
            await channel.stop()
        finally:
            await platform.stop()
            await host.web.stop()


@pytest.fixture
async def events(tmp_path: Path) -> AsyncIterator[Running]:
    """The Slack channel on the Events API: the fake posts signed requests to the host's /hooks/slack."""
    async with _slack(SlackEventsPlatform(), tmp_path) as r:
        yield r


async def _until(done: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _out(r: Running, text: str, **kw: object) -> OutgoingMessage:
    thread = kw.pop("thread", None)
    return OutgoingMessage(route=Route("slack", r.platform.group_chat, thread), kind=str(kw.pop("kind", "chat")),
                           text=text, id="o1", **kw)  # type: ignore[arg-type]


# -- Events API -------------------------------------------------------------------------------


async def test_slack_events_api_rejects_unsigned_forged_and_stale_requests(events: Running) -> None:
    server = events.platform.server  # type: ignore[attr-defined]
    unsigned, forged, stale, garbage, wrong_shape = await malformed_posts(server, events.platform.group_chat)
    assert (unsigned, forged, stale) == (401, 401, 401)
    assert garbage == 400 and wrong_shape >= 400
    assert events.host.events == []
    await events.platform.user_says("signed and fine")
    [event] = await events.host.wait_events(1)
    assert event.text == "signed and fine" and not event.from_bot


async def test_slack_events_api_answers_the_url_verification_challenge(events: Running) -> None:
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"})
    url = f"{events.platform.webhook_base}/slack"
    async with aiohttp.ClientSession() as session:
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": sign(body, ts)}
        async with session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["challenge"].startswith("3eZbrw1aBm")
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 401  # unsigned: not even the challenge is answered


async def test_slack_events_api_carries_mentions_dms_files_and_button_presses(events: Running) -> None:
    p = events.platform
    await p.user_says("hi <there> & you", mention=True)
    await p.user_says("secret", dm=True)
    await p.user_says("a file", file=("notes.txt", b"abc"))
    mention, dm, with_file = await events.host.wait_events(3)
    assert mention.mentions_assistant and mention.text == "@Andy hi <there> & you"
    assert dm.is_dm and dm.platform_id == p.dm_chat and not dm.mentions_assistant
    assert [(f.name, f.data) for f in with_file.files] == [("notes.txt", b"abc")]
    await events.channel.send(_out(events, "Go?", kind="question", buttons=("Yes", "No"), card_id="q-1"))
    [card] = await p.wait_bot_messages(1)
    await p.press(card, "Yes", sender="u9")
    assert await events.host.wait_answers(1) == [("q-1", "Yes", "U000000U9")]


# -- mapping ------------------------------------------------------------------------------------


@socket_mode
async def test_slack_mentions_names_and_own_messages(running: Running) -> None:
    await running.platform.user_says("status please", mention=True, sender_name="Alice")
    await running.channel.send(_out(running, "our own post is echoed back by Slack"))
    await running.platform.user_says("beep", from_bot=True, sender="b7", sender_name="OtherBot")
    mention, bot = await running.host.wait_events(2)
    assert mention.mentions_assistant and mention.text == "@Andy status please"
    assert (mention.sender_name, mention.chat_name, mention.sender_id) == ("Alice", "general", "U000000U1")
    assert bot.from_bot and bot.sender_name == "OtherBot"
    assert all(e.sender_id not in (BOT_USER, BOT_ID) for e in running.host.events)  # the echo was dropped
    server = running.platform.server  # type: ignore[attr-defined]
    assert server.calls.count("users.info") == 1  # names are looked up once


@socket_mode
async def test_slack_threads_map_to_thread_ts_and_top_level_has_none(running: Running) -> None:
    await running.platform.user_says("top level")
    await running.platform.user_says("in thread", thread=running.platform.thread_root)
    top, threaded = await running.host.wait_events(2)
    assert top.thread_id is None and threaded.thread_id == running.platform.thread_root
    await running.channel.send(_out(running, "to the channel"))
    await running.channel.send(_out(running, "to the thread", thread=threaded.thread_id))
    first, second = await running.platform.wait_bot_messages(2)
    assert (first.thread, second.thread) == (None, running.platform.thread_root)


@socket_mode
async def test_slack_card_long_labels_fit_block_kit_and_the_card_closes_after_a_press(running: Running) -> None:
    long_label = "Approve the deployment of " + "x" * 300
    await running.channel.send(_out(running, "Which one?", kind="question", title="Choose <now>",
                                    buttons=("Short", long_label), card_id="q-long"))
    [card] = await running.platform.wait_bot_messages(1)
    shown = card.buttons[1]
    assert len(shown) <= 75 and shown.endswith("…") and card.buttons[0] == "Short"
    assert card.text.startswith("*Choose &lt;now&gt;*")
    elements = card.raw["blocks"][-1]["elements"]
    assert all(len(e["value"]) <= 2000 and len(e["action_id"]) <= 255 for e in elements)
    await running.platform.press(card, shown)
    assert await running.host.wait_answers(1) == [("q-long", long_label, "U000000U1")]
    msg = running.platform.server.find(card.id)  # type: ignore[attr-defined]
    await _until(lambda: msg.edited_blocks)
    [blocks] = msg.edited_blocks
    assert [b["type"] for b in blocks] == ["section", "context"]  # no buttons left to press twice
    assert "chose" in blocks[-1]["elements"][0]["text"]


@socket_mode
async def test_slack_long_text_is_split_and_markdown_becomes_mrkdwn(running: Running) -> None:
    text = "**bold** and [a link](https://example.org) and <tag> & " + "word " * 1500
    await running.channel.send(_out(running, text))
    sent = await running.platform.wait_bot_messages(2)
    assert all(len(m.text) <= 4000 for m in sent)
    assert sent[0].text.startswith("*bold* and <https://example.org|a link> and &lt;tag&gt; &amp; word")


@socket_mode
async def test_slack_reactions_use_slack_names_and_skip_unknown_emoji(running: Running) -> None:
    mid = await running.platform.user_says("react to me")
    await running.host.wait_events(1)
    route = Route("slack", running.platform.group_chat)
    await running.channel.react(route, mid, "✅")
    await running.channel.react(route, mid, ":tada:")
    await running.channel.react(route, mid, "🦜")  # unknown: skipped
    await running.channel.react(route, mid, "✅")  # already there: not an error
    msg = running.platform.server.find(mid)  # type: ignore[attr-defined]
    assert msg.reactions == ["white_check_mark", "tada"]


# -- files --------------------------------------------------------------------------------------


@socket_mode
async def test_slack_file_over_50_mb_is_skipped_with_a_note(running: Running) -> None:
    server = running.platform.server  # type: ignore[attr-defined]
    await server.person_says("huge", channel=running.platform.group_chat, user="U0ALICE001", user_name="Alice",
                             file=("big.iso", b"x"), file_size=60 * 2**20)
    [event] = await running.host.wait_events(1)
    assert event.files == () and "big.iso" in event.text and "50 MB" in event.text


@socket_mode
async def test_slack_bot_token_never_goes_to_a_foreign_file_host(running: Running) -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(body=b"stolen")

    app = web.Application()
    app.router.add_get("/f", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        server = running.platform.server  # type: ignore[attr-defined]
        event = {"type": "message", "subtype": "file_share", "channel": running.platform.group_chat,
                 "user": "U0ALICE001", "text": "look", "ts": server.next_ts(), "channel_type": "channel",
                 "files": [{"id": "F0EVIL0001", "name": "x.txt", "size": 6,
                            "url_private_download": f"http://127.0.0.1:{port}/f"}]}
        await server.deliver("events_api", server.event_callback(event))
        [received] = await running.host.wait_events(1)
    finally:
        await runner.cleanup()
    assert received.files == () and "x.txt" in received.text and seen == []


@socket_mode
async def test_slack_file_goes_out_into_the_thread_with_its_comment(running: Running) -> None:
    thread = running.platform.thread_root
    result = await running.channel.send(_out(running, "the **report**", kind="file", thread=thread,
                                             file=FileAttachment("r.pdf", b"%PDF")))
    [msg] = await running.platform.wait_bot_messages(1)
    assert (msg.file_name, msg.file_data, msg.thread, msg.text) == ("r.pdf", b"%PDF", thread, "the *report*")
    assert result.platform_message_id and result.platform_message_id.startswith("F")


# -- errors, config, reconnect ----------------------------------------------------------------


@socket_mode
async def test_slack_send_errors_are_classified(running: Running) -> None:
    with pytest.raises(DestinationRefused, match="channel_not_found"):
        await running.channel.send(OutgoingMessage(Route("slack", "C0NOSUCH00"), "chat", "hi", "o1"))
    await running.platform.set_down(True)
    with pytest.raises(ChannelUnavailable):
        await running.channel.edit(Route("slack", running.platform.group_chat), "1710000001.000001", "x")
    await running.platform.stop()  # connection refused
    with pytest.raises(ChannelUnavailable):
        await running.channel.send(_out(running, "nobody listens"))


async def test_slack_missing_or_wrong_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        async with _slack(SlackPlatform(), tmp_path / "a", env_changes={"SLACK_BOT_TOKEN": None}):
            pass
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN.*SLACK_SIGNING_SECRET"):
        async with _slack(SlackPlatform(), tmp_path / "b", env_changes={"SLACK_APP_TOKEN": None}):
            pass
    with pytest.raises(ConfigError, match="invalid_auth"):
        async with _slack(SlackPlatform(), tmp_path / "c", env_changes={"SLACK_BOT_TOKEN": "xoxb-revoked"}):
            pass


@socket_mode
async def test_slack_reconnect_backs_off_exponentially(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nanoclaw.channels.slack")
    await running.platform.set_down(True)  # apps.connections.open fails while down
    await running.platform.drop_connections()
    server = running.platform.server  # type: ignore[attr-defined]

    def delays() -> list[str]:
        return [r.getMessage().split("delay=")[1] for r in caplog.records if "channel.reconnect" in r.getMessage()]

    await _until(lambda: len(delays()) >= 3)
    assert delays()[:3] == ["0.5", "1.0", "2.0"]
    await running.platform.set_down(False)
    await running.platform.user_says("back again")
    [event] = await running.host.wait_events(1, timeout=10)
    assert event.text == "back again" and server.connected == 1


@socket_mode
async def test_slack_socket_mode_envelopes_are_acknowledged(running: Running) -> None:
    await running.platform.user_says("ack me")
    await running.host.wait_events(1)
    server = running.platform.server  # type: ignore[attr-defined]
    await _until(lambda: server.acks)
    assert all(server.acks)


async def test_slack_refused_answer_is_told_to_the_presser_only(tmp_path: Path) -> None:
    class ExpiredHost(RecordingHost):
        async def answer(self, card_id: str, value: str, sender_id: str) -> str | None:
            await super().answer(card_id, value, sender_id)
            return "this question has expired"

    async with _slack(SlackPlatform(), tmp_path, host_cls=ExpiredHost) as r:
        await r.channel.send(_out(r, "Go?", kind="question", buttons=("Yes",), card_id="q-old"))
        [card] = await r.platform.wait_bot_messages(1)
        await r.platform.press(card, "Yes", sender="u2")
        await r.host.wait_answers(1)
        server = r.platform.server  # type: ignore[attr-defined]
        await _until(lambda: server.ephemeral)
        assert server.ephemeral[0]["user"] == "U000000U2" and "expired" in server.ephemeral[0]["text"]
