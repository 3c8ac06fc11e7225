"""Teams specifics: the Bot Framework token check (logged refusals, serviceurl binding), mentions, threads by
conversation type, files people share, the bot's own token, remembered service URLs. The real channel talks to
the fake Teams in tests/fakes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from nanoclaw.channels.base import FileAttachment, OutgoingMessage
from nanoclaw.channels.teams import TeamsChannel
from nanoclaw.errors import ChannelUnavailable, ConfigError
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, channel_on
from tests.channels.harness import RecordingHost
from tests.channels.platforms.teams import CHANNEL, DM, TeamsPlatform
from tests.conftest import make_settings
from tests.fakes.teams_server import shared_key

teams = pytest.mark.parametrize("running", ["teams"], indirect=True)


def fake(r: Running) -> TeamsPlatform:
    assert isinstance(r.platform, TeamsPlatform)
    return r.platform


@teams
async def test_teams_forged_expired_and_redirected_tokens_are_refused_and_logged(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    p = fake(running)
    activity = p.activity("let me in")
    for token in (p.fake.token(key=shared_key("forger")), p.fake.token(age=3600 + 400),
                  p.fake.token(audience="someone-else"), p.fake.token(service_url="https://attacker.example/")):
        assert (await p.deliver(activity, token=token))[0] == 401
    # A valid token, but the activity names another serviceUrl: the bot's token would go there.
    redirected = {**activity, "serviceUrl": "https://attacker.example/"}
    assert (await p.deliver(redirected))[0] == 401
    assert caplog.text.count("teams.webhook_rejected") == 5
    await asyncio.sleep(0.1)
    assert running.host.events == []
    assert (await p.deliver(activity))[0] == 202
    [event] = await running.host.wait_events(1)
    assert event.text == "let me in"


@teams
async def test_teams_mentions_become_names_and_threads_follow_the_conversation_type(running: Running) -> None:
    p = fake(running)
    post = await p.user_says("what time is it?", mention=True)
    await p.user_says("in the thread", thread=post)
    await p.user_says("privately", dm=True)
    await p.user_says("in a group chat", chat="19:groupchat0001@thread.v2")
    new_post, reply, private, group = await running.host.wait_events(4)
    assert new_post.text == "@Andy what time is it?" and new_post.mentions_assistant
    assert new_post.platform_id == CHANNEL and new_post.thread_id == post  # a new post starts its thread
    assert reply.thread_id == post
    assert private.is_dm and private.thread_id is None and private.platform_id == DM
    assert group.thread_id is None and not group.is_dm


@teams
async def test_teams_shared_file_is_downloaded(running: Running) -> None:
    await fake(running).user_says("the report", file=("report.xlsx", b"PK\x03\x04 fake"))
    [event] = await running.host.wait_events(1)
    assert [(f.name, f.data) for f in event.files] == [("report.xlsx", b"PK\x03\x04 fake")]


@teams
async def test_teams_bot_token_is_fetched_once_and_a_file_is_named(running: Running) -> None:
    p = fake(running)
    for i in range(3):
        await running.channel.send(OutgoingMessage(Route("teams", DM), "chat", f"n{i}", f"o{i}"))
    assert [m for m in p.fake.requests if m == ("POST", "/token")] == [("POST", "/token")]
    await running.channel.send(OutgoingMessage(Route("teams", DM), "file", None, "o9",
                                               file=FileAttachment("chart.png", b"\x89PNG")))
    sent = await p.wait_bot_messages(4)
    assert "chart.png" in sent[-1].text


@teams
async def test_teams_service_url_of_a_conversation_is_remembered(running: Running) -> None:
    p = fake(running)
    await p.user_says("hi", dm=True)
    await running.host.wait_events(1)
    saved = json.loads((running.host.settings.state_dir / "teams-conversations.json").read_text())
    assert saved[DM] == {"service_url": p.fake.service_url, "type": "personal"}


async def test_teams_wrong_secret_is_retried_not_dropped(tmp_path: Path) -> None:
    platform = TeamsPlatform()
    async with channel_on(platform, tmp_path, edit_env=lambda e: e.update(TEAMS_APP_PASSWORD="wrong")) as r:
        with pytest.raises(ChannelUnavailable, match="TEAMS_APP_PASSWORD"):
            await r.channel.send(OutgoingMessage(Route("teams", DM), "chat", "hello", "o1"))


async def test_teams_missing_settings_name_the_variable(tmp_path: Path) -> None:
    for env in ({"TEAMS_APP_ID": "x"}, {"TEAMS_APP_PASSWORD": "y"}):
        with pytest.raises(ConfigError, match="TEAMS_APP_ID and TEAMS_APP_PASSWORD"):
            await TeamsChannel(RecordingHost(make_settings(tmp_path / "home", extra=env))).start()
