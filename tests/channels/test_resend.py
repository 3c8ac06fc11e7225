"""Resend specifics: Svix signatures and their replay window, the mail thread kept across restarts, what is
not a correspondent's mail, redelivered webhooks, idempotent sends, catching up after a restart. The real
channel (the resend SDK, svix) talks to the fake Resend in tests/fakes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.channels.resend import ResendChannel
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, channel_on
from tests.channels.harness import RecordingHost
from tests.channels.platforms.resend import INBOUND, ResendPlatform
from tests.conftest import make_settings
from tests.fakes.resend_server import svix_headers

ALICE = "alice@example.org"
resend_channel = pytest.mark.parametrize("running", ["resend"], indirect=True)


def msg(text: str, to: str = ALICE, id: str = "o1") -> OutgoingMessage:
    return OutgoingMessage(route=Route("resend", to), kind="chat", text=text, id=id)


def fake(r: Running) -> ResendPlatform:
    assert isinstance(r.platform, ResendPlatform)
    return r.platform


@resend_channel
async def test_resend_webhook_signature_and_timestamp_are_required(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    p = fake(running)
    mail = p.fake.receive(f"Alice <{ALICE}>", INBOUND, "Hello", "let me in")
    event = p.fake.event(mail)
    body = json.dumps(event).encode()
    caplog.set_level(logging.WARNING)
    assert await p.post(event, secret=None) == 401
    assert await p.post(event, secret="whsec_" + "c2Vjb25kLXNlY3JldC1ub3QtdGhlLXJpZ2h0") == 401
    assert await p.post(event, timestamp=int(time.time()) - 600) == 401  # ten minutes old: a replay
    assert await p.post(event, timestamp=int(time.time()) + 600) == 401  # from the future
    tampered = body.replace(mail.id.encode(), b"another-mail-id")
    assert await p.post(tampered, headers=svix_headers(p.fake.secret, body)) == 401
    await asyncio.sleep(0.1)
    assert running.host.events == []
    assert caplog.text.count("resend.webhook_rejected") == 5
    assert await p.post(event) == 200
    [got] = await running.host.wait_events(1)
    assert got.text == "Subject: Hello\n\nlet me in" and got.sender_id == ALICE and got.is_dm


async def test_resend_answers_stay_in_the_mail_thread_across_restarts(tmp_path: Path) -> None:
    platform = ResendPlatform()
    env = await platform.start(tmp_path)
    try:
        async with channel_on(platform, tmp_path, env=env) as r:
            first = platform.fake.receive(f"Alice <{ALICE}>", INBOUND, "Lunch on Friday?", "Are you free?",
                                          headers={"references": "<older@mail.example.com>"})
            assert await platform.post(platform.fake.event(first)) == 200
            [event] = await r.host.wait_events(1)
            assert event.text == "Subject: Lunch on Friday?\n\nAre you free?"
            await r.channel.send(msg("Yes, **noon** works."))
        async with channel_on(platform, tmp_path, env=env) as r:  # a restart: the thread is remembered
            await r.channel.send(msg("See you then.", id="o2"))
        answer, later = (m.raw for m in await platform.bot_messages(ALICE))
        for sent in (answer, later):
            assert sent["subject"] == "Re: Lunch on Friday?" and sent["to"] == [ALICE]
            assert sent["from"] == "Andy <andy@example.com>"
            assert sent["headers"] == {"Auto-Submitted": "auto-replied", "In-Reply-To": first.message_id,
                                       "References": f"<older@mail.example.com> {first.message_id}"}
        assert answer["text"] == "Yes, **noon** works." and "<strong>noon</strong>" in answer["html"]
        # A new correspondent starts a new thread, its subject made of the first line.
        await_new = OutgoingMessage(Route("resend", "bob@example.org"), "chat", "# Weekly report\n\nAll good.", "o3")
        async with channel_on(platform, tmp_path, env=env) as r:
            await r.channel.send(await_new)
        [report] = await platform.bot_messages("bob@example.org")
        assert report.raw["subject"] == "Weekly report"
        assert report.raw["headers"] == {"Auto-Submitted": "auto-generated"}
    finally:
        await platform.stop()


@resend_channel
async def test_resend_html_mail_is_read_without_the_quoted_history(running: Running) -> None:
    p = fake(running)
    html = ("<div>Sounds <b>good</b>, see you at 5.</div><blockquote>On Mon, Andy wrote: earlier text"
            "</blockquote>")
    mail = p.fake.receive(f"Alice <{ALICE}>", INBOUND, "Re: Friday", None, html=html,
                          headers={"in-reply-to": "<a1@example.com>"})
    assert await p.post(p.fake.event(mail)) == 200
    [event] = await running.host.wait_events(1)
    assert event.text == "Sounds good, see you at 5." and event.message_id == mail.message_id.strip("<>")


@resend_channel
async def test_resend_own_mail_other_recipients_and_robots(running: Running) -> None:
    p = fake(running)
    own = p.fake.receive("Andy <andy@example.com>", INBOUND, "Re: x", "my own answer, bounced back")
    other = p.fake.receive(f"Alice <{ALICE}>", "support@inbound.example.com", "Help", "for the support desk")
    robot = p.fake.receive("Shop <no-reply@shop.example>", INBOUND, "Your order", "has shipped")
    vacation = p.fake.receive(f"Alice <{ALICE}>", INBOUND, "Out of office", "back Monday",
                              headers={"auto-submitted": "auto-replied"})
    for mail in (own, other, robot, vacation):
        assert await p.post(p.fake.event(mail)) == 200
    shipped, away = await running.host.wait_events(2)
    await asyncio.sleep(0.1)
    assert len(running.host.events) == 2
    assert shipped.from_bot and shipped.sender_id == "no-reply@shop.example" and away.from_bot
    # A robot's mail never becomes the thread an answer continues.
    await running.channel.send(msg("noted"))
    [sent] = await p.bot_messages(ALICE)
    assert "In-Reply-To" not in sent.raw["headers"]


@resend_channel
async def test_resend_redelivered_webhook_is_passed_once(running: Running) -> None:
    p = fake(running)
    mail = p.fake.receive(f"Alice <{ALICE}>", INBOUND, "Once", "only once please")
    for _ in range(3):  # Svix retries until it sees a 2xx, and may deliver twice
        assert await p.post(p.fake.event(mail)) == 200
    await running.host.wait_events(1)
    await asyncio.sleep(0.1)
    assert len(running.host.events) == 1


@resend_channel
async def test_resend_fetch_failure_asks_resend_to_deliver_again(running: Running) -> None:
    p = fake(running)
    mail = p.fake.receive(f"Alice <{ALICE}>", INBOUND, "Now", "while Resend's API is down")
    p.fake.down = True
    assert await p.post(p.fake.event(mail)) == 503
    p.fake.down = False
    assert await p.post(p.fake.event(mail)) == 200
    [event] = await running.host.wait_events(1)
    assert "while Resend's API is down" in event.text


@resend_channel
async def test_resend_retried_send_goes_out_once_and_errors_are_mapped(running: Running) -> None:
    p = fake(running)
    first = await running.channel.send(msg("exactly once"))
    again = await running.channel.send(msg("exactly once"))  # the host retries a row it could not record
    assert first == again and len(await p.bot_messages()) == 1
    with pytest.raises(DestinationRefused, match="422"):
        await running.channel.send(msg("x", to="nobody@invalid.test", id="o2"))
    with pytest.raises(DestinationRefused, match="not one mail address"):
        await running.channel.send(msg("x", to="a@example.org,b@example.org", id="o3"))
    p.fake.rate_limited = True
    with pytest.raises(ChannelUnavailable, match="429"):
        await running.channel.send(msg("later", id="o4"))
    p.fake.rate_limited = False
    assert running.host.ready == []
    await running.channel.send(msg("later", id="o4"))
    assert running.host.ready == ["resend"]


async def test_resend_wrong_key_is_retried_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    platform = ResendPlatform()
    try:
        async with channel_on(platform, tmp_path, edit_env=lambda env: env.update(RESEND_API_KEY="re_wrong")) as r:
            with pytest.raises(ChannelUnavailable, match="403"):
                await r.channel.send(msg("hello"))
            assert "resend.key_refused" in caplog.text and "re_wrong" not in caplog.text
    finally:
        await platform.stop()


async def test_resend_missing_settings_name_the_variable(tmp_path: Path) -> None:
    full = {"RESEND_API_KEY": "re_x", "RESEND_WEBHOOK_SECRET": "whsec_QUJD", "RESEND_FROM": "a@example.com"}
    for variable in full:
        env = {k: v for k, v in full.items() if k != variable}
        channel = ResendChannel(RecordingHost(make_settings(tmp_path / "home", extra=env)))
        with pytest.raises(ConfigError, match=variable):
            await channel.start()
    channel = ResendChannel(RecordingHost(make_settings(tmp_path / "home", extra={**full, "RESEND_FROM": "andy"})))
    with pytest.raises(ConfigError, match="not a mail address"):
        await channel.start()


async def test_resend_mail_received_while_the_host_was_down_is_fetched_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nanoclaw.channels.resend.PAGE_SIZE", 10)  # several pages without hundreds of mails
    platform = ResendPlatform()
    env = await platform.start(tmp_path)
    try:
        async with channel_on(platform, tmp_path, env=env) as r:
            await platform.user_says("seen live")
            await r.host.wait_events(1)
        # While the host is down: mail whose webhooks failed (several pages of it).
        for i in range(25):
            platform.fake.receive(f"Bob <bob{i % 3}@example.org>", INBOUND, f"Note {i}", f"backlog {i}")
        async with channel_on(platform, tmp_path, env=env) as r:
            await r.host.wait_events(25)
            await asyncio.sleep(0.3)
            assert [e.text.rsplit("\n", 1)[-1] for e in r.host.events] == [f"backlog {i}" for i in range(25)]
        async with channel_on(platform, tmp_path, env=env) as r:  # a third start has nothing to catch up
            await asyncio.sleep(0.5)
            assert r.host.events == []
        (tmp_path / "home" / "state" / "resend-seen.json").write_text("{damaged")
        async with channel_on(platform, tmp_path, env=env) as r:
            await asyncio.sleep(0.2)
            assert r.host.events == [] and "channel.position_unreadable" in caplog.text
    finally:
        await platform.stop()
