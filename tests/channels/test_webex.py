"""Webex specifics: webhook signatures and replays, webhook registration, own and bots' messages, cards with
the credential input, catching up after a restart. The real channel talks to the fake Webex in tests/fakes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.channels.webex import WebexChannel
from nanoclaw.errors import ConfigError
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, channel_on
from tests.channels.harness import RecordingHost
from tests.channels.platforms.webex import GROUP, SECRET, WebexPlatform
from tests.conftest import make_settings
from tests.fakes.webex_server import now_iso

webex = pytest.mark.parametrize("running", ["webex"], indirect=True)


def fake(r: Running) -> WebexPlatform:
    assert isinstance(r.platform, WebexPlatform)
    return r.platform


@webex
async def test_webex_wrong_signature_and_old_notifications_are_refused_and_logged(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    p = fake(running)
    person = p.fake.person("mallory", "Mallory")
    message = p.fake.add(GROUP, person, "let me in").data
    note = p.fake.notification("messages", {"id": message["id"], "roomId": GROUP, "personId": person.id,
                                            "created": message["created"]})
    assert await p.deliver(note, secret="guessed") == 401
    assert await p.deliver(note, secret=None) == 401
    assert await p.deliver(p.fake.notification("messages", {**note["data"], "created": now_iso(-600)})) == 401
    assert caplog.text.count("webex.webhook_rejected") == 3
    await asyncio.sleep(0.1)
    assert running.host.events == []
    assert await p.deliver(note) == 200
    [event] = await running.host.wait_events(1)
    assert event.text == "let me in" and event.sender_name == "Mallory" and event.chat_name == "Project Unicorn"


@webex
async def test_webex_registers_its_webhooks_with_its_secret_once(running: Running, tmp_path: Path) -> None:
    p = fake(running)
    hooks = sorted((h["resource"], h["event"], h["targetUrl"], h["secret"]) for h in p.fake.webhooks.values())
    assert hooks == [("attachmentActions", "created", p.hook_url, SECRET), ("messages", "created", p.hook_url, SECRET)]
    await running.channel.stop()
    await running.channel.start()  # a restart updates them in place
    assert len(p.fake.webhooks) == 2


@webex
async def test_webex_own_messages_are_not_read_and_bots_are_flagged(running: Running) -> None:
    p = fake(running)
    await running.channel.send(OutgoingMessage(Route("webex", GROUP), "chat", "mine", "o1"))
    await p.wait_bot_messages(1)
    await p.user_says("beep", sender="otherbot", sender_name="Other", from_bot=True)
    [event] = await running.host.wait_events(1)
    assert event.from_bot and event.text == "beep"
    reads = [path for method, path in p.fake.requests if method == "GET" and path.startswith("/v1/messages/")]
    assert len(reads) == 1  # the bot's own message was never read back


@webex
async def test_webex_thread_and_files_both_ways(running: Running) -> None:
    p = fake(running)
    await p.user_says("here", thread=p.thread_root, file=("notes.txt", b"line 1\n"))
    [event] = await running.host.wait_events(1)
    assert event.thread_id == p.thread_root and [(f.name, f.data) for f in event.files] == [("notes.txt", b"line 1\n")]


@webex
async def test_webex_credential_card_value_goes_to_the_vault_and_the_card_is_deleted(running: Running) -> None:
    p = fake(running)
    card = OutgoingMessage(Route("webex", GROUP, p.thread_root), "card", "Need the weather key.", "o1",
                           payload={"credential": {"token": "tok-1", "name": "weather", "host": "api.weather.test"}},
                           title="Credential needed")
    await running.channel.send(card)
    [msg] = await p.wait_bot_messages(1)
    await p.submit_modal(msg, "sk-webex-canary")
    assert await running.host.wait_credentials(1) == [("tok-1", "sk-webex-canary")]
    assert p.fake.messages[msg.id].data.get("deleted")
    notes = await p.wait_bot_messages(2)
    assert notes[-1].thread == p.thread_root and "vault" in notes[-1].text
    assert all("sk-webex-canary" not in m.text for m in notes)


async def test_webex_messages_written_while_down_are_read_back_once_oldest_first(tmp_path: Path) -> None:
    platform = WebexPlatform()
    env = await platform.start(tmp_path)

    def hook(e: dict[str, str]) -> None:  # each start serves on a new port: the channel re-points its webhooks
        e["WEBEX_WEBHOOK_URL"] = platform.hook_url

    try:
        async with channel_on(platform, tmp_path, env=env, edit_env=hook) as r:
            await platform.user_says("seen live", mention=True)
            await r.host.wait_events(1)
        alice = platform.fake.person("u1", "Alice")
        platform.fake.add(GROUP, alice, "first while down", mention=True)
        platform.fake.add(GROUP, alice, "not for the bot")  # a bot lists group rooms by its mentions only
        platform.fake.add(GROUP, alice, "second while down", mention=True)
        async with channel_on(platform, tmp_path, env=env, edit_env=hook) as r:
            await r.host.wait_events(2)
            await asyncio.sleep(0.3)
            assert [e.text for e in r.host.events] == ["first while down", "second while down"]
        async with channel_on(platform, tmp_path, env=env, edit_env=hook) as r:
            await asyncio.sleep(0.5)
            assert r.host.events == []
    finally:
        await platform.stop()


async def test_webex_missing_settings_name_the_variable(tmp_path: Path) -> None:
    for env, variable in (({"WEBEX_WEBHOOK_SECRET": "s"}, "WEBEX_BOT_TOKEN"), ({"WEBEX_BOT_TOKEN": "t"},
                                                                                 "WEBEX_WEBHOOK_SECRET")):
        with pytest.raises(ConfigError, match=variable):
            await WebexChannel(RecordingHost(make_settings(tmp_path / "home", extra=env))).start()
