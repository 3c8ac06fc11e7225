"""The openai provider end to end: a real sandbox, the host's gateway, a fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from click.testing import CliRunner

from nanoclaw.cli import main
from nanoclaw.db import agent_groups
from nanoclaw.host.app import Host
from nanoclaw.runner.providers.openai import estimate_tokens, trim
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel
from tests.fakes.openai import FakeOpenAI, Step

pytestmark = pytest.mark.sandbox
KEY = "sk-openai-real-key-42"


@pytest.fixture
def oai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


async def make_host(tmp_path: Path, oai: FakeOpenAI, **overrides: object) -> Host:
    settings = replace(make_settings(tmp_path / "home", **overrides), extra={"OPENAI_API_KEY": KEY})
    host = Host(settings, channels=[FakeChannel])
    agent_groups.set_model(host.conn, "main", "openai", "llama-test", oai.base_url)
    await host.start()
    wire(host, "chat1", trigger="always")
    return host


@pytest.fixture
async def ohost(tmp_path: Path, oai: FakeOpenAI) -> AsyncIterator[Host]:
    host = await make_host(tmp_path, oai)
    try:
        yield host
    finally:
        await host.stop()


async def test_openai_conversation_with_tools_in_a_sandbox(ohost: Host, oai: FakeOpenAI) -> None:
    (ohost.settings.groups_dir / "main" / "CLAUDE.md").write_text("The owner's cat is called Miso.")
    oai.script(
        Step.call("bash", {"command": "echo sandboxed > note.txt && id -u && env"}),
        Step.call("send_message", {"text": "working on it"}),
        lambda req: Step.say("done; bash said " + next(
            str(m["content"]).split()[0] for m in req.messages if m.get("role") == "tool" and "exit code" in str(m["content"]))),
    )
    ch = fake(ohost)
    await ch.say("please write a note")
    sent = await ch.wait_sent(2, timeout=30)
    uid = ohost.folders.owner_of("main") or 1000  # the group's own uid on a root host
    assert [s.text for s in sent] == ["working on it", f"done; bash said {uid}"]
    assert (ohost.settings.groups_dir / "main" / "note.txt").read_text() == "sandboxed\n"
    first = oai.requests[0]
    assert first.body["model"] == "llama-test" and first.body["stream"] is True
    assert "Miso" in first.messages[0]["content"] and "You are Andy" in first.messages[0]["content"]
    assert {t["function"]["name"] for t in first.body["tools"]} >= {"bash", "read_file", "send_message", "web_fetch"}
    assert {r.headers.get("authorization") for r in oai.requests} == {f"Bearer {KEY}"}
    bash_output = oai.requests[1].tool_results()[0]
    assert "NANOCLAW_RUNNER_PROVIDER=openai" in bash_output and KEY not in bash_output


async def test_openai_history_survives_a_runner_restart(ohost: Host, oai: FakeOpenAI) -> None:
    ch = fake(ohost)
    oai.script(Step.say("noted, the code is 7731"))
    await ch.say("remember code 7731")
    await ch.wait_sent(1, timeout=30)
    for runner in list(ohost.supervisor.live.values()):
        runner.process.kill()
    while ohost.supervisor.live:
        await asyncio.sleep(0.05)
    oai.script(Step.say("it is 7731"))
    await ch.say("what was the code?")
    await ch.wait_sent(2, timeout=30)
    contents = [str(m.get("content")) for m in oai.requests[-1].messages]
    assert any("remember code 7731" in c for c in contents) and "noted, the code is 7731" in contents
    assert ohost.supervisor.starts == 2


async def test_openai_context_overflow_is_trimmed(tmp_path: Path, oai: FakeOpenAI) -> None:
    host = await make_host(tmp_path, oai, context_window=6000)
    try:
        ch = fake(host)
        for i in range(6):
            await ch.say(f"turn {i} " + "words " * 800)
            await ch.wait_sent(i + 1, timeout=30)
        last = oai.requests[-1]
        assert estimate_tokens(last.messages) <= 6000
        assert "turn 5" in last.last_user_text()
        assert not any("turn 0 " in str(m.get("content")) for m in last.messages)
    finally:
        await host.stop()


async def test_openai_malformed_tool_json_goes_back_to_the_model(ohost: Host, oai: FakeOpenAI) -> None:
    oai.script(Step.call("bash", '{"command": "ls"'), lambda req: Step.say("tool said: " + req.tool_results()[0]))
    ch = fake(ohost)
    await ch.say("list files")
    sent = await ch.wait_sent(1, timeout=30)
    assert "not valid JSON" in sent[0].text
    oai.script(Step.call("no_such_tool", {}), lambda req: Step.say(req.tool_results()[0]))
    await ch.say("again")
    assert "there is no tool 'no_such_tool'" in (await ch.wait_sent(2, timeout=30))[1].text


async def test_openai_retries_rate_limits_and_cut_streams(ohost: Host, oai: FakeOpenAI) -> None:
    oai.fail_next(429, retry_after=0.2)
    oai.cut_next()
    oai.script(Step.say("made it"))
    ch = fake(ohost)
    await ch.say("hello")
    assert (await ch.wait_sent(1, timeout=30))[0].text == "made it"
    assert len(oai.requests) == 3


async def test_openai_errors_become_a_clear_message(ohost: Host, oai: FakeOpenAI) -> None:
    oai.fail_next(401)
    ch = fake(ohost)
    await ch.say("hello", message_id="m1")
    assert await ch.wait_processed("m1", timeout=30) == "done"
    assert ch.sent[0].text.startswith("⚠️ Sorry, the model endpoint refused the request (401)")
    oai.fail_next(500, times=10)
    await ch.say("again", message_id="m2")
    assert await ch.wait_processed("m2", timeout=60) == "done"
    assert "kept failing" in ch.sent[-1].text


def test_openai_history_trimming_keeps_whole_turns() -> None:
    history = []
    for i in range(5):
        history += [{"role": "user", "content": f"q{i} " + "x" * 400},
                    {"role": "assistant", "content": None, "tool_calls": [{"id": f"c{i}", "type": "function",
                                                                          "function": {"name": "bash", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": f"c{i}", "content": "ok"},
                    {"role": "assistant", "content": f"a{i}"}]
    trimmed = trim(history, 300)
    assert trimmed[0]["role"] == "user" and trimmed[0]["content"].startswith("q4")
    assert trim(history, 10**6) == history


def test_openai_set_model_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nanoclaw import db
    from nanoclaw.host.bootstrap import first_run

    settings = make_settings(tmp_path / "home")
    conn = db.connect(settings.db_path)
    first_run(conn, settings)
    monkeypatch.setenv("NANOCLAW_HOME", str(settings.home))
    monkeypatch.chdir(tmp_path)
    ok = CliRunner().invoke(main, ["groups", "set-model", "main", "--provider", "openai", "--model", "llama3.1:8b",
                                   "--base-url", "http://127.0.0.1:11434/v1"])
    assert ok.exit_code == 0, ok.output
    group = agent_groups.get(conn, "main")
    assert (group.provider, group.model, group.base_url) == ("openai", "llama3.1:8b", "http://127.0.0.1:11434/v1")
    bad = CliRunner().invoke(main, ["groups", "set-model", "main", "--provider", "gpt9"])
    assert bad.exit_code == 1 and "not installed" in bad.output
