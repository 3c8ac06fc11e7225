"""The whole pipeline through real bwrap sandboxes, in doorbell and poll-only modes."""

from __future__ import annotations

import pytest

from nanoclaw.host.app import Host
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel, ThreadedFakeChannel

pytestmark = pytest.mark.sandbox


@pytest.fixture
async def any_host(tmp_path, doorbell):
    h = Host(make_settings(tmp_path / "home", doorbell=doorbell), channels=[FakeChannel, ThreadedFakeChannel])
    await h.start()
    yield h
    await h.stop()


async def test_mention_gets_an_answer_in_the_same_chat(any_host: Host) -> None:
    wire(any_host, "chat1")
    ch = fake(any_host)
    result = await ch.say("@Andy what is 2+2?")
    assert result.accepted and result.triggered
    sent = await ch.wait_sent(1)
    assert sent[0].route.platform_id == "chat1"
    assert "@Andy what is 2+2?" in sent[0].text


async def test_context_messages_reach_the_agent_with_the_next_trigger(any_host: Host) -> None:
    wire(any_host, "chat1")
    ch = fake(any_host)
    first = await ch.say("we are planning a picnic", sender="bob")
    assert first.accepted and not first.triggered
    await ch.say("@andy, where should we go?", sender="carol")
    sent = await ch.wait_sent(1)
    assert "Bob (context): we are planning a picnic" in sent[0].text
    assert "Carol: @andy, where should we go?" in sent[0].text
    assert "received 2 messages" in sent[0].text


async def test_follow_up_on_a_warm_runner(any_host: Host) -> None:
    wire(any_host, "chat1", trigger="always")
    ch = fake(any_host)
    await ch.say("one")
    await ch.wait_sent(1)
    await ch.say("two")
    sent = await ch.wait_sent(2)
    assert "two" in sent[1].text and "one" not in sent[1].text
    assert any_host.supervisor.starts == 1


async def test_threads_get_their_own_sessions_on_threaded_channels(any_host: Host) -> None:
    wire(any_host, "room", channel="fakethreads", trigger="always")
    ch = fake(any_host, "fakethreads")
    a = await ch.say("in thread A", chat="room", thread="A")
    b = await ch.say("in thread B", chat="room", thread="B")
    assert a.sessions != b.sessions
    sent = await ch.wait_sent(2)
    assert {s.route.thread_id for s in sent} == {"A", "B"}


async def test_non_threaded_channels_drop_thread_ids(any_host: Host) -> None:
    wire(any_host, "chat1", trigger="always")
    ch = fake(any_host)
    a = await ch.say("x", thread="A")
    b = await ch.say("y", thread="B")
    assert a.sessions == b.sessions
    sent = await ch.wait_sent(1)
    assert sent[0].route.thread_id is None


async def test_unknown_chats_are_recorded_not_answered(any_host: Host) -> None:
    ch = fake(any_host)
    result = await ch.say("@Andy hello?", chat="stranger")
    assert result.accepted and not result.triggered and not result.sessions
    rows = any_host.conn.execute("SELECT platform_id FROM messaging_groups WHERE channel_type='fake'").fetchall()
    assert [r[0] for r in rows] == ["stranger"]
    assert ch.sent == []


async def test_clear_is_a_host_command_for_the_provider(any_host: Host) -> None:
    wire(any_host, "dm", is_dm=True)
    ch = fake(any_host)
    await ch.say("/clear", chat="dm", is_dm=True)
    sent = await ch.wait_sent(1)
    assert sent[0].text == "Started a fresh conversation."


async def test_clear_in_a_group_chat_needs_the_owner(any_host: Host) -> None:
    wire(any_host, "group", trigger="always")
    ch = fake(any_host)
    result = await ch.say("/clear", chat="group", sender="mallory")
    assert not result.accepted and "Only the owner or an admin" in (result.error or "")
