"""A host crash between a platform send and its record: looked up, not sent twice, where the platform can tell."""

from __future__ import annotations

import asyncio

from pathlib import Path

import pytest

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.host.app import Host
from nanoclaw.protocol.messages import delivery_id
from nanoclaw.protocol.runner_end import RunnerEnd
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel

pytestmark = pytest.mark.sandbox


async def crashed_mid_send(host: Host, ch, text: str) -> tuple[str, int]:
    """A reply the channel got, whose record the host never wrote (it died in between)."""
    wire(host, "chat1", trigger="always")
    await ch.say("hi", message_id="h")
    await ch.wait_processed("h")
    session_id = host.conn.execute("SELECT id FROM sessions").fetchone()[0]
    folder = host.sessions.folder(host.sessions.get(session_id))
    runner = RunnerEnd(folder, doorbell=False)
    with runner.transaction():
        seq = runner.write(kind="chat", text=text, route=runner.routing())
    row_id = runner.out.execute("SELECT id FROM messages_out WHERE seq = ?", (seq,)).fetchone()[0]
    runner.close()
    end = host.sessions.end(session_id)
    end.record_delivery(seq, "sending")
    await ch.send(OutgoingMessage(route=end.routing(), kind="chat", text=text, id=delivery_id(session_id, row_id)))
    return session_id, seq


async def test_a_platform_that_can_tell_gets_no_duplicate(host: Host) -> None:
    ch = fake(host)
    session_id, seq = await crashed_mid_send(host, ch, "only once")
    await host.delivery.drain(session_id)
    assert [s.text for s in ch.sent].count("only once") == 1
    assert host.sessions.end(session_id).delivery(seq)["status"] == "sent"


async def test_a_platform_that_cannot_tell_gets_it_again_rather_than_never(host: Host) -> None:
    ch = fake(host)
    ch.can_look_up = False
    session_id, seq = await crashed_mid_send(host, ch, "at least once")
    await host.delivery.drain(session_id)
    assert [s.text for s in ch.sent].count("at least once") == 2


async def test_a_host_card_waiting_for_its_channel_survives_a_host_restart(tmp_path: Path) -> None:
    from nanoclaw.protocol.messages import Route

    settings = make_settings(tmp_path / "home")
    host = Host(settings, channels=[FakeChannel])
    await host.start()
    try:
        down = fake(host)
        down.available = False
        await host._send_card(Route("fake", "admin-dm"), "New sender", "approve bob? /approve oa-ab12cd34",
                              ("Approve", "Deny"), "oa-ab12cd34")
        assert down.sent == []
    finally:
        await host.stop()  # the card has not gone out: an in-memory queue would lose it here
    again = Host(settings, channels=[FakeChannel])
    await again.start()
    try:
        sent = await fake(again).wait_sent(1)  # once the channel is connected (channels connect in the background)
        assert len(sent) == 1 and "approve bob? /approve oa-ab12cd34" in sent[0].text
        for _ in range(200):
            if again.conn.execute("SELECT count(*) FROM host_outbox").fetchone()[0] == 0:
                break
            await asyncio.sleep(0.01)
        assert again.conn.execute("SELECT count(*) FROM host_outbox").fetchone()[0] == 0
    finally:
        await again.stop()
    third = Host(settings, channels=[FakeChannel])
    await third.start()
    try:
        await third.delivery.flush_host_outbox("fake")  # whatever it would flush once connected, now
        assert fake(third).sent == []  # sent once, not again
    finally:
        await third.stop()
