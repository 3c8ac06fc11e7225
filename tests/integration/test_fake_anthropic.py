"""The fake Anthropic API, on its own and driven by the real Claude Code CLI.

The first half speaks HTTP to the fake directly (fast). The second half runs the
bundled CLI through ``claude_agent_sdk`` against it, outside any sandbox, to
prove the fake is faithful enough: text turns, in-process MCP tools, streaming,
retried and surfaced errors, side requests that leave the script alone.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic import FakeAnthropic, Reply, cli_env, fake_anthropic  # noqa: F401 - fixture

# --------------------------------------------------------------------------- plain HTTP


def _post(fake: FakeAnthropic, path: str, body: dict[str, Any], headers: dict[str, str] | None = None):
    req = urllib.request.Request(
        fake.base_url + path, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", "x-api-key": "k", **(headers or {})},
    )
    return urllib.request.urlopen(req, timeout=10)


def _sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk.strip():
            continue
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def _body(text: str = "hi", *, stream: bool = False, tools: bool = True, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-test", "max_tokens": 1000, "stream": stream,
                            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}], **kw}
    if tools:
        body["tools"] = [{"name": "t", "description": "d", "input_schema": {"type": "object"}}]
    return body


def test_non_streaming_reply_and_echo_default(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply.text("scripted"))
    first = json.load(_post(fake_anthropic, "/v1/messages", _body()))
    second = json.load(_post(fake_anthropic, "/v1/messages", _body("again")))
    assert first["type"] == "message" and first["role"] == "assistant"
    assert first["content"] == [{"type": "text", "text": "scripted"}]
    assert first["stop_reason"] == "end_turn" and first["usage"]["output_tokens"] > 0
    assert second["content"][0]["text"] == "echo: again"
    assert [r.last_user_text() for r in fake_anthropic.main_requests()] == ["hi", "again"]
    assert fake_anthropic.headers_seen("x-api-key") == ["k", "k"]


def test_streaming_events_match_the_real_api(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply.tool("lookup", {"q": "weather in Paris", "n": 3}, text="Let me look that up."))
    resp = _post(fake_anthropic, "/v1/messages", _body(stream=True))
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = _sse(resp.read())
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "ping" in names
    assert all(data["type"] == name for name, data in events)
    starts = [d["content_block"] for e, d in events if e == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["name"] == "lookup" and starts[1]["id"].startswith("toolu_") and starts[1]["input"] == {}
    text = "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta" and d["index"] == 0)
    args = "".join(d["delta"]["partial_json"] for e, d in events if e == "content_block_delta" and d["index"] == 1)
    assert text == "Let me look that up."
    assert json.loads(args) == {"q": "weather in Paris", "n": 3}
    assert names.count("content_block_stop") == 2
    delta = next(d for e, d in events if e == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0
    assert fake_anthropic.last_main().tool_use_ids() == [starts[1]["id"]]


def test_side_requests_do_not_consume_the_script(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply.text("for the conversation"))
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    title = json.load(_post(fake_anthropic, "/v1/messages", _body(
        tools=False, output_config={"format": {"type": "json_schema", "schema": schema}})))
    probe = json.load(_post(fake_anthropic, "/v1/messages", _body("quota", tools=False, max_tokens=1)))
    main = json.load(_post(fake_anthropic, "/v1/messages", _body()))
    assert json.loads(title["content"][0]["text"]) == {"title": "Fake title"}
    assert probe["content"][0]["text"] == "Fake title"
    assert main["content"][0]["text"] == "for the conversation"
    assert len(fake_anthropic.side_requests()) == 2 and len(fake_anthropic.main_requests()) == 1
    # A conversation without tools (tools=[] and no MCP servers) is still main.
    assert json.load(_post(fake_anthropic, "/v1/messages", _body("no tools", tools=False)))["content"][0]["text"] == "echo: no tools"


def test_callable_replies_and_responder(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(lambda req: Reply.text(req.last_user_text().upper()))
    fake_anthropic.responder = lambda req: Reply.text(f"{len(req.messages)} messages")
    assert json.load(_post(fake_anthropic, "/v1/messages", _body("shout")))["content"][0]["text"] == "SHOUT"
    assert json.load(_post(fake_anthropic, "/v1/messages", _body()))["content"][0]["text"] == "1 messages"


def test_other_paths_are_answered_and_recorded(fake_anthropic: FakeAnthropic) -> None:
    count = json.load(_post(fake_anthropic, "/v1/messages/count_tokens", _body()))
    assert count["input_tokens"] > 0
    assert json.load(_post(fake_anthropic, "/api/event_logging/batch", {"events": []})) == {}
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(fake_anthropic.base_url + "/api/oauth/profile", timeout=10)
    assert e.value.code == 404
    assert [r.path for r in fake_anthropic.other_requests()] == [
        "/v1/messages/count_tokens", "/api/event_logging/batch", "/api/oauth/profile"]
    assert fake_anthropic.main_requests() == []


@pytest.mark.parametrize("status,etype", [(401, "authentication_error"), (429, "rate_limit_error"),
                                          (500, "api_error"), (529, "overloaded_error")])
def test_error_injection(fake_anthropic: FakeAnthropic, status: int, etype: str) -> None:
    fake_anthropic.script(Reply.text("after the error"))
    fake_anthropic.fail_next(status, "boom", retry_after=2 if status == 429 else None)
    with pytest.raises(urllib.error.HTTPError) as e:
        _post(fake_anthropic, "/v1/messages", _body())
    assert e.value.code == status
    assert json.load(e.value) == {"type": "error", "error": {"type": etype, "message": "boom"},
                                  "request_id": e.value.headers["request-id"]}
    if status == 429:
        assert e.value.headers["retry-after"] == "2"
    # The scripted reply was not used up by the failed request.
    assert json.load(_post(fake_anthropic, "/v1/messages", _body()))["content"][0]["text"] == "after the error"
    assert [r.status for r in fake_anthropic.main_requests()] == [status, 200]


def test_cut_stream_and_in_stream_error(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply.text("a fairly long reply that spans several text deltas"))
    fake_anthropic.cut_next(after_events=3)
    resp = _post(fake_anthropic, "/v1/messages", _body(stream=True))
    with pytest.raises(Exception):  # http.client.IncompleteRead: chunked body never terminated
        resp.read()
    fake_anthropic.cut_next()
    with pytest.raises(Exception):  # non-streaming: dropped before any response
        _post(fake_anthropic, "/v1/messages", _body())
    assert [r.cut for r in fake_anthropic.main_requests()] == [True, True]
    fake_anthropic.stream_error_next("overloaded_error", after_events=2)
    events = _sse(_post(fake_anthropic, "/v1/messages", _body(stream=True)).read())
    assert [e for e, _ in events] == ["message_start", "ping", "error"]
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    # Neither fault used up the reply.
    events = _sse(_post(fake_anthropic, "/v1/messages", _body(stream=True)).read())
    assert "".join(d["delta"].get("text", "") for e, d in events if e == "content_block_delta").startswith("a fairly")


def test_latency_and_wait_for() -> None:
    with FakeAnthropic(latency=0.05) as fake:
        t0 = time.monotonic()
        _post(fake, "/v1/messages", _body(stream=True)).read()
        assert time.monotonic() - t0 >= 0.05 * 6  # message_start, ping, block start/delta/stop, ...
        assert len(fake.wait_for_main(1, timeout=1)) == 1
        with pytest.raises(TimeoutError):
            fake.wait_for_main(2, timeout=0.2)


# --------------------------------------------------------------------------- the real CLI

from claude_agent_sdk import (  # noqa: E402
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    create_sdk_mcp_server,
    tool,
)


def _options(fake: FakeAnthropic, tmp_path: Path, **kw: Any) -> ClaudeAgentOptions:
    env_kw = {k: kw.pop(k) for k in ("max_retries",) if k in kw}
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return ClaudeAgentOptions(env=cli_env(fake, tmp_path / "home", **env_kw), cwd=str(work),
                              permission_mode="bypassPermissions", **kw)


async def _ask(client: ClaudeSDKClient, prompt: str, timeout: float = 30) -> tuple[ResultMessage, list[Any]]:
    await client.query(prompt)
    seen: list[Any] = []

    async def collect() -> ResultMessage:
        async for m in client.receive_response():
            seen.append(m)
            if isinstance(m, ResultMessage):
                return m
        raise AssertionError(f"no ResultMessage; saw {seen}")

    return await asyncio.wait_for(collect(), timeout), seen


async def test_cli_text_round_trip(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.script(Reply.text("Hello from the fake model."))
    async with ClaudeSDKClient(_options(fake_anthropic, tmp_path)) as client:
        result, _ = await _ask(client, "hello there")
        assert result.result == "Hello from the fake model." and not result.is_error
        # Script empty: the echo responder answers, and the history came along.
        result, _ = await _ask(client, "and again")
        assert result.result == "echo: and again"
    first, second = fake_anthropic.main_requests()
    assert first.last_user_text() == "hello there"
    assert second.last_user_text() == "and again" and "hello there" in second.user_texts()[0]
    assert fake_anthropic.pending == 0


async def test_cli_calls_sdk_mcp_tool_and_returns_its_result(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    @tool("send_message", "Send a message to the chat", {"text": str})
    async def send_message(args: dict[str, Any]) -> dict[str, Any]:
        calls.append(args)
        return {"content": [{"type": "text", "text": f"sent: {args['text']}"}]}

    server = create_sdk_mcp_server("nanoclaw", tools=[send_message])
    fake_anthropic.script(Reply.tool("mcp__nanoclaw__send_message", {"text": "hi"}), Reply.text("done"))
    opts = _options(fake_anthropic, tmp_path, mcp_servers={"nanoclaw": server},
                    allowed_tools=["mcp__nanoclaw__send_message"])
    async with ClaudeSDKClient(opts) as client:
        result, _ = await _ask(client, "say hi")
    assert result.result == "done"
    assert calls == [{"text": "hi"}]
    first, second = fake_anthropic.main_requests()
    # The model saw the tool directly (ENABLE_TOOL_SEARCH=false), with its schema.
    offered = first.tool("mcp__nanoclaw__send_message")
    assert offered is not None and "text" in offered["input_schema"]["properties"]
    [tr] = second.tool_results()
    assert tr.tool_use_id == first.tool_use_ids()[0]
    assert tr.text == "sent: hi" and not tr.is_error


async def test_cli_uses_streaming_and_sends_the_api_key(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.latency = 0.01
    fake_anthropic.script(Reply.text("streamed " * 20))
    async with ClaudeSDKClient(_options(fake_anthropic, tmp_path)) as client:
        result, _ = await _ask(client, "stream please")
    assert result.result.strip() == ("streamed " * 20).strip()
    reqs = fake_anthropic.messages_requests()
    assert reqs and all(r.stream for r in reqs)
    assert all(r.path == "/v1/messages" and r.query.get("beta") == "true" for r in reqs)
    assert fake_anthropic.headers_seen("x-api-key") == ["dummy"] * len(reqs)
    assert fake_anthropic.headers_seen("authorization") == []
    assert fake_anthropic.other_requests() == []  # nothing else at start-up with nonessential traffic off


async def test_cli_retries_a_500_then_succeeds(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.fail_next(500)
    fake_anthropic.script(Reply.text("recovered"))
    t0 = time.monotonic()
    async with ClaudeSDKClient(_options(fake_anthropic, tmp_path, max_retries=2)) as client:
        result, _ = await _ask(client, "hello")
    assert result.result == "recovered" and not result.is_error
    assert [r.status for r in fake_anthropic.main_requests()] == [500, 200]
    assert time.monotonic() - t0 < 15


async def test_cli_surfaces_overload_when_retries_run_out(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.fail_next(529, "Overloaded", times=10)
    t0 = time.monotonic()
    async with ClaudeSDKClient(_options(fake_anthropic, tmp_path, max_retries=1)) as client:
        result, seen = await _ask(client, "hello")
    assert result.is_error and "529" in (result.result or "")
    assert any(isinstance(m, AssistantMessage) and m.error for m in seen)
    assert [r.status for r in fake_anthropic.main_requests()] == [529, 529]  # first try + one retry
    assert time.monotonic() - t0 < 15


async def test_cli_retries_a_cut_stream(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.cut_next(after_events=3)
    fake_anthropic.script(Reply.text("whole reply"))
    async with ClaudeSDKClient(_options(fake_anthropic, tmp_path, max_retries=1)) as client:
        result, _ = await _ask(client, "hello")
    assert result.result == "whole reply"
    assert [r.cut for r in fake_anthropic.main_requests()] == [True, False]


async def test_cli_session_title_is_a_side_request(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    """The CLI's title call (no tools, JSON-schema output) must not eat scripted replies."""
    fake_anthropic.script(Reply.text("first"), Reply.text("second"))
    async with ClaudeSDKClient(_options(fake_anthropic, tmp_path)) as client:
        result, _ = await _ask(client, "fix the login bug in auth.py")
        assert result.result == "first"
        # What a host would send to have the CLI name the session (no public SDK method yet).
        reply = await asyncio.wait_for(client._query._send_control_request(  # type: ignore[union-attr]
            {"subtype": "generate_session_title", "description": "fix the login bug"}), 30)
        assert reply == {"title": "Fake title"}
        result, _ = await _ask(client, "next")
        assert result.result == "second"
    [side] = fake_anthropic.side_requests()
    assert not side.tool_names() and "title" in side.system_text()
    assert len(fake_anthropic.main_requests()) == 2
