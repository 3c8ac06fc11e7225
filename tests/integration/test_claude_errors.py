"""Model API errors, bad tool calls and tool loops: a clear message to the person, a healthy runner."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.host.app import Host
from tests.conftest import fake, wire
from tests.fakes.anthropic import FakeAnthropic, Reply
from tests.fakes.channel import FakeChannel
from tests.integration.test_claude import api, claude_settings  # noqa: F401 - fixture

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture
async def ehost(tmp_path: Path, api: FakeAnthropic) -> AsyncIterator[Host]:  # noqa: F811
    settings = claude_settings(tmp_path / "home", api, max_agent_turns=4, model_max_retries=0)
    host = Host(settings, channels=[FakeChannel])
    await host.start()
    wire(host, "chat1", trigger="always")
    try:
        yield host
    finally:
        await host.stop()


@pytest.mark.parametrize("status,expect", [
    (401, "rejected the credentials"),
    (429, "rate limiting"),
    (500, "internal error"),
    (529, "overloaded"),
])
async def test_api_errors_become_a_clear_message(ehost: Host, api: FakeAnthropic, status: int, expect: str) -> None:  # noqa: F811
    api.fail_next(status, retry_after=1 if status == 429 else None, times=3)
    ch = fake(ehost)
    await ch.say("hello", message_id="m1")
    assert await ch.wait_processed("m1", timeout=90) == "done"
    assert expect in ch.sent[0].text and ch.sent[0].text.startswith("⚠️ Sorry")
    api.clear_faults()
    api.script(Reply.text("better now"))
    await ch.say("again?", message_id="m2")
    assert await ch.wait_processed("m2", timeout=90) == "done"
    assert ch.sent[-1].text == "better now"
    assert ehost.supervisor.starts == 1  # the runner stayed up


async def test_a_cut_stream_is_retried(ehost: Host, api: FakeAnthropic) -> None:  # noqa: F811
    api.script(Reply.text("complete answer"))
    api.cut_next(after_events=3)
    ch = fake(ehost)
    await ch.say("hello", message_id="m1")
    assert await ch.wait_processed("m1", timeout=90) == "done"
    assert ch.sent[-1].text == "complete answer"
    assert len(api.main_requests()) == 2  # the cut one, then its retry


async def test_wrong_tool_arguments_go_back_to_the_model(ehost: Host, api: FakeAnthropic) -> None:  # noqa: F811
    api.script(Reply.tool("mcp__nanoclaw__send_message", {"txt": "typo"}),
               lambda req: Reply.text("tool said: " + req.tool_results()[0].text))
    ch = fake(ehost)
    await ch.say("send something")
    sent = await ch.wait_sent(1, timeout=60)
    assert "tool said:" in sent[0].text and ("text" in sent[0].text.lower())


async def test_a_model_looping_on_tools_is_stopped(ehost: Host, api: FakeAnthropic) -> None:  # noqa: F811
    api.responder = lambda req: Reply.tool("mcp__nanoclaw__list_destinations", {})
    ch = fake(ehost)
    await ch.say("loop forever", message_id="loop")
    assert await ch.wait_processed("loop", timeout=90) == "done"
    assert "stopped after 4 steps" in ch.sent[-1].text
    assert len(api.main_requests()) <= 6
