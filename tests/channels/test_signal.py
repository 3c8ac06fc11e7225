"""Signal specifics beyond the shared contract: mentions in UTF-16, text styles, own/sync messages,
error mapping of signal-cli's JSON-RPC errors, stream replay after a reconnect, attachments."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.channels.signal import MAX_LENGTH, SignalChannel
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running
from tests.channels.harness import RecordingHost
from tests.channels.platforms.signal import BOT_NUMBER, BOT_UUID, GROUP_ID, OTHER_BOT, SignalPlatform
from tests.conftest import make_settings

signal = pytest.mark.parametrize("running", ["signal"], indirect=True)


def platform(r: Running) -> SignalPlatform:
    assert isinstance(r.platform, SignalPlatform)
    return r.platform


def say(r: Running, text: str, **kw: object) -> None:
    p = platform(r)
    p.daemon.incoming(p.envelope(text, source=kw.pop("source", p.dm_chat), name="Alice",  # type: ignore[arg-type]
                                 group=kw.pop("group", GROUP_ID), **kw))  # type: ignore[arg-type]


def out(chat: str, text: str, **kw: object) -> OutgoingMessage:
    kind = str(kw.pop("kind", "chat"))
    return OutgoingMessage(route=Route("signal", chat), kind=kind, text=text, id="o1", **kw)  # type: ignore[arg-type]


async def test_signal_without_account_is_a_config_error(tmp_path: Path) -> None:
    channel = SignalChannel(RecordingHost(make_settings(tmp_path, extra={"SIGNAL_RPC_URL": "http://127.0.0.1:9"})))
    with pytest.raises(ConfigError, match="SIGNAL_ACCOUNT"):
        await channel.start()


@signal
async def test_signal_mentions_replace_placeholders_in_utf16(running: Running) -> None:
    p = platform(running)
    env = p.envelope("", source=p.dm_chat, name="Alice", group=GROUP_ID)
    # "😀 ￼ and ￼ look": the emoji is two UTF-16 units, so the first mention starts at unit 3
    env["dataMessage"]["message"] = "😀 \ufffc and \ufffc look"
    env["dataMessage"]["mentions"] = [
        {"name": "+15550100077", "number": "+15550100077", "uuid": "u-bob", "start": 9, "length": 1},
        {"name": BOT_NUMBER, "number": BOT_NUMBER, "uuid": BOT_UUID, "start": 3, "length": 1},
    ]
    p.daemon.incoming(env)
    [event] = await running.host.wait_events(1)
    assert event.text == "😀 @Andy and @+15550100077 look"
    assert event.mentions_assistant

    env = p.envelope("", source=p.dm_chat, name="Alice", group=GROUP_ID)
    env["dataMessage"].update(message="\ufffc hi", mentions=[{"name": "+15550100077", "number": "+15550100077",
                                                              "uuid": "u-bob", "start": 0, "length": 1}])
    p.daemon.incoming(env)
    events = await running.host.wait_events(2)
    assert events[1].text == "@+15550100077 hi" and not events[1].mentions_assistant


@signal
async def test_signal_ids_chats_and_own_messages(running: Running) -> None:
    p = platform(running)
    own = p.envelope("echo of myself", source=BOT_NUMBER, name="Andy", group=GROUP_ID)
    sync = p.envelope("", source=BOT_NUMBER, name="Andy", group=None)
    sync.pop("dataMessage")
    sync["syncMessage"] = {"sentMessage": {"destination": p.dm_chat, "timestamp": 1, "message": "from my phone"}}
    receipt = p.envelope("", source=p.dm_chat, name="Alice", group=None)
    receipt.pop("dataMessage")
    receipt["receiptMessage"] = {"when": 1, "isDelivery": True, "isRead": False, "timestamps": [1]}
    for envelope in (own, sync, receipt):
        p.daemon.incoming(envelope)
    mid = await p.user_says("hello from the family", sender_name="Alice")
    dm_id = await p.user_says("just us", dm=True)
    bot_id = await p.user_says("beep", from_bot=True)
    await running.host.wait_events(3)
    await asyncio.sleep(0.1)
    assert [e.text for e in running.host.events] == ["hello from the family", "just us", "beep"]
    group, dm, bot = running.host.events
    assert (group.platform_id, group.message_id, group.is_dm) == (f"group:{GROUP_ID}", mid, False)
    assert group.chat_name == "Family"
    assert group.message_id.startswith(p.dm_chat + ":") and group.sender_id == p.dm_chat
    assert (dm.platform_id, dm.message_id, dm.is_dm, dm.sender_name) == (p.dm_chat, dm_id, True, "Alice")
    assert bot.from_bot and bot.sender_id == OTHER_BOT and bot.message_id == bot_id and not dm.from_bot
    # a reaction addresses the message by author and timestamp, both recovered from the message id
    await running.channel.react(Route("signal", p.dm_chat), dm_id, "🎉")
    [reaction] = [r for r in p.daemon.rpc_log if r["method"] == "sendReaction"]
    author, ts = dm_id.split(":")
    assert reaction["params"] == {"recipient": [p.dm_chat], "emoji": "🎉", "targetAuthor": author,
                                  "targetTimestamp": int(ts)}


@signal
async def test_signal_markdown_becomes_text_styles(running: Running) -> None:
    p = platform(running)
    await running.channel.send(out(p.dm_chat, "😀 **bold** and `code`, *it* ~~gone~~ [site](https://x.org)"))
    [msg] = await p.wait_bot_messages(1)
    assert msg.raw["message"] == "😀 bold and code, it gone site (https://x.org)"
    assert msg.raw["textStyle"] == ["3:4:BOLD", "12:4:MONOSPACE", "18:2:ITALIC", "21:4:STRIKETHROUGH"]
    assert msg.text == "😀 ⟦b⟧bold⟦/b⟧ and ⟦m⟧code⟦/m⟧, ⟦i⟧it⟦/i⟧ ⟦s⟧gone⟦/s⟧ site (https://x.org)"
    # markers the agent types itself cannot forge a style
    await running.channel.send(out(p.dm_chat, "plain \ue000text\ue001"))
    msgs = await p.wait_bot_messages(2)
    assert msgs[1].raw == {"recipient": [p.dm_chat], "message": "plain text"}


@signal
async def test_signal_split_keeps_styles_in_each_piece(running: Running) -> None:
    p = platform(running)
    text = "word " * 500 + "**the end**"
    await running.channel.send(out(p.group_chat, text))
    sent = await p.wait_bot_messages(2)
    assert all(len(m.raw["message"]) <= MAX_LENGTH for m in sent)
    assert "textStyle" not in sent[0].raw
    assert sent[-1].text.endswith("⟦b⟧the end⟦/b⟧")


@signal
async def test_signal_errors_map_to_refused_or_unavailable(running: Running) -> None:
    p = platform(running)
    p.daemon.unregistered.add("+15550100666")
    with pytest.raises(DestinationRefused, match="not registered"):
        await running.channel.send(out("+15550100666", "hi"))
    with pytest.raises(DestinationRefused, match="Group not found"):
        await running.channel.send(out("group:bm9wZQ==", "hi"))
    p.daemon.http_status = 503
    with pytest.raises(ChannelUnavailable, match="HTTP 503"):
        await running.channel.send(out(p.dm_chat, "hi"))
    p.daemon.http_status = None
    await p.daemon.stop()  # the daemon is not running at all: connection refused
    with pytest.raises(ChannelUnavailable):
        await running.channel.send(out(p.dm_chat, "hi"))


@signal
async def test_signal_reconnect_replays_missed_events(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    p = platform(running)
    caplog.set_level(logging.INFO, logger="nanoclaw.channels.signal")
    await p.user_says("before")
    await running.host.wait_events(1)
    await p.drop_connections()
    say(running, "while away")  # no stream is open: only Last-Event-ID brings it back
    events = await running.host.wait_events(2, timeout=10)
    assert events[1].text == "while away"
    assert p.daemon.stream_connects == 2
    assert "channel.reconnect" in caplog.text


@signal
async def test_signal_event_shapes_and_attachments(running: Running) -> None:
    p = platform(running)
    await p.daemon.wait_streams()
    # the JSON-RPC notification form (stdin/socket transports) is read as well as the SSE form
    envelope = p.envelope("wrapped", source=p.dm_chat, name="Alice", group=None)
    p.daemon.emit(json.dumps({"jsonrpc": "2.0", "method": "receive",
                              "params": {"envelope": envelope, "account": BOT_NUMBER}}))
    big = p.attachment("movie.mp4", b"tiny stand-in", "video/mp4", size=60 * 2**20)
    gone = {**p.attachment("lost.txt", b"x"), "id": "missing.bin"}
    photo = p.attachment("cat.jpg", b"\xff\xd8\xff jpeg", "image/jpeg")
    say(running, "files", attachments=[big, gone, photo])
    events = await running.host.wait_events(2)
    assert events[0].text == "wrapped" and events[0].is_dm
    files = events[1]
    assert [(f.name, f.data, f.mime_type) for f in files.files] == [("cat.jpg", b"\xff\xd8\xff jpeg", "image/jpeg")]
    assert "[attachment movie.mp4 skipped: larger than 50 MB]" in files.text
    assert "[attachment lost.txt could not be downloaded]" in files.text
    fetched = [r["params"] for r in p.daemon.rpc_log if r["method"] == "getAttachment"]
    assert {"id": photo["id"], "groupId": GROUP_ID} in fetched and all(f["id"] != big["id"] for f in fetched)


@signal
async def test_signal_file_edit_and_typing_requests(running: Running) -> None:
    p = platform(running)
    data = bytes(range(256))
    result = await running.channel.send(out(p.dm_chat, "the **report**", kind="file",
                                            file=FileAttachment("Q3 report; 50%+.pdf", data)))
    [msg] = await p.wait_bot_messages(1)
    assert (msg.file_name, msg.file_data, msg.text) == ("Q3 report; 50%+.pdf", data, "the ⟦b⟧report⟦/b⟧")
    assert msg.raw["attachments"][0].startswith("data:application/pdf;filename=Q3%20report%3B%2050%25%2B.pdf;base64,")
    assert result.platform_message_id == msg.id
    await running.channel.edit(Route("signal", p.dm_chat), msg.id, "the *final* report")
    edit = [r["params"] for r in p.daemon.rpc_log if r["method"] == "send"][-1]
    assert edit["editTimestamp"] == int(msg.id.split(":")[1]) and edit["textStyle"] == ["4:5:ITALIC"]
    route = Route("signal", p.group_chat)
    await running.channel.set_typing(route, True)
    for _ in range(100):
        if await p.typing_seen(p.group_chat):
            break
        await asyncio.sleep(0.02)
    await running.channel.set_typing(route, False)
    typing = [r["params"] for r in p.daemon.rpc_log if r["method"] == "sendTyping"]
    assert typing[-1] == {"groupId": GROUP_ID, "stop": True}
    assert {"groupId": GROUP_ID, "stop": False} in typing
