"""Email specifics: how mail maps to chats, replies stay in the mail thread, quotes and loops, IMAP and SMTP failures.

The real aioimaplib and aiosmtplib talk to the fake IMAP and SMTP servers of tests/fakes.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.channels import email as email_channel
from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.channels.email import EmailChannel, html_to_text, strip_quotes
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.harness import RecordingHost
from tests.channels.platforms.email import BOT_ADDRESS, EmailPlatform
from tests.conftest import make_settings


@asynccontextmanager
async def started(tmp: Path, *, idle: bool = True, **env: str) -> AsyncIterator[tuple[EmailPlatform, RecordingHost, EmailChannel]]:
    platform = EmailPlatform(idle=idle)
    settings_env = {**await platform.start(tmp), **env}
    host = RecordingHost(make_settings(tmp / "home", extra=settings_env))
    channel = EmailChannel(host)
    try:
        await channel.start()
        yield platform, host, channel
    finally:
        await channel.stop()
        await platform.stop()


def chat_message(chat: str, text: str, *, id: str = "o1", **kw: object) -> OutgoingMessage:
    return OutgoingMessage(route=Route("email", chat), kind=str(kw.pop("kind", "chat")), text=text, id=id, **kw)  # type: ignore[arg-type]


async def test_email_chats_dms_lists_and_group_conversations(tmp_path: Path) -> None:
    async with started(tmp_path) as (platform, host, channel):
        platform.deliver(platform.mail("just to you", dm=True, chat="bob@example.com", sender_name="Bob"))
        platform.deliver(platform.mail("to the list only"))
        platform.deliver(platform.mail("list, and Andy in Cc", mention=True))
        group = platform.mail("three of us")
        for header in ("List-Id", "List-Post", "Precedence", "To"):
            del group[header]
        group["To"] = f"Carol <carol@example.com>, {BOT_ADDRESS}"
        group["Cc"] = "dave@example.com"
        platform.deliver(group)
        dm, listed, mentioned, trio = await host.wait_events(4)

    assert (dm.platform_id, dm.is_dm, dm.mentions_assistant, dm.sender_name) == ("bob@example.com", True, True, "Bob")
    assert (listed.platform_id, listed.is_dm, listed.mentions_assistant) == ("team@lists.example.com", False, False)
    assert listed.chat_name == "Team list" and not listed.from_bot  # Precedence: list on a person's list post
    assert mentioned.mentions_assistant and mentioned.platform_id == "team@lists.example.com"
    assert trio.platform_id == "carol@example.com,dave@example.com,u1@example.com" and not trio.is_dm
    assert trio.mentions_assistant and trio.sender_id == "u1@example.com"


async def test_email_reply_stays_in_the_mail_thread_and_goes_to_everyone(tmp_path: Path) -> None:
    async with started(tmp_path) as (platform, host, channel):
        mail = platform.mail("can you check <b>this</b>?")
        del mail["To"]
        mail["To"] = "carol@example.com"
        mail["Cc"] = BOT_ADDRESS
        for header in ("List-Id", "List-Post", "Precedence"):
            del mail[header]
        mail["References"] = "<older@example.com>"
        mail_id = platform.deliver(mail)
        [event] = await host.wait_events(1)
        result = await channel.send(chat_message(event.platform_id, "Done: **all good**\n\n<script>x()</script>"))
        [sent] = await platform.wait_bot_messages(1)

    assert sorted(sent.raw["rcpt"]) == ["carol@example.com", "u1@example.com"]
    assert sent.raw["subject"] == "Re: Hello" and sent.raw["in_reply_to"] == f"<{mail_id}>"
    assert sent.raw["references"] == f"<older@example.com> <{mail_id}>"
    assert sent.raw["auto_submitted"] == "auto-replied"  # RFC 3834: other robots must not answer us
    assert sent.raw["from"] == f"Andy <{BOT_ADDRESS}>" and sent.raw["login"] == BOT_ADDRESS
    assert "Done: **all good**" in sent.text  # the plain part keeps the Markdown
    assert "<strong>all good</strong>" in sent.raw["html"]
    assert "<script>" not in sent.raw["html"] and "&lt;script&gt;" in sent.raw["html"]  # raw HTML never becomes markup
    assert result.platform_message_id == sent.id


async def test_email_reply_after_a_restart_stays_in_the_mail_thread(tmp_path: Path) -> None:
    async with started(tmp_path) as (platform, host, channel):
        mail_id = platform.deliver(platform.mail("question before the restart", dm=True, chat="bob@example.com"))
        await host.wait_events(1)
    async with started(tmp_path) as (platform, host, channel):  # a new process on the same home
        await channel.send(chat_message("bob@example.com", "the answer, after the restart"))
        [sent] = await platform.wait_bot_messages(1)
    assert sent.raw["subject"] == "Re: Hello" and sent.raw["in_reply_to"] == f"<{mail_id}>"
    assert list((tmp_path / "home" / "state").glob("email-threads-*.json"))


async def test_email_new_conversation_subject_and_files(tmp_path: Path) -> None:
    async with started(tmp_path) as (platform, host, channel):
        await channel.send(chat_message("new@example.com", "# Weekly report\n\nAll **fine**."))
        await channel.send(chat_message("new@example.com", "", id="o2", kind="file",
                                        file=FileAttachment("chart.png", b"\x89PNG\r\n\x1a\n\x00")))
        platform.deliver(platform.mail("the body", dm=True, subject="Plan my trip"))
        [event] = await host.wait_events(1)
        first, second = await platform.wait_bot_messages(2, "new@example.com")

    assert first.raw["subject"] == "Weekly report" and first.raw["in_reply_to"] is None
    assert first.raw["auto_submitted"] == "auto-generated"
    assert second.file_name == "chart.png" and second.file_data == b"\x89PNG\r\n\x1a\n\x00"
    assert event.text == "Subject: Plan my trip\n\nthe body"  # a new conversation's subject is part of the request


def test_email_quoted_history_is_stripped() -> None:
    gmail = ("Sounds good, see you at 5.\n\nOn Mon, 3 Jun 2024 at 10:00, Alice Example <\n"
             "alice@example.com> wrote:\n> Meet at 5?\n> -- Alice\n")
    assert strip_quotes(gmail) == "Sounds good, see you at 5."
    assert strip_quotes("Yes.\n> earlier\nand no.\n") == "Yes.\nand no."
    assert strip_quotes("Fine\n\n-----Original Message-----\nFrom: x\n") == "Fine"
    assert strip_quotes("> only a quote") == "> only a quote"  # nothing new: keep what there is
    html = ('<html><head><style>p{}</style></head><body><p>New &amp; <b>short</b></p><ul><li>one</li></ul>'
            '<div class="gmail_quote">On Mon, Alice wrote:<blockquote>old text</blockquote></div></body></html>')
    assert html_to_text(html) == "New & short\n\n• one\n\nOn Mon, Alice wrote:"


async def test_email_html_only_mail_and_large_attachment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email_channel, "MAX_FILE", 10)
    async with started(tmp_path) as (platform, host, channel):
        mail = platform.mail("", dm=True, file=("big.bin", b"x" * 11))
        mail.get_body(preferencelist=("plain",)).set_content(  # type: ignore[union-attr]
            "<p>Hi <i>Andy</i></p><p>On Tue, Bob wrote:</p><blockquote>quoted</blockquote>", subtype="html")
        del mail["Subject"]
        platform.deliver(mail)
        [event] = await host.wait_events(1)

    assert event.text.startswith("Hi Andy")
    assert "quoted" not in event.text and "On Tue" not in event.text
    assert "[attachment big.bin (0 MB) skipped: larger than 50 MB]" in event.text and event.files == ()


async def test_email_loop_prevention(tmp_path: Path) -> None:
    async with started(tmp_path) as (platform, host, channel):
        own = platform.mail("my own copy", dm=True, chat=BOT_ADDRESS)
        platform.deliver(own)
        platform.deliver(platform.mail("out of office", dm=True, chat="x@example.com", from_bot=True))
        platform.deliver(platform.mail("Delivery failed", dm=True, chat="MAILER-DAEMON@example.com"))
        platform.deliver(platform.mail("no reply", dm=True, chat="no-reply@shop.example"))
        bulk = platform.mail("newsletter", dm=True, chat="news@shop.example")
        bulk["Precedence"] = "bulk"
        platform.deliver(bulk)
        suppress = platform.mail("exchange robot", dm=True, chat="robot@example.com")
        suppress["X-Auto-Response-Suppress"] = "All"
        platform.deliver(suppress)
        person = platform.mail("a person", dm=True, chat="p@example.com")
        person["Auto-Submitted"] = "no"
        platform.deliver(person)
        events = await host.wait_events(6)
        await asyncio.sleep(0.1)

    assert [e.from_bot for e in host.events] == [True, True, True, True, True, False]
    assert all("my own copy" not in e.text for e in host.events)


async def test_email_processed_mail_is_seen_and_not_delivered_again_after_restart(tmp_path: Path) -> None:
    async with started(tmp_path) as (platform, host, channel):
        await platform.user_says("once only", dm=True)
        await host.wait_events(1)
        for _ in range(50):
            if platform.imap.seen(1):
                break
            await asyncio.sleep(0.02)
        assert platform.imap.seen(1)
        await channel.stop()
        again = EmailChannel(host)
        await again.start()
        await platform.user_says("second", dm=True)
        await host.wait_events(2)
        await again.stop()
    assert [e.text for e in host.events] == ["Subject: Hello\n\nonce only", "Subject: Hello\n\nsecond"]


async def test_email_polls_when_the_server_has_no_idle(tmp_path: Path) -> None:
    async with started(tmp_path, idle=False, EMAIL_POLL_SECONDS="0.1") as (platform, host, channel):
        await asyncio.sleep(0.15)
        await platform.user_says("polled", dm=True)
        [event] = await host.wait_events(1)
        assert "polled" in event.text
        assert not any(" IDLE" in c for c in platform.imap.commands)
        assert sum("UID SEARCH" in c for c in platform.imap.commands) >= 2


async def test_email_settings_are_checked_at_start(tmp_path: Path) -> None:
    host = RecordingHost(make_settings(tmp_path / "home", extra={"EMAIL_ADDRESS": BOT_ADDRESS}))
    with pytest.raises(ConfigError, match="EMAIL_PASSWORD"):
        await EmailChannel(host).start()
    with pytest.raises(ConfigError, match="EMAIL_SECURITY"):
        async with started(tmp_path, EMAIL_SECURITY="tls"):
            pass
    with pytest.raises(ConfigError, match="refused the login"):
        async with started(tmp_path, EMAIL_PASSWORD="wrong"):
            pass


async def test_email_smtp_refusals_and_recovery(tmp_path: Path) -> None:
    async with started(tmp_path) as (platform, host, channel):
        platform.smtp.reject_with = "550 5.1.1 mailbox unavailable"
        with pytest.raises(DestinationRefused, match="550"):
            await channel.send(chat_message("gone@example.com", "hello"))
        platform.smtp.reject_with = "451 4.3.0 try again later"
        with pytest.raises(ChannelUnavailable):
            await channel.send(chat_message("later@example.com", "hello"))
        platform.smtp.reject_with = None
        with pytest.raises(DestinationRefused):
            await channel.send(chat_message("team-chat", "not an address"))
        await channel.send(chat_message("later@example.com", "hello again"))
        assert host.ready == ["email"]  # the host retries what waited for the channel


async def test_email_reconnect_backs_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="nanoclaw.channels.email")
    async with started(tmp_path) as (platform, host, channel):
        await platform.imap.stop()  # the server is gone: refused connections until it returns
        deadline = asyncio.get_running_loop().time() + 15
        while sum("channel.reconnect" in r.getMessage() for r in caplog.records) < 2:
            assert asyncio.get_running_loop().time() < deadline, "no second reconnect attempt within 15 s"
            await asyncio.sleep(0.05)
    delays = [r.getMessage() for r in caplog.records if "channel.reconnect" in r.getMessage()]
    assert [d.split("delay=")[1].split()[0] for d in delays][:2] == ["0.5", "1.0"]  # doubling from 0.5 s
