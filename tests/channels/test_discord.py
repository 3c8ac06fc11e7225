"""Discord specifics beyond the contract: settings errors, mention and thread mapping, button custom ids,
interaction acknowledgement, nonce de-duplication, attachment limits, error mapping, reconnect after garbage,
credential modals (wire format, refuse, expired, the value kept out of logs and messages)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from nanoclaw.channels.base import IngestResult, OutgoingMessage
from nanoclaw.channels.discord import DiscordChannel, _digest
from nanoclaw.errors import ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running
from tests.channels.harness import RecordingHost
from tests.channels.platforms.discord import DiscordPlatform
from tests.conftest import make_settings
from tests.fakes.discord_server import APP_ID, BOT_ID, DM_CHANNEL, TEXT_CHANNEL, THREAD, DiscordFake, text_inputs

discord_only = pytest.mark.parametrize("running", ["discord"], indirect=True)


def _route(chat: str = TEXT_CHANNEL, thread: str | None = None) -> Route:
    return Route("discord", chat, thread)


def _card(card_id: str | None, buttons: tuple[str, ...], id: str = "c1") -> OutgoingMessage:
    return OutgoingMessage(route=_route(), kind="question" if card_id else "card", text="Pick one", id=id,
                           title="Choice", buttons=buttons, card_id=card_id)


class _RefusingHost(RecordingHost):
    """A host that refuses every answer (an expired question)."""

    async def answer(self, card_id: str, value: str, sender_id: str) -> str | None:
        await super().answer(card_id, value, sender_id)
        return "This question has expired."


@pytest.fixture
async def refusing(tmp_path: Path) -> AsyncIterator[tuple[DiscordPlatform, RecordingHost, DiscordChannel]]:
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    host = _RefusingHost(make_settings(tmp_path / "home", extra=env), accept=lambda e: IngestResult(True))
    channel = DiscordChannel(host)
    await channel.start()
    try:
        yield platform, host, channel
    finally:
        await channel.stop()
        await platform.stop()


async def _start_with(tmp_path: Path, env: dict[str, str]) -> DiscordChannel:
    channel = DiscordChannel(RecordingHost(make_settings(tmp_path / "home", extra=env)))
    await channel.start()
    return channel


async def test_discord_missing_token_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        await _start_with(tmp_path, {"DISCORD_API_BASE": "http://127.0.0.1:9/api/v10"})


async def test_discord_refused_token_is_a_config_error(tmp_path: Path) -> None:
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    try:
        with pytest.raises(ConfigError, match="refused DISCORD_BOT_TOKEN"):
            await _start_with(tmp_path, {**env, "DISCORD_BOT_TOKEN": "not-the-token"})
    finally:
        await platform.stop()


async def test_discord_missing_message_content_intent_is_a_config_error(tmp_path: Path) -> None:
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    platform.fake.message_content_allowed = False
    try:
        with pytest.raises(ConfigError, match="Message Content"):
            await _start_with(tmp_path, env)
    finally:
        await platform.stop()


@discord_only
async def test_discord_mentions_become_the_assistant_name(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    alice = fake.user_json(fake.user_id("u1"), "Alice")
    await fake.say(TEXT_CHANNEL, f"<@!{BOT_ID}> hi and <@1400000000000000077>", user=alice,
                   mentions=[fake.bot_user(), fake.user_json("1400000000000000077", "Bob")])
    await fake.say(TEXT_CHANNEL, "<@1400000000000000077> not for the bot", user=alice,
                   mentions=[fake.user_json("1400000000000000077", "Bob")])
    first, second = await running.host.wait_events(2)
    assert first.mentions_assistant and first.text == "@Andy hi and <@1400000000000000077>"
    assert not second.mentions_assistant


@discord_only
async def test_discord_threads_dms_and_own_messages_are_mapped(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    await running.platform.user_says("in the thread", thread=THREAD)
    await running.platform.user_says("privately", dm=True)
    await fake.say(TEXT_CHANNEL, "my own echo", user=fake.bot_user())  # the bot's own message: dropped
    await running.platform.user_says("last")
    thread_event, dm_event, last = await running.host.wait_events(3)
    assert (thread_event.platform_id, thread_event.thread_id) == (TEXT_CHANNEL, THREAD)
    assert thread_event.chat_name == "Family #general" and not thread_event.is_dm
    assert dm_event.is_dm and dm_event.platform_id == DM_CHANNEL and dm_event.thread_id is None
    assert last.text == "last" and len(running.host.events) == 3


@discord_only
async def test_discord_buttons_carry_card_and_label_and_presses_are_acknowledged(running: Running) -> None:
    long_label = "L" * 80  # the longest label the host sends
    await running.channel.send(_card("oa-abc12345", ("Approve", long_label)))
    [msg] = await running.platform.wait_bot_messages(1)
    custom_ids = [c["custom_id"] for row in msg.raw["components"] for c in row["components"]]
    assert all(len(c) <= 100 for c in custom_ids) and len(set(custom_ids)) == 2
    assert msg.text == "**Choice**\nPick one"
    await running.platform.press(msg, long_label, sender="u2")
    [(card_id, value, sender)] = await running.host.wait_answers(1)
    assert (card_id, value) == ("oa-abc12345", long_label) and sender.isdigit()
    fake = running.platform.fake  # type: ignore[attr-defined]
    for _ in range(100):
        if fake.interaction_responses:
            break
        await asyncio.sleep(0.02)
    assert [r["type"] for r in fake.interaction_responses] == [6]  # DEFERRED_UPDATE_MESSAGE


async def test_discord_refused_answer_is_shown_only_to_the_presser(
        refusing: tuple[DiscordPlatform, RecordingHost, DiscordChannel]) -> None:
    platform, host, channel = refusing
    await channel.send(_card("q-abc12345", ("Yes", "No")))
    [msg] = await platform.wait_bot_messages(1)
    await platform.press(msg, "Yes")
    await host.wait_answers(1)
    for _ in range(100):
        if platform.fake.interaction_responses:
            break
        await asyncio.sleep(0.02)
    [response] = platform.fake.interaction_responses
    assert response["type"] == 4 and response["data"]["flags"] == 64  # an ephemeral message
    assert "expired" in response["data"]["content"]


@discord_only
async def test_discord_card_without_id_has_disabled_buttons(running: Running) -> None:
    await running.channel.send(_card(None, ("Docs", "Status")))
    [msg] = await running.platform.wait_bot_messages(1)
    buttons = [c for row in msg.raw["components"] for c in row["components"]]
    assert [b["label"] for b in buttons] == ["Docs", "Status"] and all(b.get("disabled") for b in buttons)


@discord_only
async def test_discord_retried_send_posts_once(running: Running) -> None:
    """The nonce with enforce_nonce makes a retry after a lost answer a no-op on Discord."""
    message = OutgoingMessage(route=_route(), kind="chat", text="only once " + "x " * 1200, id="row-7")
    first = await running.channel.send(message)
    second = await running.channel.send(message)
    sent = await running.platform.bot_messages()
    assert len(sent) == 2  # the text needed two pieces; the retry added none
    assert first.platform_message_id == second.platform_message_id == sent[-1].id


@discord_only
async def test_discord_agent_cannot_ping_everyone(running: Running) -> None:
    await running.channel.send(OutgoingMessage(route=_route(), kind="chat", text="@everyone look", id="o1"))
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.raw["allowed_mentions"]["parse"] == ["users"]


@discord_only
async def test_discord_oversized_attachment_is_skipped_with_a_note(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    alice = fake.user_json(fake.user_id("u1"), "Alice")
    await fake.say(TEXT_CHANNEL, "two files", user=alice,
                   files=[("huge.iso", b"tiny really", 60 * 2**20), ("photo.png", b"\x89PNG\r\n", None)])
    [event] = await running.host.wait_events(1)
    assert [(f.name, f.data, f.mime_type) for f in event.files] == [("photo.png", b"\x89PNG\r\n", "image/png")]
    assert "huge.iso" in event.text and "50 MB" in event.text


@discord_only
async def test_discord_unknown_destinations_are_refused(running: Running) -> None:
    with pytest.raises(DestinationRefused):
        await running.channel.send(OutgoingMessage(route=_route("1999999999999999999"), kind="chat", text="x", id="a"))
    with pytest.raises(DestinationRefused):
        await running.channel.send(OutgoingMessage(route=_route("general"), kind="chat", text="x", id="b"))


@discord_only
async def test_discord_replies_edits_and_reactions_in_a_thread(running: Running) -> None:
    result = await running.channel.send(OutgoingMessage(route=_route(thread=THREAD), kind="chat", text="v1", id="t"))
    assert result.platform_message_id
    await running.channel.edit(_route(thread=THREAD), result.platform_message_id, "v2 " + "y" * 2100)
    await running.channel.react(_route(thread=THREAD), result.platform_message_id, "✅")
    [msg] = await running.platform.wait_bot_messages(1)
    assert msg.thread == THREAD and msg.reactions == ["✅"]
    assert len(msg.edits[-1]) == 2000 and msg.edits[-1].endswith("…")


@discord_only
async def test_discord_typing_stops_when_switched_off(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    await running.channel.set_typing(_route(thread=THREAD), True)
    for _ in range(100):
        if THREAD in fake.typing:
            break
        await asyncio.sleep(0.02)
    await running.channel.set_typing(_route(thread=THREAD), False)
    assert fake.typing == [THREAD] and not running.channel._typing  # type: ignore[attr-defined]


@discord_only
async def test_discord_garbage_frame_reconnects_with_backoff(running: Running,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO, logger="nanoclaw.channels.discord")
    await fake.send_raw("{this is not json")
    for _ in range(200):
        if fake.identifies >= 2:
            break
        await asyncio.sleep(0.02)
    assert fake.identifies == 2
    assert "channel.reconnect channel=discord delay=0.5" in caplog.text
    await running.platform.user_says("back again")
    [event] = await running.host.wait_events(1)
    assert event.text == "back again"


@discord_only
async def test_discord_gateway_outage_backs_off_then_reconnects(running: Running,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO, logger="nanoclaw.channels")
    fake.gateway_down = True
    await fake.drop()
    for _ in range(200):
        if "delay=1.0" in caplog.text:
            break
        await asyncio.sleep(0.02)
    delays = [r.getMessage().split("delay=")[1].split()[0] for r in caplog.records
              if "channel.reconnect" in r.getMessage() and "delay=" in r.getMessage()]
    assert delays[:2] == ["0.5", "1.0"]  # doubling from 0.5 s
    fake.gateway_down = False
    for _ in range(200):
        if fake.identifies >= 2:
            break
        await asyncio.sleep(0.02)
    await running.platform.user_says("after the outage")
    [event] = await running.host.wait_events(1)
    assert event.text == "after the outage" and running.host.ready.count("discord") >= 2


# --- credential modals -----------------------------------------------------------------------

TOKEN_A = "tok-Zx8_credential-token-0123456789"
CANARY = "sk-live-canary-7f3a9c"


def _credential_card(token: str = TOKEN_A, id: str = "cr1") -> OutgoingMessage:
    link = f"http://127.0.0.1:8700/credentials/{token}"
    text = ("The assistant needs a credential: weather (for api.weather.test).\n"
            f"Your key from weather.test/account\nEnter it here, on this computer: {link}\n"
            "The link works once, for 10 minutes. The assistant never sees the value.")
    return OutgoingMessage(route=_route(), kind="card", text=text, id=id, title="Credential needed",
                           card_id="cred-r1", payload={"form_url": link, "credential": {
                               "token": token, "name": "weather", "host": "api.weather.test",
                               "description": "Your key from weather.test/account"}})


class _DeskHost(RecordingHost):
    """Answers credentials like the host's desk: each token once, then "expired"; `status` decides the rest."""

    def __init__(self, *args: Any, status: Callable[[str | None], str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.used: set[str] = set()
        self.status = status or (lambda value: "rejected" if value is None else "saved")

    def submit_credential(self, token: str, value: str | None, *, sender_id: str) -> str:
        super().submit_credential(token, value, sender_id=sender_id)
        if token in self.used:
            return "expired"
        self.used.add(token)
        return self.status(value)


async def _desk(tmp_path: Path, status: Callable[[str | None], str] | None = None
                ) -> tuple[DiscordPlatform, _DeskHost, DiscordChannel]:
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    host = _DeskHost(make_settings(tmp_path / "home", extra=env), status=status)
    channel = DiscordChannel(host)
    await channel.start()
    return platform, host, channel


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[tuple[DiscordPlatform, _DeskHost, DiscordChannel]]:
    platform, host, channel = await _desk(tmp_path)
    try:
        yield platform, host, channel
    finally:
        await channel.stop()
        await platform.stop()


async def _responses(fake: DiscordFake, count: int) -> list[dict[str, Any]]:
    for _ in range(250):
        if len(fake.interaction_responses) >= count:
            break
        await asyncio.sleep(0.02)
    return fake.interaction_responses


async def _card_edits(platform: DiscordPlatform, count: int = 1) -> list[str]:
    for _ in range(250):
        [msg] = await platform.bot_messages()
        if len(msg.edits) >= count:
            return msg.edits
        await asyncio.sleep(0.02)
    raise AssertionError("the credential card was not edited")


def _is_modal_submit(frame: dict[str, Any]) -> bool:
    return frame["t"] == "INTERACTION_CREATE" and isinstance(frame["d"], dict) and frame["d"].get("type") == 5


def _recorded(fake: DiscordFake) -> tuple[str, str]:
    """(everything the fake recorded but the modal submissions, the modal submissions)."""
    frames = [f for session in fake._sessions.values() for f in session.log]
    rest = [[dataclasses.asdict(m) for m in fake.messages], fake.interaction_responses, fake.reactions,
            fake.typing, [f for f in frames if not _is_modal_submit(f)]]
    return json.dumps(rest, default=str), json.dumps([f for f in frames if _is_modal_submit(f)])


async def test_discord_credential_modal_saves_and_the_value_goes_nowhere_else(
        desk: tuple[DiscordPlatform, _DeskHost, DiscordChannel], caplog: pytest.LogCaptureFixture) -> None:
    platform, host, channel = desk
    caplog.set_level(logging.DEBUG)
    for name in ("discord", "nanoclaw"):  # whatever the host's log settings: the most a log can show
        caplog.set_level(logging.DEBUG, logger=name)
    await channel.send(_credential_card())
    [msg] = await platform.wait_bot_messages(1)
    assert msg.buttons == ("Enter credential", "Refuse")
    assert f"http://127.0.0.1:8700/credentials/{TOKEN_A}" in msg.text  # the one-time form stays as the fallback
    assert msg.text.startswith("**Credential needed**\nThe assistant needs a credential: weather")

    fake = platform.fake
    pressed = await fake.press(fake.messages[0], "Enter credential", fake.user_json(fake.user_id("u1"), "Alice"))
    modal = await fake.wait_response(pressed)
    assert modal["type"] == 9 and modal["data"]["custom_id"] == f"ncc|{TOKEN_A}"
    assert modal["data"]["title"] == "Credential: weather"
    [label] = modal["data"]["components"]
    assert label["type"] == 18 and label["component"]["type"] == 4  # a text input in a label (Discord's layout)
    [field] = text_inputs(modal["data"])
    assert field["required"] and field["style"] == 1
    assert not channel._client._connection._view_store._modals  # type: ignore[union-attr]  # no modal kept waiting
    await fake.submit_modal(fake.messages[0], modal["data"], {field["custom_id"]: CANARY},
                            fake.user_json(fake.user_id("u1"), "Alice"))

    assert await host.wait_credentials(1) == [(TOKEN_A, CANARY)]
    _, answer = await _responses(fake, 2)
    assert answer["type"] == 4 and answer["data"]["flags"] == 64  # ephemeral: only the person sees it
    assert "Saved" in answer["data"]["content"]
    [edit] = await _card_edits(platform)
    [msg] = await platform.bot_messages()
    assert msg.buttons == () and "Saved" in edit and "Alice" in edit
    assert TOKEN_A not in edit and edit.startswith("**Credential needed**\nThe assistant needs a credential")

    rest, submissions = _recorded(fake)
    assert CANARY in submissions  # the person did type it (the fake's record of what Discord sent)
    assert CANARY not in rest
    assert CANARY not in caplog.text
    assert "WebSocket Event" in caplog.text and "[hidden]" in caplog.text  # discord.py's event log, value hidden


async def test_discord_credential_refuse_button_tells_the_host(
        desk: tuple[DiscordPlatform, _DeskHost, DiscordChannel]) -> None:
    platform, host, channel = desk
    await channel.send(_credential_card())
    [msg] = await platform.wait_bot_messages(1)
    await platform.submit_modal(msg, None)
    assert await host.wait_credentials(1) == [(TOKEN_A, None)]
    [answer] = await _responses(platform.fake, 1)
    assert answer["type"] == 4 and answer["data"]["flags"] == 64 and "Refused" in answer["data"]["content"]
    [edit] = await _card_edits(platform)
    assert "Refused" in edit
    [msg] = await platform.bot_messages()
    assert msg.buttons == ()


async def test_discord_expired_credential_request_is_shown_only_to_the_person(tmp_path: Path) -> None:
    platform, host, channel = await _desk(tmp_path, status=lambda value: "expired")
    try:
        await channel.send(_credential_card())
        [msg] = await platform.wait_bot_messages(1)
        await platform.submit_modal(msg, CANARY)
        await host.wait_credentials(1)
        _, answer = await _responses(platform.fake, 2)
        assert answer["type"] == 4 and answer["data"]["flags"] == 64
        assert "expired" in answer["data"]["content"] and CANARY not in answer["data"]["content"]
        [edit] = await _card_edits(platform)  # its buttons could only fail from now on
        assert "Expired" in edit
        assert (await platform.bot_messages())[0].buttons == ()
    finally:
        await channel.stop()
        await platform.stop()


async def test_discord_late_second_answer_leaves_the_card_as_answered(
        desk: tuple[DiscordPlatform, _DeskHost, DiscordChannel]) -> None:
    """Bob opened the modal; Alice refused meanwhile: Bob is told it expired, the card keeps Alice's answer."""
    platform, host, channel = desk
    fake = platform.fake
    await channel.send(_credential_card())
    [msg] = await platform.wait_bot_messages(1)
    bob = fake.user_json(fake.user_id("u2"), "Bob")
    modal = (await fake.wait_response(await fake.press(fake.messages[0], "Enter credential", bob)))["data"]
    await platform.submit_modal(msg, None, sender="u1")
    [edit] = await _card_edits(platform)
    await fake.submit_modal(fake.messages[0], modal, {text_inputs(modal)[0]["custom_id"]: CANARY}, bob)
    assert await host.wait_credentials(2) == [(TOKEN_A, None), (TOKEN_A, CANARY)]
    answers = await _responses(fake, 3)
    assert "expired" in answers[-1]["data"]["content"] and answers[-1]["data"]["flags"] == 64
    await asyncio.sleep(0.1)
    [msg] = await platform.bot_messages()
    assert msg.edits == [edit] and "Refused" in edit


async def test_discord_failed_status_never_repeats_the_value(tmp_path: Path) -> None:
    platform, host, channel = await _desk(tmp_path, status=lambda value: f"failed: {value!r} is not a valid key")
    try:
        await channel.send(_credential_card())
        [msg] = await platform.wait_bot_messages(1)
        await platform.submit_modal(msg, CANARY)
        await host.wait_credentials(1)
        _, answer = await _responses(platform.fake, 2)
        assert answer["data"]["content"].startswith("Not saved:") and "[hidden]" in answer["data"]["content"]
        edits = await _card_edits(platform)
        assert "Not saved" in edits[-1]
        assert CANARY not in _recorded(platform.fake)[0]
    finally:
        await channel.stop()
        await platform.stop()


@discord_only
async def test_discord_ordinary_cards_get_no_credential_buttons(running: Running) -> None:
    await running.channel.send(_card("q-abc12345", ("Yes", "No")))
    await running.channel.send(OutgoingMessage(route=_route(), kind="card", text="FYI", id="c2", title="Note"))
    first, second = await running.platform.wait_bot_messages(2)
    assert first.buttons == ("Yes", "No") and second.buttons == ()
    assert "Enter credential" not in first.text + second.text


# --- catch-up of what was written while the bot was offline ----------------------------------

GONE_CHANNEL = "1100000000000000002"


def _seen_file(tmp_path: Path) -> Path:
    return make_settings(tmp_path / "home").state_dir / f"discord-seen-{_digest(APP_ID)}.json"


async def _quiet(host: RecordingHost, count: int, settle: float = 0.5) -> list[str]:
    """The texts of the host's events once `count` arrived and nothing more came for `settle` seconds."""
    await host.wait_events(count)
    await asyncio.sleep(settle)
    return [e.text for e in host.events]


async def test_discord_messages_written_while_stopped_are_passed_once_oldest_first(tmp_path: Path) -> None:
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    fake = platform.fake
    fake.channels[GONE_CHANNEL] = {**fake.channels[TEXT_CHANNEL], "id": GONE_CHANNEL, "name": "old"}
    alice = fake.user_json(fake.user_id("u1"), "Alice")
    try:
        first = await _start_with(tmp_path, env)
        host1: RecordingHost = first.host
        await platform.user_says("seen in the channel")
        await platform.user_says("seen in the DM", dm=True)
        await fake.say(GONE_CHANNEL, "seen in a channel about to go", user=alice)
        assert await _quiet(host1, 3, settle=0.1)
        await first.stop()
        saved = json.loads(_seen_file(tmp_path).read_text())["channels"]
        assert set(saved) == {TEXT_CHANNEL, DM_CHANNEL, GONE_CHANNEL}

        # while NanoClaw is stopped
        missed = [await platform.user_says(f"missed {n}") for n in (1, 2)]
        await platform.user_says("missed in the DM", dm=True)
        await platform.user_says("in a thread never seen", thread=THREAD)  # history, not fetched
        del fake.channels[GONE_CHANNEL]  # deleted meanwhile: 404

        second = await _start_with(tmp_path, env)
        host2: RecordingHost = second.host
        try:
            assert await _quiet(host2, 3) == ["missed 1", "missed 2", "missed in the DM"]
            assert [e.message_id for e in host2.events[:2]] == missed
            assert host2.events[2].is_dm and host2.events[0].chat_name == "Family #general"
            asked = {cid: query for cid, query in fake.history_requests}
            assert asked[TEXT_CHANNEL]["after"] == saved[TEXT_CHANNEL] and THREAD not in asked
            await platform.user_says("live again")
            assert await _quiet(host2, 4, settle=0.1) == ["missed 1", "missed 2", "missed in the DM", "live again"]
        finally:
            await second.stop()
        saved = json.loads(_seen_file(tmp_path).read_text())["channels"]
        assert set(saved) == {TEXT_CHANNEL, DM_CHANNEL}  # the gone channel was dropped
        assert saved[TEXT_CHANNEL] == host2.events[3].message_id
    finally:
        await platform.stop()


@discord_only
async def test_discord_fresh_session_after_a_drop_catches_up(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    await running.platform.user_says("before the drop")
    await running.host.wait_events(1)
    fake.gateway_down = True
    await fake.drop(resumable=False)  # the session is gone: no RESUME replays what follows
    await running.platform.user_says("while the gateway was down")
    fake.gateway_down = False
    assert await _quiet(running.host, 2) == ["before the drop", "while the gateway was down"]
    assert fake.identifies == 2


async def test_discord_corrupt_seen_file_is_ignored_with_a_warning(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="nanoclaw.channels.discord")
    path = _seen_file(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"channels": {"11000000')
    platform = DiscordPlatform()
    env = await platform.start(tmp_path)
    try:
        channel = await _start_with(tmp_path, env)
        try:
            assert "channel.position_unreadable" in caplog.text
            await platform.user_says("hello")
            assert await _quiet(channel.host, 1, settle=0.1) == ["hello"]
        finally:
            await channel.stop()
        assert set(json.loads(path.read_text())["channels"]) == {TEXT_CHANNEL}  # rewritten whole
        assert not platform.fake.history_requests
    finally:
        await platform.stop()
