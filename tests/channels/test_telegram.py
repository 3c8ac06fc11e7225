"""Telegram specifics, against the real python-telegram-bot and the fake Bot API: webhook secret, mentions,
callback data, HTML splitting, files, errors, and starting while Telegram is unreachable."""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.channels.telegram import TelegramChannel, html_pieces
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, channel_on
from tests.channels.harness import RecordingHost
from tests.channels.platforms.telegram import TelegramPlatform
from tests.conftest import make_settings
from tests.fakes.telegram_server import BOT_USER, check_html

telegram = pytest.mark.parametrize("running", ["telegram"], indirect=True)
GROUP = TelegramPlatform.group_chat


def out(text: str, chat: str = GROUP, **kw: object) -> OutgoingMessage:
    return OutgoingMessage(route=Route("telegram", chat), kind=kw.pop("kind", "chat"), text=text,  # type: ignore[arg-type]
                           id=str(kw.pop("id", "o1")), **kw)  # type: ignore[arg-type]


@pytest.fixture
async def webhooked(tmp_path: Path) -> AsyncIterator[Running]:
    """The channel in webhook mode: Telegram (the fake) POSTs updates to the host's /hooks/telegram."""
    platform = TelegramPlatform()

    def webhook(env: dict[str, str]) -> None:
        env["TELEGRAM_WEBHOOK_URL"] = f"{platform.webhook_base}/telegram"

    async with channel_on(platform, tmp_path, edit_env=webhook) as r:
        yield r


async def test_telegram_webhook_requires_the_secret_token(webhooked: Running) -> None:
    fake = webhooked.platform.fake  # type: ignore[attr-defined]
    assert fake.webhook["url"].endswith("/hooks/telegram")
    assert len(fake.webhook["secret_token"]) >= 32 and fake.webhook["allowed_updates"] == ["message", "callback_query"]
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": fake.chats[int(GROUP)],
                                          "from": webhooked.platform.user(), "text": "forged"}}  # type: ignore[attr-defined]
    assert await fake.push_raw(update, secret=None) == 401
    assert await fake.push_raw(update, secret="not-the-secret") == 403
    await asyncio.sleep(0.1)
    assert webhooked.host.events == []
    await webhooked.platform.user_says("signed and delivered", mention=True)
    [event] = await webhooked.host.wait_events(1)
    assert event.text.endswith("signed and delivered") and event.mentions_assistant


async def test_telegram_webhook_ignores_malformed_updates(webhooked: Running) -> None:
    fake = webhooked.platform.fake  # type: ignore[attr-defined]
    assert await fake.push_raw(None, body=b"{not json") == 400
    assert await fake.push_raw({"message": {"text": "no update_id"}}) == 200  # 200: Telegram must not resend it
    assert await fake.push_raw({"update_id": 7, "message": "garbage"}) == 200
    assert await fake.push_raw([1, 2, 3]) == 200
    await asyncio.sleep(0.1)
    assert webhooked.host.events == []
    await webhooked.platform.user_says("still fine")
    [event] = await webhooked.host.wait_events(1)
    assert event.text == "still fine"


@telegram
async def test_telegram_mentions_replies_and_commands(running: Running) -> None:
    platform: TelegramPlatform = running.platform  # type: ignore[assignment]
    fake, alice = platform.fake, platform.user()
    group = int(GROUP)
    bot_msg = await running.channel.send(out("I am the bot"))
    await fake.user_message(group, alice, "plain words")
    await fake.user_message(group, alice, "hey @someone_else", entities=[{"type": "mention", "offset": 4, "length": 13}])
    await fake.user_message(group, alice, "Andy, look", entities=[{"type": "text_mention", "offset": 0, "length": 4,
                                                                   "user": BOT_USER}])
    await fake.user_message(group, alice, "answering you", reply_to=int(bot_msg.platform_message_id or 0))
    await fake.user_message(group, alice, "/status@andy_nanoclaw_bot now",
                            entities=[{"type": "bot_command", "offset": 0, "length": 25}])
    events = await running.host.wait_events(5)
    assert [e.mentions_assistant for e in events] == [False, False, True, True, True]
    assert events[0].sender_name == "Alice" and events[0].chat_name == "Family" and not events[0].is_dm
    assert events[0].payload == {"username": "u1_alice"}


@telegram
async def test_telegram_drops_its_own_messages_and_flags_other_bots(running: Running) -> None:
    platform: TelegramPlatform = running.platform  # type: ignore[assignment]
    await platform.fake.user_message(int(GROUP), BOT_USER, "my own echo")
    await platform.user_says("beep", sender="b1", sender_name="OtherBot", from_bot=True)
    anonymous_admin = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    await platform.fake.user_message(int(GROUP), anonymous_admin, "from an admin",
                                     sender_chat=platform.fake.chats[int(GROUP)])
    bot, admin = await running.host.wait_events(2)
    await asyncio.sleep(0.1)
    assert len(running.host.events) == 2
    assert bot.text == "beep" and bot.from_bot
    assert admin.text == "from an admin" and not admin.from_bot  # a person who hides behind the group's name


@telegram
async def test_telegram_long_card_id_fits_the_64_byte_callback_data(running: Running) -> None:
    card_id = "cred-0b5e3a8c-5d1f-4c47-9a8e-2f6f3e9d7c11-with-a-long-suffix"
    labels = ("Save the key", "Cancel")
    await running.channel.send(out("Paste it?", kind="question", title="Credential", buttons=labels, card_id=card_id))
    [msg] = await running.platform.wait_bot_messages(1)
    rows = msg.raw["reply_markup"]["inline_keyboard"]
    assert all(len(b["callback_data"].encode()) <= 64 for row in rows for b in row)
    assert msg.text.startswith("<b>Credential</b>") and msg.buttons == labels
    await running.platform.press(msg, "Cancel", sender="u2")
    [(answered_id, value, sender)] = await running.host.wait_answers(1)
    platform: TelegramPlatform = running.platform  # type: ignore[assignment]
    assert (answered_id, value, sender) == (card_id, "Cancel", str(platform.user("u2")["id"]))
    for _ in range(50):  # the press is acknowledged and the buttons go away
        if platform.fake.callback_answers and not (await platform.bot_messages())[0].buttons:
            break
        await asyncio.sleep(0.05)
    assert platform.fake.callback_answers and (await platform.bot_messages())[0].buttons == ()


@telegram
async def test_telegram_pieces_stay_under_4096_after_html_escaping(running: Running) -> None:
    text = " ".join(f"a<b>&{i}" for i in range(1500))  # each "<", ">" and "&" grows 4-5× when escaped
    await running.channel.send(out(text))
    sent = await running.platform.bot_messages()
    assert len(sent) >= 2
    assert all(len(m.text) <= 4096 and check_html(m.text) is None for m in sent)
    assert re.findall(r"&(\d+)", html.unescape(" ".join(m.text for m in sent))) == [str(i) for i in range(1500)]
    assert html_pieces("**bold** and `x < y`") == ["<b>bold</b> and <code>x &lt; y</code>"]


@telegram
async def test_telegram_photo_and_oversized_file(running: Running) -> None:
    platform: TelegramPlatform = running.platform  # type: ignore[assignment]
    photo = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    await platform.fake.user_message(int(GROUP), platform.user(), "look", photo=photo)
    await platform.fake.user_message(int(GROUP), platform.user(), "the video", document=("big.mp4", b"x"),
                                     document_size=30 * 2**20)
    first, second = await running.host.wait_events(2)
    [image] = first.files
    assert image.data == photo and image.mime_type == "image/jpeg" and image.name.endswith(".jpg")
    assert second.files == () and "big.mp4" in second.text and "20 MB" in second.text
    assert [m for m, _ in platform.fake.calls].count("getFile") == 1  # the oversized one was never requested


@telegram
async def test_telegram_send_errors_are_transient_or_permanent(running: Running) -> None:
    fake = running.platform.fake  # type: ignore[attr-defined]
    with pytest.raises(DestinationRefused, match="(?i)chat not found"):
        await running.channel.send(out("hello", chat="-100999"))
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    with pytest.raises(ChannelUnavailable):
        await running.channel.send(out("hello"))
    fake.fail_next("sendMessage", 403, "Forbidden: bot was kicked from the supergroup chat")
    with pytest.raises(DestinationRefused, match="kicked"):
        await running.channel.send(out("hello"))
    with pytest.raises(DestinationRefused):
        await running.channel.react(Route("telegram", GROUP), "not-a-number", "👍")


@telegram
async def test_telegram_retry_resumes_after_the_pieces_that_went_out(running: Running) -> None:
    """A long message fails at its second piece; the host's retry sends the rest, not the first piece again."""
    text = " ".join(f"w{i}" for i in range(2000))  # three pieces
    running.platform.fake.fail_next("sendMessage", 502, "Bad Gateway", after=1)  # type: ignore[attr-defined]
    with pytest.raises(ChannelUnavailable):
        await running.channel.send(out(text, id="long"))
    assert len(await running.platform.bot_messages()) == 1
    result = await running.channel.send(out(text, id="long"))
    sent = await running.platform.bot_messages()
    assert len(sent) == 3 and result.platform_message_id == sent[-1].id
    assert re.findall(r"w\d+", " ".join(m.text for m in sent)) == [f"w{i}" for i in range(2000)]


async def test_telegram_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN.*BotFather"):
        await TelegramChannel(RecordingHost(make_settings(tmp_path / "h1", extra={"TELEGRAM_API_BASE": "x"}))).start()
    platform = TelegramPlatform()
    env = await platform.start(tmp_path)
    try:
        wrong = "7000000001:AAWrongTokenWrongTokenWrongToken12345"
        channel = TelegramChannel(RecordingHost(make_settings(tmp_path / "h2", extra={**env, "TELEGRAM_BOT_TOKEN": wrong})))
        with pytest.raises(ConfigError) as info:
            await channel.start()
        assert wrong not in str(info.value) and "rejected" in str(info.value)
        await channel.stop()
    finally:
        await platform.stop()


async def test_telegram_starts_while_offline_and_connects_later(tmp_path: Path) -> None:
    platform = TelegramPlatform()
    env = await platform.start(tmp_path)
    platform.fake.down = True
    host = RecordingHost(make_settings(tmp_path / "home", extra=env))
    channel = TelegramChannel(host)
    try:
        await channel.start()  # does not fail: the host keeps the channel and it connects when Telegram is back
        await asyncio.sleep(0.2)
        platform.fake.down = False
        await platform.user_says("back online")
        [event] = await host.wait_events(1, timeout=10)
        assert event.text == "back online" and host.ready == ["telegram"]
    finally:
        await channel.stop()
        await platform.stop()


async def test_telegram_typing_is_renewed_until_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nanoclaw.channels.telegram.TYPING_REFRESH", 0.05)
    platform = TelegramPlatform()
    env = await platform.start(tmp_path)
    channel = TelegramChannel(RecordingHost(make_settings(tmp_path / "home", extra=env)))
    try:
        await channel.start()
        await channel.set_typing(Route("telegram", GROUP), True)
        deadline = asyncio.get_running_loop().time() + 10
        while len(platform.fake.actions) < 3:  # the first action and two renewals
            assert asyncio.get_running_loop().time() < deadline, platform.fake.actions
            await asyncio.sleep(0.01)
        renewing = channel._typing[GROUP]  # type: ignore[attr-defined]
        await channel.set_typing(Route("telegram", GROUP), False)
        count = len(platform.fake.actions)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(renewing, 5)  # cancelled: nothing can send another action
        assert len(platform.fake.actions) == count and GROUP not in channel._typing  # type: ignore[attr-defined]
    finally:
        await channel.stop()
        await platform.stop()


async def test_telegram_file_with_a_long_text_sends_the_text_first(tmp_path: Path) -> None:
    platform = TelegramPlatform()
    env = await platform.start(tmp_path)
    channel = TelegramChannel(RecordingHost(make_settings(tmp_path / "home", extra=env)))
    try:
        await channel.start()
        result = await channel.send(out("x " * 800, kind="file", file=FileAttachment("notes.txt", b"hello")))
        first, doc = platform.fake.sent
        assert first.file_name is None and doc.file_name == "notes.txt" and doc.file_data == b"hello"
        assert result.platform_message_id == doc.id and not doc.text  # 1600 characters: too long for a caption
    finally:
        await channel.stop()
        await platform.stop()
