"""The outbound ACL: a session may answer its own chat and declared destinations, nothing else."""

from __future__ import annotations

import pytest

from nanoclaw.db import destinations, messaging_groups
from nanoclaw.host.app import Host
from nanoclaw.protocol.messages import Route
from nanoclaw.protocol.runner_end import RunnerEnd
from tests.conftest import fake, wire

pytestmark = pytest.mark.sandbox


async def test_declared_destination_is_delivered(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    family = messaging_groups.upsert(host.conn, "fake", "family-chat")
    destinations.add_chat(host.conn, "main", "family", family.id)
    ch = fake(host)
    await ch.say("[mock:send=family|dinner at 7] tell the family")
    sent = await ch.wait_sent(2)
    to_family = [s for s in sent if s.route.platform_id == "family-chat"]
    assert [s.text for s in to_family] == ["dinner at 7"]


async def test_undeclared_destination_is_refused_and_recorded(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("[mock:send=strangers|psst] hi", message_id="m")
    assert await ch.wait_processed("m") == "done"
    assert all(s.route.platform_id == "chat1" for s in ch.sent)
    rows = host.conn.execute("SELECT id FROM sessions").fetchall()
    end = host.sessions.end(rows[0][0])
    refused = end.conn.execute("SELECT error FROM delivered WHERE status = 'refused'").fetchall()
    assert len(refused) == 1 and "'strangers' is not a destination" in refused[0][0]


async def test_forged_route_from_a_compromised_runner_is_refused(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    wire(host, "other-chat", trigger="always")
    ch = fake(host)
    await ch.say("hello", message_id="h")
    await ch.wait_processed("h")
    session_id = host.conn.execute(
        "SELECT s.id FROM sessions s JOIN messaging_groups m ON m.id = s.messaging_group_id WHERE m.platform_id='chat1'"
    ).fetchone()[0]
    folder = host.sessions.folder(host.sessions.get(session_id))
    # Write into outbound.db as a runner could, naming another chat as the route.
    forger = RunnerEnd(folder, doorbell=False)
    with forger.transaction():
        forger.write(kind="chat", text="leaked!", route=Route("fake", "other-chat"))
    forger.close()
    await host.delivery.drain(session_id)
    assert not any(s.text == "leaked!" for s in ch.sent)
    end = host.sessions.end(session_id)
    errors = [r[0] for r in end.conn.execute("SELECT error FROM delivered WHERE status = 'refused'")]
    assert errors == ["fake:other-chat is not this session's chat"]
