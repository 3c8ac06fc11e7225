"""WhatsApp-specific behaviour: webhook verification, Cloud API shapes and limits, errors, reconnect, media."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.channels.whatsapp import WhatsAppChannel
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running
from tests.channels.harness import RecordingHost
from tests.channels.platforms.whatsapp import WhatsAppPlatform
from tests.conftest import make_settings

whatsapp = pytest.mark.parametrize("running", ["whatsapp"], indirect=True)
CHAT = WhatsAppPlatform.group_chat
ROUTE = Route("whatsapp", CHAT)


def platform(r: Running) -> WhatsAppPlatform:
    assert isinstance(r.platform, WhatsAppPlatform)
    return r.platform


def card(buttons: tuple[str, ...], text: str = "Pick one") -> OutgoingMessage:
    return OutgoingMessage(route=ROUTE, kind="question", text=text, id="c1", title="Choice", buttons=buttons,
                           card_id="q-abc12345")


@whatsapp
async def test_whatsapp_subscription_check_echoes_the_challenge_only_for_the_verify_token(running: Running) -> None:
    p = platform(running)
    async with aiohttp.ClientSession() as session:
        good = {"hub.mode": "subscribe", "hub.verify_token": p.fake.verify_token, "hub.challenge": "1158201444"}
        async with session.get(p.hook, params=good) as response:
            assert (response.status, await response.text()) == (200, "1158201444")
        for bad in ({**good, "hub.verify_token": "guess"}, {**good, "hub.mode": "unsubscribe"}, {}):
            async with session.get(p.hook, params=bad) as response:
                assert response.status == 403
                assert "1158201444" not in await response.text()


@whatsapp
async def test_whatsapp_signature_must_match_the_exact_body(running: Running) -> None:
    p = platform(running)
    _, payload = p.fake.message(CHAT, "Mallory", "text", {"body": "forged"})
    signed_other = p.fake.sign(b'{"entry": []}')  # a valid signature of a different body (tampering)
    assert await p.post(payload, signature=signed_other) == 403
    assert await p.post(payload, signature=None) == 401
    assert await p.post(payload, signature="sha256=" + "é" * 64) == 403
    await asyncio.sleep(0.1)
    assert running.host.events == []


@whatsapp
async def test_whatsapp_statuses_echoes_and_other_numbers_never_reach_the_host(running: Running) -> None:
    p = platform(running)
    status = {"id": "wamid.x", "status": "delivered", "timestamp": "1700000000", "recipient_id": CHAT}
    assert await p.post(p.fake.webhook({"statuses": [status]})) == 200
    _, other = p.fake.message(CHAT, "Alice", "text", {"body": "for another number"})
    other["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999999999999999"
    assert await p.post(other) == 200
    await p.user_says("echo of ours", from_bot=True)
    await p.user_says("for us", sender_name="Alice")
    [event] = await running.host.wait_events(1)
    await asyncio.sleep(0.1)
    assert len(running.host.events) == 1
    assert (event.text, event.sender_id, event.sender_name, event.is_dm) == ("for us", CHAT, "Alice", True)
    assert event.message_id.startswith("wamid.")


@whatsapp
async def test_whatsapp_typing_marks_the_persons_message_read(running: Running) -> None:
    p = platform(running)
    await running.channel.set_typing(ROUTE, True)  # nothing to answer yet: no indicator, no error
    assert p.fake.typing == []
    message_id = await p.user_says("are you there?")
    await running.host.wait_events(1)
    await running.channel.set_typing(ROUTE, True)
    assert p.fake.typing == [message_id]
    assert await p.typing_seen(CHAT)


@whatsapp
async def test_whatsapp_reply_buttons_clip_titles_and_answer_with_the_full_label(running: Running) -> None:
    p = platform(running)
    long = "Deploy to production now"  # 24 characters: over the 20 of a reply button
    await running.channel.send(card(("Yes", long)))
    [msg] = await p.wait_bot_messages(1)
    assert msg.raw["interactive"]["type"] == "button"
    assert msg.buttons == ("Yes", "Deploy to productio…")
    assert msg.raw["interactive"]["header"]["text"] == "Choice"
    await p.press(msg, "Deploy to productio…")
    assert await running.host.wait_answers(1) == [("q-abc12345", long, CHAT)]


@whatsapp
async def test_whatsapp_four_to_ten_buttons_become_a_list(running: Running) -> None:
    p = platform(running)
    labels = tuple(f"Option number {i} with detail" for i in range(1, 6))
    await running.channel.send(card(labels))
    [msg] = await p.wait_bot_messages(1)
    assert msg.raw["interactive"]["type"] == "list"
    assert all(len(b) <= 24 for b in msg.buttons) and len(msg.buttons) == 5
    await p.press(msg, msg.buttons[3])
    assert await running.host.wait_answers(1) == [("q-abc12345", labels[3], CHAT)]


@whatsapp
async def test_whatsapp_cards_that_do_not_fit_are_numbered_text(running: Running) -> None:
    p = platform(running)
    await running.channel.send(card(tuple(f"o{i}" for i in range(11)), text="Which **one**?"))
    await running.channel.send(card(("Yes", "No"), text="x" * 1100))  # body over the 1024 of reply buttons
    first, *rest = await p.wait_bot_messages(2)
    assert first.buttons == () and "*Choice*" in first.text and "*one*" in first.text and "11) o10" in first.text
    assert rest and rest[0].buttons == () and "2) No" in rest[-1].text


@whatsapp
async def test_whatsapp_errors_map_to_refused_or_unavailable(running: Running) -> None:
    p = platform(running)
    out = OutgoingMessage(route=ROUTE, kind="chat", text="hello", id="o1")
    p.fake.window_closed.add(CHAT)
    with pytest.raises(DestinationRefused, match="131047.*24 hours"):
        await running.channel.send(out)
    p.fake.window_closed.clear()
    for status, code in ((400, 130429), (429, 4), (401, 190)):  # throughput limit, app rate limit, token
        p.fake.next_error = (status, code, "try later")
        with pytest.raises(ChannelUnavailable):
            await running.channel.send(out)
    assert await p.bot_messages() == []


@whatsapp
async def test_whatsapp_reconnects_with_backoff_and_tells_the_host(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    p = platform(running)
    out = OutgoingMessage(route=ROUTE, kind="chat", text="hello", id="o1")
    await running.channel.send(out)  # a pooled keep-alive connection now exists
    await p.fake.restart()  # ... and is closed by the server: the next send still goes out
    await running.channel.send(out)
    assert len(await p.bot_messages()) == 2
    caplog.set_level(logging.INFO, logger="nanoclaw.channels.whatsapp")
    await p.fake.stop()  # connections refused
    with pytest.raises(ChannelUnavailable):
        await running.channel.send(out)
    deadline = asyncio.get_running_loop().time() + 15
    while sum(r.getMessage().startswith("channel.reconnect ") for r in caplog.records) < 2:  # both refused
        assert asyncio.get_running_loop().time() < deadline, "no second reconnect probe within 15 s"
        await asyncio.sleep(0.05)
    assert running.host.ready == []
    await p.fake.start()
    deadline = asyncio.get_running_loop().time() + 15
    while not running.host.ready:
        assert asyncio.get_running_loop().time() < deadline, "the host was not told within 15 s"
        await asyncio.sleep(0.05)
    assert running.host.ready == ["whatsapp"]
    delays = [r.getMessage() for r in caplog.records if r.getMessage().startswith("channel.reconnect ")]
    assert "delay=0.5" in delays[0] and "delay=1.0" in delays[1]
    await running.channel.send(out)


@whatsapp
async def test_whatsapp_images_in_and_out(running: Running) -> None:
    p = platform(running)
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg"
    media_id = p.fake.upload_from_person("ignored", jpeg, "image/jpeg")
    _, payload = p.fake.message(CHAT, "Alice", "image", {"id": media_id, "mime_type": "image/jpeg", "sha256": ""})
    assert await p.post(payload) == 200
    [event] = await running.host.wait_events(1)
    assert [(f.name, f.data, f.mime_type) for f in event.files] == [("image.jpg", jpeg, "image/jpeg")]
    png = b"\x89PNG\r\n\x1a\nfake"
    await running.channel.send(OutgoingMessage(route=ROUTE, kind="file", text="a **chart**", id="f1",
                                               file=FileAttachment("chart.png", png, "image/png")))
    [msg] = await p.wait_bot_messages(1)
    assert msg.raw["type"] == "image" and msg.file_data == png and msg.text == "a *chart*"


@whatsapp
async def test_whatsapp_files_over_50_mb_are_skipped_with_a_note(running: Running) -> None:
    p = platform(running)
    media_id = p.fake.upload_from_person("huge.zip", b"\0" * (50 * 2**20 + 1), "application/zip")
    content = {"id": media_id, "filename": "huge.zip", "mime_type": "application/zip", "caption": "the dump"}
    _, payload = p.fake.message(CHAT, "Alice", "document", content)
    assert await p.post(payload) == 200
    [event] = await running.host.wait_events(1)
    assert event.files == ()
    assert "the dump" in event.text and "huge.zip" in event.text and "50 MB" in event.text
    assert ("GET", f"/download/{media_id}") not in p.fake.requests  # the size was checked before downloading


async def test_whatsapp_missing_setting_names_the_variable(tmp_path: Path) -> None:
    host = RecordingHost(make_settings(tmp_path, extra={"WHATSAPP_ACCESS_TOKEN": "t", "WHATSAPP_PHONE_NUMBER_ID": "1"}))
    with pytest.raises(ConfigError, match="WHATSAPP_APP_SECRET.*App secret"):
        await WhatsAppChannel(host).start()
