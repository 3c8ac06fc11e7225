"""GitHub specifics: webhook signatures and event types, mentions, issue/PR/review-comment mapping, the REST
error mapping, and starting without GitHub. The real channel talks to the fake GitHub in tests/fakes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nanoclaw.channels.base import IngestResult, OutgoingMessage
from nanoclaw.channels.github import GitHubChannel
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import Running, channel_on
from tests.channels.harness import RecordingHost
from tests.channels.platforms.github import BOT_LOGIN, GitHubPlatform
from tests.conftest import make_settings

REPO = GitHubPlatform.group_chat
github = pytest.mark.parametrize("running", ["github"], indirect=True)


def msg(text: str, thread: str | None = "1", repo: str = REPO, id: str = "o1") -> OutgoingMessage:
    return OutgoingMessage(route=Route("github", repo, thread), kind="chat", text=text, id=id)


def fake(r: Running) -> GitHubPlatform:
    assert isinstance(r.platform, GitHubPlatform)
    return r.platform


@github
async def test_github_webhook_signature_is_required(running: Running) -> None:
    p = fake(running)
    _, payload = p.fake.comment_event(REPO, 1, "let me in", "mallory")
    assert await p.deliver("issue_comment", payload, secret=None) == 401
    assert await p.deliver("issue_comment", payload, secret="guessed") == 401
    assert await p.deliver("issue_comment", payload, signature="sha256=" + "0" * 64) == 401
    assert await p.deliver("ping", {"zen": "Keep it logically awesome."}, secret=None) == 401
    await asyncio.sleep(0.1)
    assert running.host.events == []
    assert await p.deliver("issue_comment", payload) == 200
    [event] = await running.host.wait_events(1)
    assert event.text == "let me in" and event.sender_id == "mallory"


@github
async def test_github_ping_and_unhandled_events(running: Running) -> None:
    p = fake(running)
    assert await p.deliver("ping", {"zen": "Design for failure.", "hook_id": 1}) == 200
    assert await p.deliver("star", {"action": "created", "repository": {"full_name": REPO}}) == 204
    _, edited = p.fake.comment_event(REPO, 1, "edited text", "u1")
    assert await p.deliver("issue_comment", {**edited, "action": "edited"}) == 204
    _, closed = p.fake.opened_event(REPO, "Closed", "", "u1")
    assert await p.deliver("issues", {**closed, "action": "closed"}) == 204
    await asyncio.sleep(0.1)
    assert running.host.events == []


@github
async def test_github_mention_of_the_bot_login_is_rewritten(running: Running) -> None:
    p = fake(running)
    await p.user_says(f"@{BOT_LOGIN.upper()}, please look", thread="7")
    await p.user_says(f"mail me at me@{BOT_LOGIN} or ping @{BOT_LOGIN}-2")
    first, second = await running.host.wait_events(2)
    assert first.mentions_assistant and first.text == "@Andy, please look" and first.thread_id == "7"
    assert not second.mentions_assistant and second.text == f"mail me at me@{BOT_LOGIN} or ping @{BOT_LOGIN}-2"


@github
async def test_github_opened_issue_pr_and_review_comment_map_to_threads(running: Running) -> None:
    p = fake(running)
    number, issue = p.fake.opened_event(REPO, "Crash on start", f"@{BOT_LOGIN} any idea?", "alice")
    assert await p.deliver("issues", issue) == 200
    pr, pull = p.fake.opened_event(REPO, "Fix the crash", "Closes #1", "bob", pull=True)
    assert await p.deliver("pull_request", pull) == 200
    review_id, review = p.fake.review_comment_event(REPO, pr, "src/app.py", "Why this line?", "carol")
    assert await p.deliver("pull_request_review_comment", review) == 200
    opened, pulled, reviewed = await running.host.wait_events(3)
    assert (opened.message_id, opened.thread_id, opened.platform_id) == (f"issue-{number}", str(number), REPO)
    assert opened.text == "Crash on start\n\n@Andy any idea?" and opened.mentions_assistant
    assert (pulled.message_id, pulled.thread_id, pulled.sender_id) == (f"issue-{pr}", str(pr), "bob")
    assert reviewed.message_id == f"review-{review_id}" and reviewed.thread_id == str(pr)
    assert "src/app.py" in reviewed.text and "Why this line?" in reviewed.text
    assert not any(e.is_dm for e in (opened, pulled, reviewed))
    # reactions reach the right endpoint for each kind of id
    await running.channel.react(Route("github", REPO, str(pr)), reviewed.message_id, "🚀")
    await running.channel.react(Route("github", REPO, str(number)), opened.message_id, "❤️")
    assert p.fake.reactions_on(reviewed.message_id) == ["rocket"]
    assert p.fake.reactions_on(opened.message_id) == ["heart"]
    assert ("POST", f"/repos/{REPO}/pulls/comments/{review_id}/reactions") in p.fake.requests


@github
async def test_github_own_comments_are_dropped_and_apps_are_bots(running: Running) -> None:
    p = fake(running)
    _, own = p.fake.comment_event(REPO, 1, "my own answer", BOT_LOGIN)
    assert await p.deliver("issue_comment", own) == 204
    _, app = p.fake.comment_event(REPO, 1, "dependabot here", "dependabot[bot]", bot=True)
    assert await p.deliver("issue_comment", app) == 200
    [event] = await running.host.wait_events(1)
    assert event.from_bot and event.sender_id == "dependabot[bot]"


@github
async def test_github_send_threads_and_refusals(running: Running) -> None:
    p = fake(running)
    reply = await running.channel.send(msg("on issue 7", thread="7"))
    report = await running.channel.send(msg("## Weekly report\n\nall **green**", thread=None, id="o2"))
    sent = await p.bot_messages(REPO)
    assert [(m.id, m.thread) for m in sent] == [(reply.platform_message_id, "7"), (report.platform_message_id, "8")]
    assert report.platform_message_id == "issue-8" and sent[1].raw["title"] == "Weekly report"
    await running.channel.edit(Route("github", REPO), "issue-8", "all **red**")
    assert sent[1].edits == ["all **red**"]
    with pytest.raises(DestinationRefused, match="404"):
        await running.channel.send(msg("nobody home", thread="999"))
    with pytest.raises(DestinationRefused, match="404"):
        await running.channel.send(msg("wrong repo", repo="octo-org/missing"))
    with pytest.raises(DestinationRefused):
        await running.channel.edit(Route("github", REPO), "not-an-id", "x")
    before = len(p.fake.requests)
    await running.channel.react(Route("github", REPO), reply.platform_message_id or "", "🦄")  # no GitHub reaction
    assert len(p.fake.requests) == before


@github
async def test_github_rate_limit_is_transient_and_recovery_tells_the_host(running: Running) -> None:
    p = fake(running)
    p.fake.rate_limited = True
    with pytest.raises(ChannelUnavailable, match="rate limit"):
        await running.channel.send(msg("later"))
    p.fake.rate_limited = False
    assert running.host.ready == []
    await running.channel.send(msg("now"))
    assert running.host.ready == ["github"]


@github
async def test_github_send_works_after_the_api_server_restarts(running: Running) -> None:
    p = fake(running)
    await running.channel.send(msg("before"))
    await p.drop_connections()
    await running.channel.send(msg("after", id="o2"))
    assert [m.text for m in await p.bot_messages()] == ["before", "after"]


@github
async def test_github_rejected_message_is_answered_on_the_issue(running: Running) -> None:
    running.host.accept = lambda e: IngestResult(False, error="Your message is empty, so there is nothing to answer.")
    p = fake(running)
    await p.user_says(" ", thread="7")
    [notice] = await p.wait_bot_messages(1)
    assert notice.thread == "7" and notice.text.startswith("@u1 Your message is empty")


async def test_github_missing_settings_name_the_variable(tmp_path: Path) -> None:
    cases = (({"GITHUB_WEBHOOK_SECRET": "s"}, "GITHUB_TOKEN"), ({"GITHUB_TOKEN": "t"}, "GITHUB_WEBHOOK_SECRET"))
    for env, variable in cases:
        channel = GitHubChannel(RecordingHost(make_settings(tmp_path / "home", extra=env)))
        with pytest.raises(ConfigError, match=variable):
            await channel.start()


async def test_github_bad_token_is_a_config_error(tmp_path: Path) -> None:
    platform = GitHubPlatform()
    env = await platform.start(tmp_path)
    channel = GitHubChannel(RecordingHost(make_settings(tmp_path / "home", extra={**env, "GITHUB_TOKEN": "nope"})))
    try:
        with pytest.raises(ConfigError, match="GITHUB_BOT_LOGIN"):
            await channel.start()
    finally:
        await channel.stop()
        await platform.stop()


async def test_github_starts_while_github_is_down_and_learns_its_login(tmp_path: Path) -> None:
    platform = GitHubPlatform()
    env = await platform.start(tmp_path)
    platform.fake.down = True
    try:
        async with channel_on(platform, tmp_path, env=env) as r:
            _, own = platform.fake.comment_event(REPO, 1, "mine", BOT_LOGIN)
            assert await platform.deliver("issue_comment", own) == 503  # cannot tell own comments yet: GitHub retries
            platform.fake.down = False
            for _ in range(60):
                if await platform.deliver("issue_comment", own) != 503:
                    break
                await asyncio.sleep(0.05)
            assert await platform.deliver("issue_comment", own) == 204  # now recognised as ours
            await platform.user_says("hello again")
            [event] = await r.host.wait_events(1)
            assert event.text == "hello again"
    finally:
        await platform.stop()


async def test_github_comments_written_while_the_host_was_down_are_fetched_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """GitHub does not retry a webhook that failed while the host was down: the channel catches up."""
    platform = GitHubPlatform()
    env = await platform.start(tmp_path)
    try:
        async with channel_on(platform, tmp_path, env=env) as r:  # the same home at every start
            await platform.user_says("seen live", thread="7")
            await r.host.wait_events(1)
        # While the host is down: two comments whose webhooks failed, one of them ours (never passed on).
        platform.fake.comment_event(REPO, 7, "written while the host was down", "alice")
        platform.fake.comment_event(REPO, 9, "and another, on issue 9", "bob")
        platform.fake.comment_event(REPO, 9, "the bot's own answer", BOT_LOGIN)
        async with channel_on(platform, tmp_path, env=env) as r:
            await r.host.wait_events(2)
            await asyncio.sleep(0.3)
            assert [(e.text, e.thread_id) for e in r.host.events] == [
                ("written while the host was down", "7"), ("and another, on issue 9", "9")]
        async with channel_on(platform, tmp_path, env=env) as r:  # a third start has nothing to catch up
            await asyncio.sleep(0.5)
            assert r.host.events == []
        (tmp_path / "home" / "state" / "github-seen.json").write_text("{not json")
        async with channel_on(platform, tmp_path, env=env) as r:  # a damaged file: a warning, a start like a first
            await asyncio.sleep(0.2)
            assert r.host.events == [] and "channel.position_unreadable" in caplog.text
    finally:
        await platform.stop()
