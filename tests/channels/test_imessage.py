"""iMessage specifics, on Linux against a generated chat.db with Messages' schema and a stand-in osascript:
both text columns, message text only ever an osascript argument, attachments in and out, what came while the
host was down, a rebuilt or missing database, refusals and outages."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.channels.imessage import IMessageChannel, apple_time, attributed_text
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, channel_on
from tests.channels.harness import RecordingHost
from tests.channels.platforms.imessage import DM, GROUP, IMessagePlatform
from tests.conftest import make_settings
from tests.fakes.messages_db import APPLE_EPOCH, attributed_body

imessage = pytest.mark.parametrize("running", ["imessage"], indirect=True)


def msg(text: str, chat: str = DM, id: str = "o1", **kw: object) -> OutgoingMessage:
    return OutgoingMessage(route=Route("imessage", chat), kind=str(kw.pop("kind", "chat")), text=text, id=id,
                           **kw)  # type: ignore[arg-type]


def fake(r: Running) -> IMessagePlatform:
    assert isinstance(r.platform, IMessagePlatform)
    return r.platform


def test_imessage_attributed_body_decoding() -> None:
    for text in ("", "hi", "x" * 127, "é" * 64, "long " * 30, "🎉 " * 20_000):  # 1-byte, 0x81 and 0x82 lengths
        assert attributed_text(attributed_body(text)) == text
    for junk in (None, "text", b"", b"NSString", b"NSString\x01\x94\x84\x01+\x81\xff", b"NSString\x01+\x90abc",
                 b"\x04\x0bstreamtyped\x81\xe8\x03"):
        assert attributed_text(junk) is None
    now = time.time()
    assert abs(apple_time(int((now - APPLE_EPOCH) * 1e9)) - now) < 1e-3  # type: ignore[operator]
    assert apple_time(600_000_000) == 600_000_000 + APPLE_EPOCH  # seconds, as before macOS 10.13
    assert apple_time(0) is None and apple_time("x") is None


@imessage
async def test_imessage_rows_with_text_or_only_attributed_body_are_read(running: Running) -> None:
    m = fake(running).messages
    m.write(DM, "+15551234567", "an older row: text in `text`")
    m.write(GROUP, "bob@icloud.example", "a newer one ✨ only in attributedBody " * 5, attributed_only=True)
    m.write(GROUP, None, "the assistant's own message, from another device", from_me=True)
    m.write(GROUP, "bob@icloud.example", "", associated_message_type=2000, associated_message_guid="p:0/X")
    first, second = await running.host.wait_events(2)
    await asyncio.sleep(0.2)
    assert len(running.host.events) == 2
    assert (first.text, first.platform_id, first.is_dm, first.sender_id) == (
        "an older row: text in `text`", DM, True, "+15551234567")
    assert second.text == ("a newer one ✨ only in attributedBody " * 5).strip()
    assert (second.platform_id, second.is_dm, second.chat_name) == (GROUP, False, "Family")
    assert abs(float(second.payload["sent_at"]) - time.time()) < 60


@imessage
async def test_imessage_message_text_is_an_osascript_argument_never_script_source(running: Running) -> None:
    p = fake(running)
    marker = p.messages.root / "pwned"
    hostile = f'-e quit" & (do shell script "touch {marker}") & " C:\\temp\nsecond line \'quoted\' -- end'
    result = await running.channel.send(msg(hostile))
    [call] = p.messages.calls()
    assert call["args"] == [DM, hostile] and call["text"] == hostile
    assert hostile not in call["script"] and "touch" not in call["script"]
    assert call["script"].startswith("on run argv") and not marker.exists()
    assert result.platform_message_id == call["guid"]  # the row Messages wrote for it, found in chat.db
    await running.channel.send(msg("**Markdown** becomes `plain` text", id="o2"))
    assert p.messages.calls()[-1]["text"] == "Markdown becomes plain text"
    await asyncio.sleep(0.2)
    assert running.host.events == []  # our own rows never come back in as a person's messages


@imessage
async def test_imessage_refusals_and_outages(running: Running) -> None:
    p = fake(running)
    with pytest.raises(DestinationRefused, match="-1728"):
        await running.channel.send(msg("hello?", chat="iMessage;-;+19995550000"))
    with pytest.raises(DestinationRefused, match="not a Messages chat id"):
        await running.channel.send(msg("hello?", chat="+19995550000"))
    await p.set_down(True)
    with pytest.raises(ChannelUnavailable, match="-609"):
        await running.channel.send(msg("later"))
    await p.set_down(False)
    await running.channel.send(msg("now"))
    assert [c["text"] for c in p.messages.calls()] == ["now"]


@imessage
async def test_imessage_files_in_and_out(running: Running) -> None:
    p = fake(running)
    photo = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    p.messages.write(GROUP, "bob@icloud.example", "look", file=("IMG_0001.png", photo, "image/png"))
    [event] = await running.host.wait_events(1)
    assert event.text == "look" and [(f.name, f.data, f.mime_type) for f in event.files] == [
        ("IMG_0001.png", photo, "image/png")]
    data = b"col1,col2\n1,2\n"
    await running.channel.send(msg("", kind="file", file=FileAttachment("../../notes/../report.csv", data)))
    [call] = p.messages.calls()
    staged = Path(call["args"][1])
    outbox = running.host.settings.state_dir / "imessage-outbox"
    assert outbox in staged.parents and staged.name == "report.csv" and staged.read_bytes() == data
    assert staged.stat().st_mode & 0o777 == 0o600
    [sent] = await p.bot_messages(DM)
    assert (sent.file_name, sent.file_data) == ("report.csv", data)


async def test_imessage_messages_written_while_the_host_was_down_are_read_once_oldest_first(tmp_path: Path) -> None:
    platform = IMessagePlatform()
    env = await platform.start(tmp_path)
    m = platform.messages
    m.write(DM, "+15551234567", "history from before NanoClaw")
    async with channel_on(platform, tmp_path, env=env) as r:
        await platform.user_says("live")
        [live] = await r.host.wait_events(1)
        assert live.text == "live"  # the history is not replayed at the first start
    for i in range(3):
        m.write(GROUP, "bob@icloud.example", f"while down {i}")
    async with channel_on(platform, tmp_path, env=env) as r:
        await r.host.wait_events(3)
        await asyncio.sleep(0.2)
        assert [e.text for e in r.host.events] == ["while down 0", "while down 1", "while down 2"]
    async with channel_on(platform, tmp_path, env=env) as r:
        await asyncio.sleep(0.3)
        assert r.host.events == []


async def test_imessage_rebuilt_or_missing_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    platform = IMessagePlatform()
    env = await platform.start(tmp_path)
    m = platform.messages
    async with channel_on(platform, tmp_path, env=env) as r:
        await platform.user_says("first")
        await r.host.wait_events(1)
        os.replace(m.db, m.db.with_name("moved-away.db"))  # gone for a while (a migration, a restore)
        await asyncio.sleep(0.3)
        assert "channel.reconnect" in caplog.text
        os.replace(m.db.with_name("moved-away.db"), m.db)
        await platform.user_says("back")
        await r.host.wait_events(2, timeout=10)
    # Restored from an older backup: fewer rows than the saved position. The position follows the database.
    m.execute("DELETE FROM chat_message_join")
    m.execute("DELETE FROM message")
    m.execute("DELETE FROM sqlite_sequence WHERE name = 'message'")
    async with channel_on(platform, tmp_path, env=env) as r:
        assert "imessage.position_reset" in caplog.text
        await platform.user_says("after the restore")
        [event] = await r.host.wait_events(1)
        assert event.text == "after the restore"


async def test_imessage_settings_are_checked_at_start(tmp_path: Path) -> None:
    platform = IMessagePlatform()
    env = await platform.start(tmp_path)
    cases = (({**env, "IMESSAGE_DB": str(tmp_path / "nowhere" / "chat.db")}, "Full Disk Access"),
             ({**env, "IMESSAGE_OSASCRIPT": str(tmp_path / "no-osascript")}, "IMESSAGE_OSASCRIPT"),
             ({**env, "IMESSAGE_POLL_SECONDS": "often"}, "IMESSAGE_POLL_SECONDS"),
             ({"NANOCLAW_CHANNELS": "imessage"}, "macOS only"))
    for extra, reason in cases:
        channel = IMessageChannel(RecordingHost(make_settings(tmp_path / "home", extra=extra)))
        with pytest.raises(ConfigError, match=reason):
            await channel.start()
