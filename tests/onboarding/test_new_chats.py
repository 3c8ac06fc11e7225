"""New chats are asked about, not ignored: held, a card to the owner, answered once the owner chooses.

A real host with the fake channels (tests/fakes/channel.py) and real sandboxes (mock provider); the owner's
admin chat is the web chat of a fresh install.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db import agent_groups, approvals, channel_settings, held_messages, messaging_groups, users, wirings
from nanoclaw.host.app import Host
from tests.conftest import fake, make_settings
from tests.fakes.channel import FakeChannel
from tests.onboarding.helpers import wait_until, web_card, web_chat, web_says

pytestmark = pytest.mark.sandbox


def texts(ch: FakeChannel, chat: str) -> str:
    return "\n".join(s.text for s in ch.sent if s.route.platform_id == chat)


async def test_new_chat_first_message_answered_after_the_owners_button(host: Host) -> None:
    ch = fake(host)
    await ch.say("hello, first time here", chat="bob-dm", sender="bob", is_dm=True, message_id="m-1")
    await ch.say("anyone there?", chat="bob-dm", sender="bob", is_dm=True, message_id="m-2")
    card = await web_card(host, "New chat")
    assert card["buttons"] == ["Answer with main", "Ignore", "Block"]
    assert "Bob (fake:bob)" in card["text"] and "“hello, first time here”" in card["text"]
    assert "a direct message" in card["text"] and f"/approve {card['card_id']}" in card["text"]
    assert len([m for m in approvals.open_of_kind(host.conn, "new_chat")]) == 1  # one card, however many messages
    await asyncio.sleep(0.3)
    assert ch.sent == [] and host.conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0

    assert await host.answer(card["card_id"], "Answer with main", "bob") == "Only the owner or an admin may decide this."
    assert await host.answer(card["card_id"], "Answer with main", "owner") is None
    await wait_until(lambda: "hello, first time here" in texts(ch, "bob-dm") and "anyone there?" in texts(ch, "bob-dm"))
    assert "2 waiting messages went through" in await web_says(host, "Answered (")

    # Neither a second press nor the platform delivering the first message again answers anything twice.
    assert await host.answer(card["card_id"], "Answer with main", "owner") is None
    await web_says(host, "is not open")
    await ch.say("hello, first time here", chat="bob-dm", sender="bob", is_dm=True, message_id="m-1")
    await ch.say("and now?", chat="bob-dm", sender="bob", is_dm=True, message_id="m-3")
    await wait_until(lambda: "and now?" in texts(ch, "bob-dm"))
    assert texts(ch, "bob-dm").count("hello, first time here") == 1 and texts(ch, "bob-dm").count("anyone there?") == 1


async def test_new_chat_answered_with_another_agent_group_by_command(host: Host) -> None:
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    ch = fake(host)
    await ch.say("@Andy hi from the family chat", chat="family-chat", sender="carol")
    card = await web_card(host, "New chat")
    assert card["buttons"] == ["Answer with main", "Answer with family", "Ignore", "Block"]
    assert "in a group chat on fake (fake:family-chat)" in card["text"]
    reply = await host.receive(InboundEvent(  # the owner types the command in the web chat
        "web", "owner", "cmd-1", f"/approve {card['card_id']} nosuchgroup", "owner", is_dm=True))
    assert "no agent group 'nosuchgroup'" in (reply.reply or "")
    assert approvals.get(host.conn, card["card_id"]).status == "open"  # still open after a wrong group
    await host.answer(card["card_id"], "Answer with family", "owner")
    await wait_until(lambda: "hi from the family chat" in texts(ch, "family-chat"))
    chat = messaging_groups.find(host.conn, "fake", "family-chat")
    assert [w.agent_group_id for w in wirings.for_messaging_group(host.conn, chat.id)] == ["family"]
    session = host.conn.execute("SELECT agent_group_id FROM sessions WHERE messaging_group_id = ?", (chat.id,)).fetchone()
    assert session["agent_group_id"] == "family"


async def test_new_chat_ignore_is_remembered_and_asks_no_more(host: Host) -> None:
    ch = fake(host)
    await ch.say("buy my stuff", chat="spam-dm", sender="spammer", is_dm=True)
    card = await web_card(host, "New chat")
    await host.answer(card["card_id"], "Ignore", "owner")
    assert "Ignored (" in await web_says(host, "Ignored (")
    chat = messaging_groups.find(host.conn, "fake", "spam-dm")
    assert chat.admission == "ignored" and held_messages.count(host.conn, chat.id) == 0
    await ch.say("buy my stuff again", chat="spam-dm", sender="spammer", is_dm=True)
    await asyncio.sleep(0.3)
    assert len([m for m in web_chat(host) if m.get("title") == "New chat"]) == 1 and ch.sent == []
    assert held_messages.count(host.conn, chat.id) == 0


async def test_new_chat_block_drops_the_person_in_every_chat(host: Host) -> None:
    ch = fake(host)
    await ch.say("hello?", chat="troll-dm", sender="troll", is_dm=True)
    card = await web_card(host, "New chat")
    await host.answer(card["card_id"], "Block", "owner")
    await web_says(host, "Blocked (")
    assert users.find(host.conn, "fake", "troll").role == "blocked"
    chat = messaging_groups.upsert(host.conn, "fake", "open-club")
    wirings.wire(host.conn, chat.id, "main", trigger="always")  # an open chat: anyone is answered, not them
    await ch.say("in the club", chat="open-club", sender="troll")
    await ch.say("a friend in the club", chat="open-club", sender="friend")
    await wait_until(lambda: "a friend in the club" in texts(ch, "open-club"))
    assert "in the club" not in texts(ch, "open-club").replace("a friend in the club", "")


async def test_new_chat_default_main_answers_direct_chats_at_once_and_asks_about_groups(host: Host) -> None:
    channel_settings.set_new_chats(host.conn, "fake", "main")
    ch = fake(host)
    await ch.say("quick question", chat="dora-dm", sender="dora", is_dm=True)
    await wait_until(lambda: "quick question" in texts(ch, "dora-dm"))
    await ch.say("@Andy hello group", chat="new-group", sender="dora")
    card = await web_card(host, "New chat")
    assert "new-group" in card["text"]
    assert approvals.open_of_kind(host.conn, "new_chat")[0].payload["chat"] == \
        messaging_groups.find(host.conn, "fake", "new-group").id


async def test_new_chat_default_ignore_and_robots_raise_no_card(host: Host) -> None:
    ch = fake(host)
    await host.receive(InboundEvent("fake", "robot-dm", "r1", "Your order has shipped", "noreply", is_dm=True,
                                    from_bot=True))
    channel_settings.set_new_chats(host.conn, "fakethreads", "ignore")
    await fake(host, "fakethreads").say("hello?", chat="quiet-dm", sender="erin", is_dm=True)
    await asyncio.sleep(0.3)
    assert approvals.open_of_kind(host.conn, "new_chat") == [] and ch.sent == []
    assert messaging_groups.find(host.conn, "fakethreads", "quiet-dm") is not None  # recorded: nanoclaw groups lists it


async def test_unwired_chat_wired_while_held_is_answered_in_order(host: Host) -> None:
    ch = fake(host)
    await ch.say("first", chat="frank-dm", sender="frank", is_dm=True)
    await web_card(host, "New chat")
    chat = messaging_groups.find(host.conn, "fake", "frank-dm")
    wirings.wire(host.conn, chat.id, "main", trigger="dm", session_mode="shared")  # as `nanoclaw groups wire` does
    await ch.say("second", chat="frank-dm", sender="frank", is_dm=True)
    await wait_until(lambda: "second" in texts(ch, "frank-dm"))
    assert "first" in texts(ch, "frank-dm") and texts(ch, "frank-dm").index("first") < texts(ch, "frank-dm").index("second")
    assert held_messages.count(host.conn, chat.id) == 0


async def test_unwired_chat_held_messages_survive_a_restart(tmp_path: Path) -> None:
    from tests.fakes.channel import RichFakeChannel, ThreadedFakeChannel

    settings = make_settings(tmp_path / "home")
    first = Host(settings, channels=[FakeChannel, ThreadedFakeChannel, RichFakeChannel])
    await first.start()
    try:
        await fake(first).say("said before the restart", chat="gina-dm", sender="gina", is_dm=True)
        await web_card(first, "New chat")
    finally:
        await first.stop()
    second = Host(settings, channels=[FakeChannel, ThreadedFakeChannel, RichFakeChannel])
    await second.start()
    try:
        [card] = approvals.open_of_kind(second.conn, "new_chat")
        await second.answer(card.id, "Answer with main", "owner")
        ch = fake(second)
        await wait_until(lambda: "said before the restart" in texts(ch, "gina-dm"))
    finally:
        await second.stop()
