"""Slack specifics: the Events API's signatures, mention/thread/card mapping, errors, files, reconnect backoff,
credential modals (refusal, expiry shown in the modal, the value kept out of logs and messages).

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
from typing import AsyncContextManager, AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from nanoclaw.channels.base import FileAttachment, InboundEvent, OutgoingMessage
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, channel_on
from tests.channels.harness import RecordingHost
from tests.channels.platforms.slack import SlackEventsPlatform, SlackPlatform, _record, malformed_posts
from tests.conftest import make_settings
from tests.fakes.slack_server import BOT_ID, BOT_USER, Message, sign

socket_mode = pytest.mark.parametrize("running", ["slack"], indirect=True)


def _slack(platform: SlackPlatform, tmp: Path, host_cls: type[RecordingHost] = RecordingHost,
           env_changes: dict[str, str | None] | None = None) -> AsyncContextManager[Running]:
    """The channel started against `platform`, as the contract suite's `running` fixture does; None drops a variable."""
    def edit(env: dict[str, str]) -> None:
        for name, value in (env_changes or {}).items():
            if value is None:
                env.pop(name)
            else:
                env[name] = value

    return channel_on(platform, tmp, host_cls=host_cls, edit_env=edit)


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
    caplog.set_level(logging.INFO, logger="nanoclaw.channels")
    await running.platform.set_down(True)  # apps.connections.open fails while down
    await running.platform.drop_connections()
    server = running.platform.server  # type: ignore[attr-defined]

    def delays() -> list[str]:
        return [r.getMessage().split("delay=")[1].split()[0] for r in caplog.records
                if "channel.reconnect" in r.getMessage()]

    await _until(lambda: len(delays()) >= 3)
    assert delays()[:3] == ["0.5", "1.0", "2.0"]
    await running.platform.set_down(False)
    await running.platform.user_says("back again")
    [event] = await running.host.wait_events(1, timeout=10)
    assert event.text == "back again" and server.connected == 1


# -- catching up on what was written while NanoClaw was away ----------------------------------


async def test_slack_passes_messages_written_while_stopped_once_oldest_first(tmp_path: Path) -> None:
    p = SlackPlatform()
    env = await p.start(tmp_path)
    server = p.server
    home, root = tmp_path / "home", p.thread_root

    async def run(expected: int) -> list[InboundEvent]:
        host = RecordingHost(make_settings(home, extra=env))
        channel = p.channel_class()(host)
        await channel.start()
        try:
            await host.wait_events(expected) if expected else None
            await asyncio.sleep(0.3)  # nothing more comes
        finally:
            await channel.stop()
        return host.events

    try:
        host = RecordingHost(make_settings(home, extra=env))
        channel = p.channel_class()(host)
        await channel.start()
        first = await p.user_says("before, top level")
        await p.user_says("before, in the thread", thread=root)
        await host.wait_events(2)
        await channel.stop()
        [seen_file] = host.settings.state_dir.glob("slack-seen-*.json")
        assert seen_file.name == "slack-seen-T0TEAM0001.json"

        server.queue_while_disconnected = False  # Slack has given up delivering: only the history shows them
        missed_1 = await p.user_says("missed 1")
        missed_thread = await p.user_says("missed in the thread", thread=root)
        await server.m_chat_postMessage({"channel": p.group_chat, "text": "our own post"})
        await p.user_says("join", sender="u5")
        server.messages[-1].raw["subtype"] = "channel_join"  # not a new message: skipped, as live
        missed_2 = await p.user_says("missed 2", mention=True)
        await p.user_says("a DM never seen before", dm=True)  # history: not read
        assert len(server.lost) >= 5  # nothing waits for the next connection
        server.queue_while_disconnected = True

        events = await run(3)
        assert [(e.message_id, e.text, e.thread_id) for e in events] == [
            (missed_1, "missed 1", None), (missed_2, "@Andy missed 2", None),
            (missed_thread, "missed in the thread", root)]
        assert events[1].mentions_assistant and events[0].sender_name == "Alice" and events[0].chat_name == "general"
        history = [a for m, a in server.requests if m == "conversations.history"]
        assert [(a["channel"], a["oldest"], a["inclusive"], a["limit"]) for a in history] == [
            (p.group_chat, first, "0", "200")]
        assert [a["ts"] for m, a in server.requests if m == "conversations.replies"] == [root]
        assert await run(0) == []  # passed once: a later start has nothing to catch up
    finally:
        await p.stop()


@socket_mode
async def test_slack_catches_up_after_the_socket_drops(running: Running) -> None:
    p, server = running.platform, running.platform.server  # type: ignore[attr-defined]
    await p.user_says("before")
    await running.host.wait_events(1)
    server.queue_while_disconnected = False
    await p.set_down(True)  # no reconnection until the messages are written
    await p.drop_connections()
    down_1 = await p.user_says("while down 1")
    down_2 = await p.user_says("while down 2")
    assert len(server.lost) == 2
    await p.set_down(False)
    events = await running.host.wait_events(3, timeout=15)
    await asyncio.sleep(0.3)
    assert [(e.message_id, e.text) for e in running.host.events][1:] == [(down_1, "while down 1"),
                                                                          (down_2, "while down 2")]
    assert len(running.host.events) == 3 == len(events)
    await p.user_says("live again")  # live events go on, once
    await running.host.wait_events(4)
    await asyncio.sleep(0.2)
    assert [e.text for e in running.host.events][-1] == "live again" and len(running.host.events) == 4


async def test_slack_corrupt_seen_file_is_ignored_with_a_warning(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nanoclaw.channels")
    state = make_settings(tmp_path / "home").state_dir
    state.mkdir(parents=True)
    (state / "slack-seen-T0TEAM0001.json").write_text('{"conversations": {"C0A1B2C3D4": {"ts": ')
    async with _slack(SlackPlatform(), tmp_path) as r:
        assert "channel.position_unreadable" in caplog.text
        await r.platform.user_says("still works")
        [event] = await r.host.wait_events(1)
        assert event.text == "still works"
        server = r.platform.server  # type: ignore[attr-defined]
        assert "conversations.history" not in server.calls
    saved = json.loads((state / "slack-seen-T0TEAM0001.json").read_text())  # rewritten on stop
    assert saved["conversations"][r.platform.group_chat]["ts"] == event.message_id


async def test_slack_conversation_gone_is_dropped_from_the_seen_file(tmp_path: Path) -> None:
    state = make_settings(tmp_path / "home").state_dir
    state.mkdir(parents=True)
    seen = {"C0GONE0001": {"ts": "1700000000.000001", "channel_type": "channel"}}
    (state / "slack-seen-T0TEAM0001.json").write_text(json.dumps({"conversations": seen}))
    async with _slack(SlackEventsPlatform(), tmp_path) as r:  # the Events API catches up at start too
        server = r.platform.server  # type: ignore[attr-defined]
        await _until(lambda: "conversations.history" in server.calls)
        await _until(lambda: "C0GONE0001" not in (state / "slack-seen-T0TEAM0001.json").read_text())
    assert r.host.events == []


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


# -- credential modals -------------------------------------------------------------------------

both_modes = pytest.mark.parametrize("platform_cls", [SlackPlatform, SlackEventsPlatform], ids=["socket", "events"])
TOKEN = "tok_abc-123"
FIELD = ("credential", "value")


class CredentialHost(RecordingHost):
    """Answers credential submissions with the statuses a test sets (then as the recording host does)."""

    statuses: list[str] = []

    def submit_credential(self, token: str, value: str | None, *, sender_id: str) -> str:
        default = super().submit_credential(token, value, sender_id=sender_id)
        return self.statuses.pop(0).replace("{value}", value or "") if self.statuses else default


def _credential_card(r: Running, thread: str | None = None) -> OutgoingMessage:
    link = f"http://127.0.0.1:8700/credentials/{TOKEN}"
    text = ("The assistant needs a credential: weather (for api.weather.test).\nYour key from weather.test/account\n"
            f"Enter it here, on this computer: {link}\nThe link works once, for 10 minutes. "
            "The assistant never sees the value.")
    credential = {"token": TOKEN, "name": "weather", "host": "api.weather.test",
                  "description": "Your key from weather.test/account"}
    return _out(r, text, kind="card", title="Credential needed", card_id="cred-r1", thread=thread,
                payload={"form_url": link, "credential": credential})


@asynccontextmanager
async def _credential_slack(platform_cls: type[SlackPlatform], tmp: Path, statuses: list[str] | None = None,
                            thread: bool = False) -> AsyncIterator[tuple[Running, Message, str | None]]:
    """The channel with a credential card sent; yields the run, the card as the fake holds it, and its thread."""
    host_cls = type("Host", (CredentialHost,), {"statuses": list(statuses or [])})
    async with _slack(platform_cls(), tmp, host_cls=host_cls) as r:
        where = r.platform.thread_root if thread else None
        await r.channel.send(_credential_card(r, thread=where))
        [sent] = await r.platform.wait_bot_messages(1)
        card = r.platform.server.find(sent.id)  # type: ignore[attr-defined]
        yield r, card, where


@both_modes
async def test_slack_credential_modal_saves_and_closes_the_card(platform_cls: type[SlackPlatform],
                                                                tmp_path: Path) -> None:
    async with _credential_slack(platform_cls, tmp_path, thread=True) as (r, card, thread):
        server = r.platform.server  # type: ignore[attr-defined]
        assert _record(card).buttons == ("Enter credential", "Refuse")
        assert f"/credentials/{TOKEN}" in card.text and "Enter credential" in card.text  # the link stays as fallback
        opened = await server.press_for_view(card, "Enter credential", "U000000U1")
        assert opened.view["callback_id"] == "nanoclaw_credential" and opened.inputs() == [FIELD]
        assert json.loads(opened.view["private_metadata"])["token"] == TOKEN
        assert "weather" in json.dumps(opened.view["blocks"])
        assert await server.submit_view(opened, {FIELD: "  sk-live-123 "}) is None  # an empty ack: the modal closes
        assert opened.closed and r.host.credentials == [(TOKEN, "sk-live-123")]
        await _until(lambda: card.edited_blocks and server.ephemeral)
        [blocks] = card.edited_blocks
        assert [b["type"] for b in blocks] == ["section", "context"]  # no buttons left
        assert "Saved" in blocks[1]["elements"][0]["text"] and "<@U000000U1>" in blocks[1]["elements"][0]["text"]
        assert "weather" in blocks[0]["text"]["text"] and TOKEN not in json.dumps(blocks) + card.edits[-1]
        [note] = server.ephemeral
        assert (note["user"], note["channel"], note["thread_ts"]) == ("U000000U1", card.channel, thread)
        assert "Saved" in note["text"]


@socket_mode
async def test_slack_credential_refuse_tells_the_host_none(running: Running) -> None:
    await running.channel.send(_credential_card(running))
    [sent] = await running.platform.wait_bot_messages(1)
    server = running.platform.server  # type: ignore[attr-defined]
    card = server.find(sent.id)
    refuse = card.blocks[-1]["elements"][1]
    assert refuse["text"]["text"] == "Refuse" and refuse["confirm"]["confirm"]["text"] == "Refuse"  # asked twice
    await running.platform.submit_modal(sent, None)
    assert await running.host.wait_credentials(1) == [(TOKEN, None)]
    await _until(lambda: card.edited_blocks and server.ephemeral)
    assert "Refused" in server.ephemeral[0]["text"] and server.ephemeral[0]["user"] == "U000000U1"
    assert "Refused" in json.dumps(card.edited_blocks[-1]) and "actions" not in json.dumps(card.edited_blocks[-1])
    assert server.views == []  # no modal for a refusal


@both_modes
@pytest.mark.parametrize(("status", "shown"), [("expired", "expired"), ("failed: the vault is locked",
                                                                         "Not saved: the vault is locked")])
async def test_slack_expired_or_failed_credential_is_an_error_in_the_modal(
        platform_cls: type[SlackPlatform], status: str, shown: str, tmp_path: Path) -> None:
    async with _credential_slack(platform_cls, tmp_path, statuses=[status]) as (r, card, _):
        server = r.platform.server  # type: ignore[attr-defined]
        opened = await server.press_for_view(card, "Enter credential", "U000000U2")
        response = await server.submit_view(opened, {FIELD: "sk-late"})
        assert response is not None and response["response_action"] == "errors"
        assert list(response["errors"]) == ["credential"] and shown in response["errors"]["credential"]
        assert not opened.closed and r.host.credentials == [(TOKEN, "sk-late")]
        await _until(lambda: card.edited_blocks and server.ephemeral)
        assert shown in server.ephemeral[0]["text"] and server.ephemeral[0]["user"] == "U000000U2"
        assert "actions" not in json.dumps(card.edited_blocks[-1])  # the request is over either way


@socket_mode
async def test_slack_credential_empty_value_keeps_the_request_open(running: Running) -> None:
    await running.channel.send(_credential_card(running))
    [sent] = await running.platform.wait_bot_messages(1)
    server = running.platform.server  # type: ignore[attr-defined]
    card = server.find(sent.id)
    opened = await server.press_for_view(card, "Enter credential", "U000000U1")
    response = await server.submit_view(opened, {FIELD: "   "})
    assert response and response["response_action"] == "errors" and not opened.closed
    assert running.host.credentials == [] and card.edited_blocks == []  # nothing sent to the vault, card unchanged
    assert await server.submit_view(opened, {FIELD: "sk-second-try"}) is None
    assert running.host.credentials == [(TOKEN, "sk-second-try")]


async def test_slack_late_second_answer_leaves_the_card_as_answered(tmp_path: Path) -> None:
    async with _credential_slack(SlackPlatform, tmp_path, statuses=["saved", "expired"]) as (r, card, _):
        server = r.platform.server  # type: ignore[attr-defined]
        first = await server.press_for_view(card, "Enter credential", "U000000U1")
        second = await server.press_for_view(card, "Enter credential", "U000000U2")
        assert await server.submit_view(first, {FIELD: "sk-one"}) is None
        await _until(lambda: card.edited_blocks)
        response = await server.submit_view(second, {FIELD: "sk-two"})
        assert response and "expired" in response["errors"]["credential"]
        await _until(lambda: len(server.ephemeral) == 2)
        await asyncio.sleep(0.1)
        [blocks] = card.edited_blocks  # one update: the late "expired" did not overwrite who answered
        assert "Saved" in json.dumps(blocks) and "<@U000000U1>" in json.dumps(blocks)


@both_modes
async def test_slack_credential_value_is_never_logged_or_sent(platform_cls: type[SlackPlatform], tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    canary = "sk-canary-Zq81xw"
    for name in (None, "slack_sdk", "slack_bolt", "nanoclaw", "aiohttp"):
        caplog.set_level(logging.DEBUG, logger=name)
    # A status that quotes the value (a careless validator) is shown with the value hidden.
    async with _credential_slack(platform_cls, tmp_path, statuses=["failed: {value} is malformed"]) as (r, card, _):
        server = r.platform.server  # type: ignore[attr-defined]
        opened = await server.press_for_view(card, "Enter credential", "U000000U1")
        response = await server.submit_view(opened, {FIELD: canary})
        assert r.host.credentials == [(TOKEN, canary)]
        assert response and "[hidden] is malformed" in response["errors"]["credential"]
        await _until(lambda: card.edited_blocks and server.ephemeral)
        recorded = json.dumps([server.requests, [vars(m) for m in server.messages], server.ephemeral,
                               [vars(v) for v in server.views], server.ack_payloads], default=repr)
    assert canary not in recorded
    assert "view_submission" in caplog.text or platform_cls is SlackEventsPlatform  # the frame was seen…
    assert canary not in caplog.text  # …but not what was typed into it
    assert all(canary not in str(rec.__dict__) for rec in caplog.records)
