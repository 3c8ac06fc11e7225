"""The channel contract, run against every platform's real client library and fake server.

Each test is parameterised by platform name, so `-k telegram` runs one
platform's share. Capability tests run where the channel declares the
capability, and the fallback is checked where it does not.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.errors import ChannelUnavailable
from nanoclaw.host.router import mention_pattern
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import (
    PLATFORMS, Running, channel_on, free_port, with_capability, without_capability,
)

ALL = list(PLATFORMS)


def each(names: list[str]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("running", names, indirect=True)


def route(r: Running, *, dm: bool = False, thread: str | None = None) -> Route:
    chat = r.platform.dm_chat if dm else r.platform.group_chat
    return Route(r.platform.channel_type, chat, thread)


def out(r: Running, text: str, *, id: str = "o1", thread: str | None = None, **kw: object) -> OutgoingMessage:
    return OutgoingMessage(route=route(r, thread=thread), kind=kw.pop("kind", "chat"), text=text, id=id, **kw)  # type: ignore[arg-type]


@each(ALL)
async def test_inbound_text_reaches_host(running: Running) -> None:
    await running.platform.user_says("hello there", sender_name="Alice")
    [event] = await running.host.wait_events(1)
    assert event.channel_type == running.platform.channel_type
    assert event.platform_id == running.platform.group_chat
    assert "hello there" in event.text
    assert event.sender_id and event.message_id
    assert event.is_dm == (not running.platform.has_groups)
    assert not event.from_bot


@each([p for p in ALL if PLATFORMS[p].has_dms])
async def test_direct_message_is_marked(running: Running) -> None:
    await running.platform.user_says("psst", dm=True)
    [event] = await running.host.wait_events(1)
    assert event.is_dm
    assert event.platform_id == running.platform.dm_chat


@each([p for p in ALL if PLATFORMS[p].mention_markup])
async def test_mention_of_the_bot_is_recognised(running: Running) -> None:
    await running.platform.user_says("what time is it?", mention=True)
    [event] = await running.host.wait_events(1)
    name = running.host.settings.assistant_name
    assert event.mentions_assistant or mention_pattern(name).search(event.text), event


@each([p for p in ALL if PLATFORMS[p].other_bots])
async def test_messages_of_bots_are_flagged(running: Running) -> None:
    """Another bot's message never reaches the host as a person's (two bots cannot loop)."""
    await running.platform.user_says("I am a bot", from_bot=True, sender="b7", sender_name="OtherBot")
    await running.platform.user_says("and I am a person")
    events = await running.host.wait_events(1)
    await asyncio.sleep(0.2)
    events = running.host.events
    person = [e for e in events if "person" in e.text]
    bots = [e for e in events if "bot" in e.text and "person" not in e.text]
    assert person and not person[0].from_bot
    assert all(e.from_bot for e in bots)  # either dropped by the channel or flagged for the host


@each(ALL)
async def test_send_reaches_the_chat(running: Running) -> None:
    result = await running.channel.send(out(running, "the answer is 42"))
    [msg] = await running.platform.wait_bot_messages(1, running.platform.group_chat)
    assert "the answer is 42" in msg.text
    assert result.platform_message_id == msg.id


@each(ALL)
async def test_long_message_is_split_at_the_limit(running: Running) -> None:
    limit = running.channel.capabilities.max_message_length
    assert limit, "every platform channel declares its message limit"
    words = [f"w{i}" for i in range(limit // 2)]  # ~1.5× to 3× the limit in characters
    text = " ".join(words)
    await running.channel.send(out(running, text))
    await asyncio.sleep(0.3)
    sent = await running.platform.bot_messages(running.platform.group_chat)
    assert len(sent) >= 2
    assert all(len(m.text) <= limit for m in sent)
    joined = " ".join(m.text for m in sent)
    assert re.findall(r"w\d+", joined) == words  # nothing lost, nothing reordered


@each(ALL)
async def test_markdown_is_converted(running: Running) -> None:
    await running.channel.send(out(running, "this is **important**"))
    [msg] = await running.platform.wait_bot_messages(1)
    assert running.platform.bold("important") in msg.text
    assert "**important**" not in msg.text or running.platform.bold("important") == "**important**"


@each([p for p in ALL if PLATFORMS[p].thread_root is not None])
async def test_reply_goes_to_the_thread(running: Running) -> None:
    thread = running.platform.thread_root
    await running.platform.user_says("in a thread", thread=thread)
    [event] = await running.host.wait_events(1)
    assert event.thread_id == thread
    await running.channel.send(out(running, "threaded answer", thread=thread))
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.thread == thread


@each(with_capability("cards"))
async def test_card_buttons_are_native_and_pressing_answers(running: Running) -> None:
    card = out(running, "Deploy now?", kind="question", title="Approval", buttons=("Yes", "No"), card_id="q-abc12345")
    await running.channel.send(card)
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.buttons == ("Yes", "No")
    await running.platform.press(msg, "No", sender="u1")
    [(card_id, value, sender)] = await running.host.wait_answers(1)
    assert (card_id, value) == ("q-abc12345", "No")
    assert sender


@each(with_capability("files"))
async def test_file_goes_out(running: Running) -> None:
    data = b"%PDF-1.4 fake report\n" + bytes(range(256))
    await running.channel.send(out(running, "here it is", kind="file", file=FileAttachment("report.pdf", data)))
    sent = await running.platform.wait_bot_messages(1)
    files = [m for m in sent if m.file_name]
    assert files and files[0].file_name == "report.pdf" and files[0].file_data == data


@each(with_capability("files"))
async def test_file_comes_in(running: Running) -> None:
    data = b"col1,col2\n1,2\n"
    await running.platform.user_says("see attached", file=("data.csv", data))
    [event] = await running.host.wait_events(1)
    assert [(f.name, f.data) for f in event.files] == [("data.csv", data)]


@each(with_capability("edits"))
async def test_edit_replaces_the_text(running: Running) -> None:
    result = await running.channel.send(out(running, "draft"))
    assert result.platform_message_id
    await running.channel.edit(route(running), result.platform_message_id, "final **text**")
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.edits and running.platform.bold("text") in msg.edits[-1]


@each(with_capability("reactions"))
async def test_reaction_is_added(running: Running) -> None:
    mid = await running.platform.user_says("nice work")
    await running.host.wait_events(1)
    await running.channel.react(route(running), mid, "👍")
    for _ in range(100):
        if await running.platform.reactions_on(mid):  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert "👍" in await running.platform.reactions_on(mid)  # type: ignore[attr-defined]


@each(with_capability("typing"))
async def test_typing_is_shown(running: Running) -> None:
    await running.platform.user_says("are you there?")  # WhatsApp shows typing on a person's message
    await running.host.wait_events(1)
    await running.channel.set_typing(route(running), True)
    for _ in range(100):
        if await running.platform.typing_seen(running.platform.group_chat):
            break
        await asyncio.sleep(0.05)
    assert await running.platform.typing_seen(running.platform.group_chat)


@each(ALL)
async def test_malformed_payloads_are_rejected_without_harm(running: Running) -> None:
    await running.platform.send_malformed()
    await asyncio.sleep(0.2)
    assert running.host.events == []
    await running.platform.user_says("still alive")
    [event] = await running.host.wait_events(1)
    assert "still alive" in event.text


@each([p for p in ALL if PLATFORMS[p].inbound == "connection"])
async def test_reconnects_after_the_server_drops_the_connection(running: Running) -> None:
    await running.platform.user_says("before")
    await running.host.wait_events(1)
    await running.platform.drop_connections()
    await running.platform.user_says("after")
    events = await running.host.wait_events(2, timeout=20)
    assert "after" in events[-1].text


@each([p for p in ALL if PLATFORMS[p].inbound == "webhook"])
async def test_sends_go_out_after_the_server_drops_the_connection(running: Running) -> None:
    """Messages arrive as webhooks here: the connection the channel holds is its client's, for sends."""
    await running.channel.send(out(running, "before the drop", id="o1"))
    await running.platform.wait_bot_messages(1)
    await running.platform.drop_connections()
    await running.channel.send(out(running, "after the drop", id="o2"))
    sent = await running.platform.wait_bot_messages(2, timeout=20)
    assert "before the drop" in sent[-2].text and "after the drop" in sent[-1].text, sent


@each([p for p in ALL if PLATFORMS[p].can_be_down])
async def test_outage_is_reported_as_unavailable(running: Running) -> None:
    """A platform outage is a ChannelUnavailable (the host retries later), never a crash or a silent loss."""
    await running.platform.set_down(True)
    with pytest.raises(ChannelUnavailable):
        await running.channel.send(out(running, "during the outage"))
    await running.platform.set_down(False)
    await running.channel.send(out(running, "after the outage", id="o2"))
    sent = await running.platform.wait_bot_messages(1)
    assert any("after the outage" in m.text for m in sent)


@each(without_capability("cards"))
async def test_cards_fall_back_to_text(running: Running) -> None:
    """Where the platform has no buttons the host renders cards as numbered text (delivery does this)."""
    assert not running.channel.capabilities.cards
    await running.channel.send(out(running, "1) Yes\n2) No"))
    [msg] = await running.platform.wait_bot_messages(1)
    assert "1) Yes" in msg.text and msg.buttons == ()


# The web chat's modal is the host's own credential form in a frame: tests/web/test_chat.py.
@each([p for p in with_capability("modals") if p != "web"])
async def test_credential_card_opens_a_modal_whose_value_goes_to_the_host(running: Running) -> None:
    credential = {"token": "tok-abc123", "name": "weather", "host": "api.weather.test",
                  "description": "Your key from weather.test/account"}
    card = out(running, "The assistant needs a credential: weather (for api.weather.test).", kind="card",
               title="Credential needed", card_id="cred-r1",
               payload={"form_url": "http://127.0.0.1:8700/credentials/tok-abc123", "credential": credential})
    await running.channel.send(card)
    [msg] = await running.platform.wait_bot_messages(1)
    await running.platform.submit_modal(msg, "sk-modal-canary")
    assert await running.host.wait_credentials(1) == [("tok-abc123", "sk-modal-canary")]
    sent = await running.platform.bot_messages()
    assert all("sk-modal-canary" not in m.text for m in sent)  # never echoed into the chat


@dataclass(frozen=True)
class Seen:
    """What the host learns from one message: the things a restart must not change."""

    chat: str
    chat_name: str | None
    is_dm: bool
    sender_name: str | None
    mentioned: bool
    thread: str | None


async def _sample(r: Running, tag: str) -> dict[str, Seen]:
    """A person writes in the group (mentioning the bot, then naming it), in private and in a thread."""
    p, name = r.platform, r.host.settings.assistant_name
    said: list[tuple[str, dict[str, object]]] = [
        ("mention", dict(mention=True)), ("by-name", dict(text=f"{name}, {tag} by name")),
    ]
    if p.has_dms:
        said.append(("private", dict(dm=True)))
    if p.thread_root is not None:
        said.append(("thread", dict(thread=p.thread_root)))
    seen: dict[str, Seen] = {}
    for kind, options in said:
        text = str(options.pop("text", f"{tag} {kind}"))
        await p.user_says(text, **options)  # type: ignore[arg-type]
        event = await r.host.wait_text(text.split(", ")[-1])  # a mention may be rewritten; the rest stays
        # Top-level messages start threads of their own on some platforms: only the thread's presence counts.
        thread = event.thread_id if kind == "thread" else str(event.thread_id is not None)
        seen[kind] = Seen(event.platform_id, event.chat_name, event.is_dm, event.sender_name,
                          event.mentions_assistant or bool(mention_pattern(name).search(event.text)), thread)
    return seen


@pytest.mark.parametrize("name", ALL)
async def test_a_restart_keeps_chat_names_dms_mentions_and_threads(name: str, tmp_path: Path) -> None:
    """After a restart the channel knows its chats as before, answers nothing twice and makes nothing wait
    (its start returns promptly: channel_on gives it a deadline)."""
    port = free_port()  # the host's address stays the same across the restart, as the platform knows it
    platform = PLATFORMS[name]()
    platform.webhook_base = f"http://127.0.0.1:{port}/hooks"
    env = await platform.start(tmp_path)
    try:
        async with channel_on(platform, tmp_path, env=env, web_port=port) as first:
            before = await _sample(first, "before")
            earlier = {e.message_id for e in first.host.events}
        async with channel_on(platform, tmp_path, env=env, web_port=port) as second:
            after = await _sample(second, "after")
            again = [e for e in second.host.events if e.message_id in earlier]
            assert again == [], "messages from before the restart came again"
        assert after == before
    finally:
        await platform.stop()


# The web chat's cards: tests/web/test_cards.py.
@each([p for p in with_capability("cards") if p in with_capability("edits") and p != "web"])
async def test_a_closed_card_shows_its_outcome_and_loses_its_buttons(running: Running) -> None:
    card = out(running, "Deploy now?", kind="question", title="Approval", buttons=("Yes", "No"), card_id="q-abc12345")
    result = await running.channel.send(card)
    assert result.platform_message_id
    await running.channel.close_card(route(running), result.platform_message_id, "q-abc12345", "Approval: Deploy now?",
                                     "✅ Approved by Alice on the dashboard")
    await asyncio.sleep(0.2)
    # Edited in place; where a platform cannot edit a card (Webex) the card is deleted and the outcome follows.
    [msg] = [m for m in await running.platform.bot_messages(running.platform.group_chat) if not m.raw.get("deleted")]
    shown = msg.edits[-1] if msg.edits else msg.text
    assert "Approved by Alice" in shown and "Deploy now?" in shown
    assert msg.buttons == ()


class _OneSession:
    """The relay's view of the host's sessions, reduced to one real session folder."""

    def __init__(self, end: object) -> None:
        self._end = end

    def end(self, session_id: str) -> object:
        return self._end


@each([p for p in ALL if PLATFORMS[p]().channel_class().capabilities.stream_interval is not None])
async def test_a_streamed_reply_grows_in_one_message_within_the_rate_limit_then_is_final(running: Running,
                                                                                          tmp_path) -> None:
    """The host's StreamRelay over this channel: one message, edited no faster than the platform allows."""
    from nanoclaw.host.streaming import StreamRelay
    from nanoclaw.protocol.folder import SessionFolder
    from nanoclaw.protocol.host_end import HostEnd
    from nanoclaw.protocol.runner_end import RunnerEnd

    folder = SessionFolder(tmp_path / "session")
    host_end = HostEnd(folder, doorbell=False)
    runner_end = RunnerEnd(folder, doorbell=False)
    host_end.set_routing(route(running))
    relay = StreamRelay(_OneSession(host_end), {running.platform.channel_type: running.channel},  # type: ignore[arg-type]
                        lambda _channel: True, lambda _session: True)
    interval = running.channel.capabilities.stream_interval or 0
    words = [f"token{i}" for i in range(16)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(1, len(words) + 1):  # a model writing for about three rate-limit intervals
        runner_end.write_partial("st1", 2, " ".join(words[:n]))
        relay.kick("s1")
        await asyncio.sleep(interval * 3 / len(words))
    [first] = await running.platform.wait_bot_messages(1, running.platform.group_chat)
    assert words[0] in first.text
    final = out(running, " ".join(words) + " **done**", id="final1", payload={"stream": "st1"})
    result = await relay.finish("st1", final)
    elapsed = loop.time() - started
    assert result is not None and result.platform_message_id == first.id
    await asyncio.sleep(0.3)
    [msg] = await running.platform.bot_messages(running.platform.group_chat)  # one message, nothing else
    assert running.platform.bold("done") in msg.edits[-1] and "token15" in msg.edits[-1]
    growing = msg.edits[:-1]
    assert len(growing) >= 2, "it grew while written"
    assert len(growing) <= elapsed / interval + 1  # the platform's rate limit held
    runner_end.close()
    host_end.close()
