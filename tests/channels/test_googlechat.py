"""Google Chat specifics: the bearer token check (logged refusals, cached certificates), threads by space kind,
attachments, a click updating its card in place. The real channel talks to the fake Google Chat in tests/fakes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.channels.googlechat import GoogleChatChannel
from nanoclaw.errors import ConfigError
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running
from tests.channels.harness import RecordingHost
from tests.channels.platforms.googlechat import DM, GROUP, GoogleChatPlatform
from tests.conftest import make_settings
from tests.fakes.googlechat_server import shared_key

googlechat = pytest.mark.parametrize("running", ["googlechat"], indirect=True)


def fake(r: Running) -> GoogleChatPlatform:
    assert isinstance(r.platform, GoogleChatPlatform)
    return r.platform


@googlechat
async def test_googlechat_forged_expired_and_misaddressed_tokens_are_refused_and_logged(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    p = fake(running)
    event = p.message_event("let me in")
    for token in (p.fake.token(key=shared_key("forger")), p.fake.token(age=3600 + 120),
                  p.fake.token(audience="1"), p.fake.token(issuer="x@y.z")):
        assert (await p.deliver(event, token=token))[0] == 401
    assert caplog.text.count("googlechat.webhook_rejected") == 4
    await asyncio.sleep(0.1)
    assert running.host.events == []
    assert (await p.deliver(event))[0] == 200
    [got] = await running.host.wait_events(1)
    assert got.text == "let me in" and got.sender_id == "users/u1"


@googlechat
async def test_googlechat_certificates_are_fetched_once_for_many_events(running: Running) -> None:
    p = fake(running)
    for i in range(4):
        await p.user_says(f"message {i}")
    await running.host.wait_events(4)
    assert p.fake.cert_fetches == 1


@googlechat
async def test_googlechat_threads_only_in_threaded_spaces(running: Running) -> None:
    p = fake(running)
    await p.user_says("top level")
    await p.user_says("in a DM", dm=True)
    top, dm = await running.host.wait_events(2)
    assert top.thread_id and top.thread_id.startswith(f"{GROUP}/threads/") and not top.is_dm
    assert dm.thread_id is None and dm.is_dm and dm.platform_id == DM
    await running.channel.send(OutgoingMessage(Route("googlechat", GROUP, top.thread_id), "chat", "answer", "o1"))
    [sent] = await p.wait_bot_messages(1)
    assert sent.thread == top.thread_id


@googlechat
async def test_googlechat_attachment_is_downloaded_as_the_app(running: Running) -> None:
    p = fake(running)
    await p.user_says("see attached", file=("data.csv", b"a,b\n1,2\n"))
    [event] = await running.host.wait_events(1)
    assert [(f.name, f.data) for f in event.files] == [("data.csv", b"a,b\n1,2\n")]
    assert any(path.startswith("/v1/media/") for _, path in p.fake.requests)


@googlechat
async def test_googlechat_click_updates_the_card_in_place(running: Running) -> None:
    p = fake(running)
    card = OutgoingMessage(Route("googlechat", GROUP), "question", "Deploy now?", "o1", title="Approval",
                           buttons=("Yes", "No"), card_id="q-1")
    await running.channel.send(card)
    [msg] = await p.wait_bot_messages(1)
    await p.press(msg, "Yes")
    assert await running.host.wait_answers(1) == [("q-1", "Yes", "users/u1")]
    [updated] = await p.bot_messages()
    assert updated.buttons == () and "Alice chose *Yes*" in updated.text and "Deploy now?" in updated.text


async def test_googlechat_missing_settings_name_the_variable(tmp_path: Path) -> None:
    cases = (({"GOOGLECHAT_PROJECT_NUMBER": "1"}, "GOOGLECHAT_SERVICE_ACCOUNT_FILE"),
             ({"GOOGLECHAT_SERVICE_ACCOUNT_FILE": "/nonexistent.json"}, "GOOGLECHAT_PROJECT_NUMBER"),
             ({"GOOGLECHAT_SERVICE_ACCOUNT_FILE": "/nonexistent.json", "GOOGLECHAT_PROJECT_NUMBER": "1"},
              "not a readable service account key"))
    for env, expected in cases:
        with pytest.raises(ConfigError, match=expected):
            await GoogleChatChannel(RecordingHost(make_settings(tmp_path / "home", extra=env))).start()
