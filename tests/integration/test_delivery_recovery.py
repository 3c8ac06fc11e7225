"""A host crash between a platform send and its record: looked up, not sent twice, where the platform can tell."""

from __future__ import annotations

import pytest

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.host.app import Host
from nanoclaw.protocol.runner_end import RunnerEnd
from tests.conftest import fake, wire

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
    await ch.send(OutgoingMessage(route=end.routing(), kind="chat", text=text, id=row_id))
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
