"""Linear specifics: webhook signatures and the replay window, issues and comment threads as sessions, mentions,
files only from Linear's storage, GraphQL errors, catching up after a restart, starting without Linear.
The real channel (gql) talks to the fake Linear in tests/fakes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from nanoclaw.channels.base import IngestResult, OutgoingMessage
from nanoclaw.channels.linear import LinearChannel
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, channel_on
from tests.channels.harness import RecordingHost
from tests.channels.platforms.linear import ISSUE, SECRET, TEAM, THREAD, LinearPlatform
from tests.conftest import make_settings
from tests.fakes.linear_server import encode, sign

linear = pytest.mark.parametrize("running", ["linear"], indirect=True)


def msg(text: str, thread: str | None = ISSUE, id: str = "o1") -> OutgoingMessage:
    return OutgoingMessage(route=Route("linear", TEAM, thread), kind="chat", text=text, id=id)


def fake(r: Running) -> LinearPlatform:
    assert isinstance(r.platform, LinearPlatform)
    return r.platform


@linear
async def test_linear_webhook_signature_and_replay_window_are_enforced(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    p = fake(running)
    p.fake.add_user("mallory", "Mallory")
    payload = p.fake.comment_event(p.fake.add_comment(ISSUE, "let me in", "mallory"))
    caplog.set_level(logging.WARNING)
    assert await p.deliver(payload, secret=None) == 401
    assert await p.deliver(payload, secret="guessed") == 401
    assert await p.deliver(payload, signature="0" * 64) == 401
    for age in (61.0, -61.0, 3600.0):  # older than a minute, from the future, an hour-old capture
        stale = p.fake.envelope("Comment", payload["data"], payload["actor"], age=age)
        assert await p.deliver(stale) == 401
    tampered = encode(payload).replace(b"let me in", b"let me out")
    assert await p.deliver(tampered, signature=sign(SECRET, encode(payload))) == 401
    await asyncio.sleep(0.1)
    assert running.host.events == []
    assert caplog.text.count("linear.webhook_rejected") == 7
    assert "replay window" in caplog.text and "bad or missing signature" in caplog.text
    assert await p.deliver(payload) == 200
    [event] = await running.host.wait_events(1)
    assert (event.text, event.sender_id, event.sender_name) == ("let me in", "mallory", "Mallory")


@linear
async def test_linear_unhandled_events_are_acknowledged_and_ignored(running: Running) -> None:
    p = fake(running)
    comment = p.fake.add_comment(ISSUE, "edited text", "u1")
    update = p.fake.comment_event(comment) | {"action": "update"}
    project = p.fake.envelope("Project", {"id": "p1", "name": "Roadmap"}, {"id": "u1", "type": "user"})
    assert await p.deliver(update) == 200
    assert await p.deliver(project, kind="Project") == 200
    await asyncio.sleep(0.1)
    assert running.host.events == []


@linear
async def test_linear_mention_of_the_bot_is_rewritten(running: Running) -> None:
    p = fake(running)
    await p.user_says("@ANDY, please look", thread=THREAD)
    await p.user_says("[@Andy Bot](https://linear.app/acme/profiles/andy) can you check?")
    await p.user_says("mail me at me@andy or ping @andy-2")
    first, second, third = await running.host.wait_events(3)
    assert first.mentions_assistant and first.text == "@Andy, please look" and first.thread_id == THREAD
    assert second.mentions_assistant and second.text == "@Andy can you check?"
    assert not third.mentions_assistant and third.text == "mail me at me@andy or ping @andy-2"


@linear
async def test_linear_issues_and_comment_threads_map_to_sessions(running: Running) -> None:
    p = fake(running)
    p.fake.add_user("alice", "Alice")
    issue = p.fake.add_issue(TEAM, "Export fails", "@andy what happened?")
    assert await p.deliver(p.fake.issue_event(issue, "alice"), kind="Issue") == 200
    root = p.fake.add_comment(THREAD, "first thoughts", "alice")
    reply = p.fake.add_comment(THREAD, "and a follow-up in the thread", "alice", parent=root.id)
    assert await p.deliver(p.fake.comment_event(reply)) == 200
    opened, replied = await running.host.wait_events(2)
    assert (opened.message_id, opened.thread_id, opened.platform_id) == (f"issue-{issue['id']}", issue["id"], TEAM)
    assert opened.text == "Export fails\n\n@Andy what happened?" and opened.mentions_assistant
    assert opened.chat_name == "Engineering" and opened.payload["issue"] == issue["identifier"]
    assert (replied.message_id, replied.thread_id) == (reply.id, THREAD) and not replied.is_dm
    # The answer goes into the comment thread the person wrote in (Linear nests one level: under the root).
    await running.channel.send(msg("answer in the thread", thread=THREAD))
    await running.channel.send(msg("answer on the new issue", thread=issue["id"], id="o2"))
    in_thread, on_issue = await p.wait_bot_messages(2)
    assert in_thread.raw == {"issueId": THREAD, "body": "answer in the thread", "parentId": root.id}
    assert on_issue.thread == issue["id"] and "parentId" not in on_issue.raw
    await running.channel.react(Route("linear", TEAM, issue["id"]), opened.message_id, "👀")
    assert p.fake.issues[issue["id"]]["reactions"] == ["👀"]


@linear
async def test_linear_own_comments_are_dropped_and_integrations_are_bots(running: Running) -> None:
    p = fake(running)
    own = p.fake.add_comment(ISSUE, "my own answer", p.fake.bot["id"])
    assert await p.deliver(p.fake.comment_event(own)) == 200
    p.fake.add_user("zap", "Zapier")
    integration = p.fake.add_comment(ISSUE, "synced from Zendesk", "zap", bot=True)
    assert await p.deliver(p.fake.comment_event(integration)) == 200
    [event] = await running.host.wait_events(1)
    await asyncio.sleep(0.1)
    assert len(running.host.events) == 1 and event.from_bot and event.text == "synced from Zendesk"


@linear
async def test_linear_send_without_an_issue_opens_one_and_edits_it(running: Running) -> None:
    p = fake(running)
    report = await running.channel.send(msg("## Weekly report\n\nall **green**", thread=None))
    [sent] = await p.bot_messages(TEAM)
    assert report.platform_message_id == sent.id and sent.id.startswith("issue-")
    assert sent.raw["title"] == "Weekly report" and sent.raw["teamId"] == TEAM
    await running.channel.edit(Route("linear", TEAM), sent.id, "all **red**")
    reply = await running.channel.send(msg("a comment", thread=sent.thread, id="o2"))
    await running.channel.edit(Route("linear", TEAM, sent.thread), reply.platform_message_id or "", "an edited comment")
    sent, comment = await p.bot_messages(TEAM)
    assert sent.edits == ["all **red**"] and comment.edits == ["an edited comment"]
    with pytest.raises(DestinationRefused, match="Entity not found"):
        await running.channel.send(msg("nobody home", thread="00000000-0000-4000-8000-000000000000"))
    with pytest.raises(DestinationRefused, match="Entity not found: Team"):
        await running.channel.send(OutgoingMessage(Route("linear", "no-such-team"), "chat", "x", "o3"))


@linear
async def test_linear_rate_limit_and_outage_are_transient_and_recovery_tells_the_host(running: Running) -> None:
    p = fake(running)
    p.fake.rate_limited = True
    with pytest.raises(ChannelUnavailable, match="RATELIMITED"):
        await running.channel.send(msg("later"))
    p.fake.rate_limited = False
    assert running.host.ready == []
    await running.channel.send(msg("now"))
    assert running.host.ready == ["linear"]
    await p.drop_connections()  # the API server restarts between two sends
    await running.channel.send(msg("after a restart", id="o2"))
    assert [m.text for m in await p.bot_messages()] == ["now", "after a restart"]


@linear
async def test_linear_files_are_fetched_only_from_linear_storage_with_the_key(running: Running) -> None:
    p = fake(running)
    elsewhere = f"{p.fake.base_url}/elsewhere/steal.txt"
    await p.user_says(f"two files: [notes.txt]({elsewhere}) and", file=("log.txt", b"line 1\n"))
    [event] = await running.host.wait_events(1)
    assert [(f.name, f.data) for f in event.files] == [("log.txt", b"line 1\n")]
    assert ("GET", "/elsewhere/steal.txt") not in p.fake.requests  # the key never goes to another address
    missing = f"{p.fake.uploads_url}/acme/gone/gone"
    await p.user_says(f"![screenshot.png]({missing})")
    _, second = await running.host.wait_events(2)
    assert second.files == () and "[screenshot.png could not be downloaded]" in second.text


@linear
async def test_linear_rejected_message_is_answered_on_the_issue(running: Running) -> None:
    running.host.accept = lambda e: IngestResult(False, error="You may not talk to this assistant here.")
    p = fake(running)
    await p.user_says("hello", thread=THREAD)
    [notice] = await p.wait_bot_messages(1)
    assert notice.thread == THREAD and notice.text == "You may not talk to this assistant here."


async def test_linear_missing_settings_name_the_variable(tmp_path: Path) -> None:
    cases = (({"LINEAR_WEBHOOK_SECRET": "s"}, "LINEAR_API_KEY"), ({"LINEAR_API_KEY": "k"}, "LINEAR_WEBHOOK_SECRET"))
    for env, variable in cases:
        channel = LinearChannel(RecordingHost(make_settings(tmp_path / "home", extra=env)))
        with pytest.raises(ConfigError, match=variable):
            await channel.start()


async def test_linear_bad_key_at_start_is_retried_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Linear answers a wrong key with AUTHENTICATION_ERROR: the owner is told, the host keeps running."""
    platform = LinearPlatform()
    try:
        async with channel_on(platform, tmp_path, edit_env=lambda env: env.update(LINEAR_API_KEY="lin_api_wrong")) as r:
            assert "linear.key_refused" in caplog.text and "linear.viewer_unavailable" in caplog.text
            comment = platform.fake.add_comment(ISSUE, "hi", "u1")
            assert await platform.deliver(platform.fake.comment_event(comment)) == 503  # Linear delivers again later
            assert r.host.events == []
    finally:
        await platform.stop()


async def test_linear_starts_while_linear_is_down_and_learns_who_it_is(tmp_path: Path) -> None:
    platform = LinearPlatform()
    env = await platform.start(tmp_path)
    platform.fake.down = True
    try:
        async with channel_on(platform, tmp_path, env=env) as r:
            own = platform.fake.comment_event(platform.fake.add_comment(ISSUE, "mine", platform.fake.bot["id"]))
            assert await platform.deliver(own) == 503
            platform.fake.down = False
            for _ in range(100):
                if await platform.deliver(own) != 503:
                    break
                await asyncio.sleep(0.05)
            assert await platform.deliver(own) == 200
            await platform.user_says("hello again")
            [event] = await r.host.wait_events(1)
            assert event.text == "hello again"
    finally:
        await platform.stop()


async def test_linear_comments_written_while_the_host_was_down_are_fetched_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    platform = LinearPlatform()
    env = await platform.start(tmp_path)
    try:
        async with channel_on(platform, tmp_path, env=env) as r:  # the same home at every start
            await platform.user_says("seen live", thread=THREAD)
            await r.host.wait_events(1)
        # While the host is down: comments whose webhooks failed, one of them ours (never passed on).
        platform.fake.add_user("bob", "Bob")
        for i in range(60):  # more than a page
            platform.fake.add_comment(ISSUE, f"backlog {i}", "bob")
        platform.fake.add_comment(THREAD, "the bot's own answer", platform.fake.bot["id"])
        other = platform.fake.add_issue("0b6d6f0c-3a5e-4f44-8f0e-5d4b2e5a7c22", "Another team's issue")
        platform.fake.add_comment(other["id"], "not our team's business", "bob")
        async with channel_on(platform, tmp_path, env=env) as r:
            await r.host.wait_events(60)
            await asyncio.sleep(0.3)
            assert [e.text for e in r.host.events] == [f"backlog {i}" for i in range(60)]  # oldest first, once
            assert {e.thread_id for e in r.host.events} == {ISSUE}
        async with channel_on(platform, tmp_path, env=env) as r:  # a third start has nothing to catch up
            await asyncio.sleep(0.5)
            assert r.host.events == []
        (tmp_path / "home" / "state" / "linear-seen.json").write_text("[damaged")
        async with channel_on(platform, tmp_path, env=env) as r:
            await asyncio.sleep(0.2)
            assert r.host.events == [] and "channel.position_unreadable" in caplog.text
    finally:
        await platform.stop()
