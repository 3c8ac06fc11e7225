"""The claude provider: the real Claude Code CLI in a real sandbox, talking to a fake Anthropic API
through the host's gateway, which injects the real key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.host.app import Host
from tests.conftest import fake, make_settings, wire
from tests.fakes.anthropic import FakeAnthropic, Reply
from tests.fakes.channel import FakeChannel, RichFakeChannel

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

REAL_KEY = "sk-ant-real-key-0123456789"


@pytest.fixture
def api() -> AsyncIterator[FakeAnthropic]:
    with FakeAnthropic() as fake_api:
        yield fake_api


def claude_settings(home: Path, api: FakeAnthropic, **overrides: object):
    settings = make_settings(home, provider="claude", egress_allow_private=True, heartbeat_timeout=30.0, **overrides)
    from dataclasses import replace

    return replace(settings, extra={"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": REAL_KEY})


@pytest.fixture
async def chost(tmp_path: Path, api: FakeAnthropic) -> AsyncIterator[Host]:
    host = Host(claude_settings(tmp_path / "home", api), channels=[FakeChannel, RichFakeChannel])
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


async def test_text_round_trip_with_the_key_injected_by_the_host(chost: Host, api: FakeAnthropic) -> None:
    api.script(Reply.text("Hello from Claude"))
    wire(chost, "chat1", trigger="always")
    ch = fake(chost)
    await ch.say("hi there", sender="alice")
    sent = await ch.wait_sent(1, timeout=60)
    assert sent[0].text == "Hello from Claude"
    request = api.main_requests()[0]
    assert "hi there" in request.last_user_text() and 'sender="Alice"' in request.last_user_text()
    assert "You are Andy" in request.system_text()
    assert set(api.headers_seen("x-api-key")) == {REAL_KEY}


def tool(name: str, args: dict, text: str | None = None) -> Reply:
    return Reply.tool(f"mcp__nanoclaw__{name}", args, text=text)


async def test_a_nanoclaw_tool_called_by_the_model_sends_to_the_chat(chost: Host, api: FakeAnthropic) -> None:
    api.script(tool("send_message", {"text": "working on it…"}), Reply.text("done"))
    wire(chost, "chat1", trigger="always")
    ch = fake(chost)
    await ch.say("do the thing")
    sent = await ch.wait_sent(2, timeout=60)
    assert [s.text for s in sent] == ["working on it…", "done"]
    assert "Message queued" in api.main_requests()[1].tool_results()[0].text


async def test_ask_user_question_waits_for_the_card_answer(chost: Host, api: FakeAnthropic) -> None:
    api.script(tool("ask_user_question", {"question": "Tea or coffee?", "options": ["tea", "coffee"]}),
               lambda req: Reply.text("You chose: " + req.tool_results()[0].text))
    wire(chost, "room", channel="fakerich", trigger="always")
    ch = fake(chost, "fakerich")
    await ch.say("make me a drink", chat="room")
    card = (await ch.wait_sent(1, timeout=60))[0]
    assert card.kind == "question" and card.buttons == ("tea", "coffee")
    assert await ch.click(card.card_id, "tea") is None
    sent = await ch.wait_sent(2, timeout=60)
    assert sent[1].text == "You chose: The person answered: tea"


async def test_follow_up_is_streamed_into_the_running_turn(chost: Host, api: FakeAnthropic) -> None:
    api.latency = 0.1  # a slow model: the second message arrives while the first turn runs
    api.script(Reply.text("answer one"), Reply.text("answer two"))
    wire(chost, "chat1", trigger="always")
    ch = fake(chost)
    await ch.say("first question", message_id="q1")
    await asyncio.to_thread(api.wait_for_main, 1, 60)
    await ch.say("second question", message_id="q2")
    assert await ch.wait_processed("q2", timeout=60) == "done"
    assert [s.text for s in ch.sent] == ["answer one", "answer two"]
    assert chost.supervisor.starts == 1


async def test_resume_after_the_runner_is_killed(chost: Host, api: FakeAnthropic) -> None:
    wire(chost, "chat1", trigger="always")
    ch = fake(chost)
    api.script(Reply.text("noted: the code word is pelican"))
    await ch.say("remember the code word pelican")
    await ch.wait_sent(1, timeout=60)
    for runner in list(chost.supervisor.live.values()):
        runner.process.kill()
    while chost.supervisor.live:
        await asyncio.sleep(0.05)
    api.script(Reply.text("it was pelican"))
    await ch.say("what was the code word?")
    await ch.wait_sent(2, timeout=60)
    assert chost.supervisor.starts == 2
    history = " ".join(api.main_requests()[-1].user_texts())
    assert "remember the code word pelican" in history and "what was the code word?" in history


async def test_memory_edits_persist_and_global_memory_is_read_only_for_others(
    chost: Host, api: FakeAnthropic
) -> None:
    from nanoclaw.db import agent_groups

    agent_groups.create(chost.conn, "family")
    chost.folders.ensure_group("family")
    wire(chost, "fam", group="family", trigger="always")
    api.script(
        Reply.tool("Bash", {"command": "echo '- Alice likes tea' >> /workspace/agent/CLAUDE.md && "
                                       "(echo hack >> /workspace/global/CLAUDE.md 2>&1 || true)"}),
        Reply.text("remembered"),
    )
    ch = fake(chost)
    await ch.say("remember that I like tea", chat="fam")
    await ch.wait_sent(1, timeout=60)
    assert "- Alice likes tea" in (chost.settings.groups_dir / "family" / "CLAUDE.md").read_text()
    assert "hack" not in (chost.settings.groups_dir / "global" / "CLAUDE.md").read_text()
    refusal = api.main_requests()[1].tool_results()[0].text
    assert "Read-only file system" in refusal or "Permission denied" in refusal


async def test_undeclared_destination_is_refused(chost: Host, api: FakeAnthropic) -> None:
    api.script(tool("send_message", {"text": "psst", "to": "strangers"}), Reply.text("ok"))
    wire(chost, "chat1", trigger="always")
    ch = fake(chost)
    await ch.say("tell the strangers", message_id="m")
    assert await ch.wait_processed("m", timeout=60) == "done"
    assert [s.text for s in ch.sent] == ["ok"]


async def test_agents_talk_to_each_other(chost: Host, api: FakeAnthropic) -> None:
    api.script(
        tool("create_agent", {"id": "researcher", "instructions": "You research facts."}),
        tool("send_to_agent", {"agent": "researcher", "text": "boiling point of water?"}),
        Reply.text("I asked the researcher."),
        Reply.text("100 °C at sea level"),  # the researcher's turn
        lambda req: Reply.text("Researcher says: " + ("100 °C" if "100 °C at sea level" in req.last_user_text() else "?")),
    )
    wire(chost, "chat1", trigger="always")
    ch = fake(chost)
    await ch.say("ask a researcher about water")
    sent = await ch.wait_sent(2, timeout=90)
    assert sent[0].text == "I asked the researcher."
    assert sent[1].text == "Researcher says: 100 °C"
    researcher_request = api.main_requests()[3]
    assert "You research facts." in researcher_request.system_text() or "boiling point" in researcher_request.last_user_text()


async def test_the_real_key_never_enters_the_sandbox(chost: Host, api: FakeAnthropic) -> None:
    api.script(
        Reply.tool("Bash", {"command": "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; "
                                       "grep -rs sk-ant- /workspace /home/agent /tmp | head -5; echo END"}),
        Reply.text("checked"),
    )
    wire(chost, "chat1", trigger="always")
    ch = fake(chost)
    await ch.say("look around")
    await ch.wait_sent(1, timeout=60)
    seen = api.main_requests()[1].tool_results()[0].text
    assert "END" in seen and "ANTHROPIC_BASE_URL=http://127.0.0.1" in seen
    assert REAL_KEY not in seen
    logs = "".join(p.read_text(errors="replace") for p in chost.settings.home.rglob("*.log"))
    assert REAL_KEY not in logs
    for db in chost.settings.home.rglob("*.db"):
        assert REAL_KEY.encode() not in db.read_bytes()


async def test_subagents_of_the_group_and_project_skills_are_available(chost: Host, api: FakeAnthropic) -> None:
    agents = chost.settings.groups_dir / "main" / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "poet.md").write_text("---\nname: poet\ndescription: Writes short poems.\n---\nYou write haiku.\n")
    task = {"subagent_type": "poet", "description": "write a haiku", "prompt": "a haiku on tea"}

    def respond(req):  # the subagent runs in the background in this Claude Code: answer by who asks
        if "You write haiku." in req.system_text():
            return Reply.text("steam rises softly")
        if "get me a haiku" in req.last_user_text() and not req.tool_results():
            return Reply.tool("Task", task)
        return Reply.text("the poet is on it")

    api.responder = respond
    wire(chost, "chat1", trigger="always")
    ch = fake(chost)
    await ch.say("get me a haiku")
    sent = await ch.wait_sent(1, timeout=60)
    assert sent[0].text == "the poet is on it"
    poet = await asyncio.to_thread(
        api.wait_for, lambda reqs: any("You write haiku." in r.system_text() for r in reqs), 60
    )
    assert any("a haiku on tea" in r.last_user_text() for r in poet if "You write haiku." in r.system_text())
    assert (chost.settings.groups_dir / "main" / ".claude" / "skills" / "remember" / "SKILL.md").is_file()


async def test_clear_starts_a_fresh_claude_session(chost: Host, api: FakeAnthropic) -> None:
    wire(chost, "dm", is_dm=True)
    ch = fake(chost)
    api.script(Reply.text("noted"))
    await ch.say("my name is Zed", chat="dm", is_dm=True)
    await ch.wait_sent(1, timeout=60)
    await ch.say("/clear", chat="dm", is_dm=True)
    sent = await ch.wait_sent(2, timeout=60)
    assert sent[1].text == "Started a fresh conversation."
    api.script(Reply.text("hello stranger"))
    await ch.say("who am I?", chat="dm", is_dm=True)
    await ch.wait_sent(3, timeout=60)
    assert "my name is Zed" not in " ".join(api.main_requests()[-1].user_texts())


async def test_compact_asks_claude_code_to_compact(chost: Host, api: FakeAnthropic) -> None:
    wire(chost, "dm", is_dm=True)
    ch = fake(chost)
    api.script(Reply.text("noted"))
    await ch.say("a long story about tea", chat="dm", is_dm=True)
    await ch.wait_sent(1, timeout=60)
    before = len(api.messages_requests())
    await ch.say("/compact", chat="dm", is_dm=True, message_id="c")
    assert await ch.wait_processed("c", timeout=60) == "done"
    assert len(api.messages_requests()) > before  # Claude Code summarised the history with the model
    assert ch.sent[-1].text


async def test_the_model_key_can_live_in_the_vault_and_never_leaks(
    tmp_path: Path, api: FakeAnthropic, private_config_dir: Path
) -> None:
    from urllib.parse import urlsplit

    from nanoclaw.vault.store import SecretRule, SecretStore

    vault_key = "sk-ant-canary-from-the-vault"
    host_name = urlsplit(api.base_url).hostname or "127.0.0.1"
    SecretStore.open(private_config_dir).add(SecretRule("anthropic", host_name, "x-api-key", "{value}"), vault_key)
    host = Host(claude_settings(tmp_path / "home", api), channels=[FakeChannel])
    await host.start()
    try:
        api.script(Reply.text("keyed by the vault"))
        wire(host, "chat1", trigger="always")
        await fake(host).say("hello")
        assert (await fake(host).wait_sent(1, timeout=60))[0].text == "keyed by the vault"
    finally:
        await host.stop()
    assert set(api.headers_seen("x-api-key")) == {vault_key}  # the vault's rule wins over the settings' key
    assert vault_key not in json.dumps([r.body for r in api.requests])  # nor in any transcript sent


async def test_claude_text_is_shown_while_written_and_stop_interrupts_the_sdk(tmp_path: Path, api: FakeAnthropic) -> None:
    from nanoclaw.runner.main import STOPPED
    from tests.fakes.channel import StreamingFakeChannel

    long_text = " ".join(f"word{i}" for i in range(300))
    host = Host(claude_settings(tmp_path / "home", api), channels=[StreamingFakeChannel])
    await host.start()
    try:
        wire(host, "chat1", channel="fakestream", trigger="always")
        ch = host.channels["fakestream"]
        assert isinstance(ch, StreamingFakeChannel)
        api.latency = 0.02  # between SSE events: the answer takes about two seconds to write
        api.script(Reply.text(long_text), Reply.text(long_text))
        await ch.say("write a lot")
        [first] = await ch.wait_sent(1, timeout=60)
        assert long_text.startswith(first.text) and first.text != long_text  # shown before it was finished
        await ch.wait_for(lambda: ch.text_of(first.platform_id) == long_text, timeout=60)
        assert len(ch.sent) == 1
        api.latency = 0.2  # the second answer would take half a minute
        await ch.say("again")
        await ch.wait_for(lambda: len(ch.sent) == 2, timeout=60)
        result = await ch.say("/stop")
        assert result.accepted and result.reply is None
        await ch.wait_for(lambda: ch.text_of(ch.sent[1].platform_id).endswith(STOPPED), timeout=20)
        assert "word299" not in ch.text_of(ch.sent[1].platform_id)
        api.latency = 0.0
        api.script(Reply.text("fine after the stop"))
        await ch.say("still there?")
        await ch.wait_for(lambda: any(ch.text_of(s.platform_id) == "fine after the stop" for s in ch.sent), timeout=60)
    finally:
        await host.stop()


async def test_a_new_chat_is_answered_by_a_pooled_claude_sandbox(tmp_path: Path, api: FakeAnthropic) -> None:
    """The claude provider warms up in a pooled sandbox (Claude Code started, a first turn against the stand-in
    API inside it) and its session's first message is answered there, the key injected by the host."""
    host = Host(claude_settings(tmp_path / "home", api, pool_size=1), channels=[FakeChannel])
    wire(host, "chat1", trigger="always")  # a chat kind the pool warms for
    await host.start()
    try:
        for _ in range(1200):  # Claude Code starts inside the sandbox
            if any(s.ready and s.key[1] == "fake" for s in host.pool.slots.values()):
                break
            await asyncio.sleep(0.1)
        slot = next(s for s in host.pool.slots.values() if s.ready and s.key[1] == "fake")
        api.script(Reply.text("Hello from a warm Claude"))
        ch = fake(host)
        await ch.say("hi there", chat="chat1", sender="alice")
        assert (await ch.wait_sent(1, timeout=60))[0].text == "Hello from a warm Claude"
        (session,) = host.supervisor.live
        assert host.supervisor.live[session].adopted and host.supervisor.live[session].process is slot.process
        assert "hi there" in api.main_requests()[-1].last_user_text()
        assert set(api.headers_seen("x-api-key")) == {REAL_KEY}
    finally:
        await host.stop()
