"""The openai provider: any OpenAI-compatible Chat Completions endpoint (Ollama, llama.cpp, vLLM, OpenRouter…).

Requests go to the host's gateway on 127.0.0.1 (ANTHROPIC_BASE_URL points there
for every provider; the host forwards to the agent group's base URL and adds
the key), so the runner never holds a key. Streaming (text deltas are shown as
they come; a stop cancels the stream), tool calls (arguments may arrive split across chunks), retries with backoff, a history kept in
session_state so a restarted runner resumes, and the oldest turns trimmed to
fit the context window.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Callable

from nanoclaw.protocol.formatting import strip_internal
from nanoclaw.runner.agent_tools import AGENT_TOOLS
from nanoclaw.runner.prompt import read_memory, system_prompt
from nanoclaw.runner.providers.base import Provider, ProviderError, Turn
from nanoclaw.runner.tools import Tool, ToolError

STATE_KEY = "openai.history"
RETRIES = 3
MAX_OUTPUT_TOKENS = 4096


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A cheap upper-ish estimate (4 characters a token); exact counts need the model's tokenizer."""
    return sum(len(json.dumps(m, ensure_ascii=False)) for m in messages) // 4 + 4 * len(messages)


def trim(history: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """Drop the oldest whole turns (a user message and all that follows it) until the history fits."""
    trimmed = list(history)
    while estimate_tokens(trimmed) > budget:
        starts = [i for i, m in enumerate(trimmed) if m["role"] == "user"]
        if len(starts) < 2:
            break  # never drop the turn being answered
        trimmed = trimmed[starts[1]:]
    return trimmed


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.tools: dict[str, Tool] = {t.name: t for t in [*context.tools, *AGENT_TOOLS]}
        self._client: Any = None

    async def start(self) -> None:
        import httpx

        base = os.environ.get("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # the gateway, whatever the provider
        token = os.environ.get("NANOCLAW_PROXY_TOKEN")  # the gateway swaps it for the real key
        self._client = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30.0, read=300.0), trust_env=False,
                                         headers={"Authorization": f"Bearer {token}"} if token else None)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _history(self) -> list[dict[str, Any]]:
        raw = self.context.get_state(STATE_KEY)
        try:
            history = json.loads(raw) if raw else []
        except ValueError:
            history = []
        return history if isinstance(history, list) else []

    def _system(self) -> dict[str, Any]:
        prompt = system_prompt(self.context.config, read_memory("/workspace/global/CLAUDE.md"),
                               read_memory("CLAUDE.md"))
        return {"role": "system", "content": prompt}

    def _tool_specs(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": t.schema}} for t in self.tools.values()]

    async def run_turn(self, turn: Turn) -> str | None:
        config = self.context.config
        history = self._history() + [{"role": "user", "content": turn.prompt}]
        system = self._system()
        budget = max(1000, config.context_window - MAX_OUTPUT_TOKENS - estimate_tokens([system]))
        try:
            for _step in range(config.max_turns):
                history = trim(history, budget)
                try:
                    message = await self._complete([system, *history])
                except asyncio.CancelledError:  # stopped: keep what was said, so the next turn knows
                    if self.context.answer.text:
                        history.append({"role": "assistant", "content": self.context.answer.text + " [stopped]"})
                    raise
                history.append(message)
                calls = message.get("tool_calls") or []
                if not calls:
                    return strip_internal(message.get("content") or "") or None
                for call in calls:
                    history.append({"role": "tool", "tool_call_id": call["id"], "content": await self._run_tool(call)})
            return f"Sorry, I stopped after {config.max_turns} steps without finishing."
        finally:
            self.context.set_state(STATE_KEY, json.dumps(history))

    async def _run_tool(self, call: dict[str, Any]) -> str:
        name = call.get("function", {}).get("name", "")
        raw = call.get("function", {}).get("arguments") or "{}"
        tool = self.tools.get(name)
        if tool is None:
            return f"Error: there is no tool {name!r}; available: {', '.join(self.tools)}"
        try:
            args = json.loads(raw)
        except ValueError as exc:
            return f"Error: the arguments are not valid JSON ({exc.msg} at position {exc.pos}); send them again."
        try:
            return await tool.call(self.context.tool_context, args)
        except ToolError as exc:
            return f"Error: {exc}"

    async def _complete(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """One streamed completion, retried on 429/5xx/connection errors; the assembled assistant message."""
        import httpx

        body = {"model": self.context.config.model or "default", "messages": messages, "stream": True,
                "tools": self._tool_specs(), "max_tokens": MAX_OUTPUT_TOKENS}
        delay = 1.0
        for attempt in range(RETRIES + 1):
            try:
                async with self._client.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code == 200:
                        return await _assemble(response, self.context.answer.update)
                    text = (await response.aread()).decode(errors="replace")[:300]
                    if response.status_code not in (408, 429) and response.status_code < 500:
                        raise ProviderError(f"Sorry, the model endpoint refused the request ({response.status_code}): {text}")
                    retry_after = response.headers.get("retry-after")
                    problem = f"{response.status_code}: {text}"
            except (httpx.TransportError, _StreamCut) as exc:
                retry_after, problem = None, f"{type(exc).__name__}: {exc}"
            if attempt == RETRIES:
                raise ProviderError(f"Sorry, the model endpoint kept failing ({problem}); try again later.")
            wait = min(float(retry_after), 30.0) if retry_after and retry_after.replace(".", "").isdigit() else delay
            await asyncio.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")


class _StreamCut(Exception):
    pass


async def _assemble(response: Any, show: Callable[[str], None]) -> dict[str, Any]:
    """Join streamed deltas: text (shown as it grows), and tool calls whose id/name/arguments come in pieces."""
    content = ""
    calls: dict[int, dict[str, Any]] = {}
    finished = False
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            finished = True
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        for choice in chunk.get("choices", []):
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                content += delta["content"]
                show(content)
            for part in delta.get("tool_calls") or []:
                call = calls.setdefault(part.get("index", 0), {"id": "", "type": "function",
                                                               "function": {"name": "", "arguments": ""}})
                call["id"] = part.get("id") or call["id"]
                fn = part.get("function") or {}
                call["function"]["name"] += fn.get("name") or ""
                call["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finished = True
    if not finished:
        raise _StreamCut("the stream ended before the answer was complete")
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
        for i, call in enumerate(message["tool_calls"]):
            call["id"] = call["id"] or f"call_{i}"
    return message
