"""The claude provider: Claude Code through claude-agent-sdk, one live client per runner.

The NanoClaw tools are an in-process SDK MCP server; Claude Code's own tools
(Bash, Read, Write, Edit, WebFetch, …) run inside the sandbox with permissions
bypassed, because the sandbox is the boundary. MCP servers the owner approved
for the group (add_mcp_server, RunnerConfig.mcp_servers) are added beside it:
stdio ones run inside the sandbox, remote ones go through the vault proxy. The
SDK session id is kept in session_state from a turn's first message, so a restarted runner
resumes the conversation, an interrupted turn's transcript included. Text is shown as the model
writes it (the SDK's partial messages), and a stop is the SDK's interrupt.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from nanoclaw.protocol.formatting import strip_internal
from nanoclaw.protocol.runner_env import RunnerConfig
from nanoclaw.runner.prompt import read_memory, system_prompt
from nanoclaw.runner.providers.base import Provider, ProviderError, Turn
from nanoclaw.runner.tools import Tool, ToolError
from nanoclaw.runner.warmup import WARMUP_PROMPT

STATE_KEY = "claude.session_id"
GLOBAL_MEMORY = "/workspace/global/CLAUDE.md"
GROUP_MEMORY = "/workspace/agent/CLAUDE.md"
MCP_SERVER = "nanoclaw"
CLAUDE_CODE_TOOLS = ["Bash", "Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS", "WebSearch", "WebFetch",
                     "Task", "TodoWrite", "NotebookEdit", "Skill"]
API_ERRORS = {
    401: "the model API rejected the credentials (401): check the API key with the owner",
    403: "the model API refused access (403)",
    429: "the model API is rate limiting us (429); try again in a minute",
    500: "the model API had an internal error (500); try again",
    529: "the model API is overloaded (529); try again shortly",
}


def approved_mcp_servers(config: RunnerConfig) -> dict[str, dict[str, Any]]:
    """The group's approved MCP servers in the SDK's McpServerConfig shape (the host checked them at request)."""
    try:
        raw = json.loads(config.mcp_servers) if config.mcp_servers else {}
    except ValueError:
        return {}
    servers: dict[str, dict[str, Any]] = {}
    for name, server in raw.items() if isinstance(raw, dict) else ():
        if name == MCP_SERVER or not isinstance(server, dict):
            continue  # nothing may stand in for the NanoClaw tools
        if server.get("type") == "stdio" and isinstance(server.get("command"), str):
            servers[name] = {"type": "stdio", "command": server["command"], "args": list(server.get("args") or []),
                             "env": dict(server.get("env") or {})}
        elif server.get("type") in ("http", "sse") and isinstance(server.get("url"), str):
            servers[name] = {"type": server["type"], "url": server["url"]}
    return servers


class ClaudeProvider(Provider):
    name = "claude"
    supports_follow_up = True

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.client: Any = None
        self._pending_results = 0
        self._session_id: str | None = None  # the session's, read at start (a pooled runner has none before)
        self._interrupted = False
        self._text = ""  # the assistant message being written (a new message after a tool call starts over)
        self._global_memory: str | None = None  # what the live client's system prompt carries
        self._warmed_memory: str | None = None  # the group's memory when a pooled client warmed up

    async def prepare(self) -> None:
        # A pooled sandbox: Claude Code started and connected for a fresh conversation of this group and chat
        # kind (its system prompt depends on nothing else), and its first turn done against the sandbox's
        # own stand-in API (runner/warmup.py), so the session's first message is a warm turn.
        await self._connect(resume=None)
        self._warmed_memory = read_memory(GROUP_MEMORY)
        try:
            await self.client.query(WARMUP_PROMPT)
            async for message in self.client.receive_messages():
                if type(message).__name__ == "ResultMessage":
                    if getattr(message, "is_error", False):
                        raise ProviderError(f"warm-up failed: {getattr(message, 'result', '')}")
                    break
        except Exception:
            await self._drop_client()  # start() connects afresh

    async def start(self) -> None:
        resume = self._session_id = self.context.get_state(STATE_KEY)
        stale = (self._global_memory != read_memory(GLOBAL_MEMORY)
                 or (self._warmed_memory is not None and self._warmed_memory != read_memory(GROUP_MEMORY)))
        if self.client is not None and (resume or stale):
            # Claude Code takes the conversation to resume, and the memory in its system prompt and first turn,
            # only as it starts: a session with history, or memory changed while pooled, needs a fresh process.
            await self._drop_client()
        if self.client is None:
            await self._connect(resume=resume)

    def _options(self, resume: str | None = None) -> Any:
        from claude_agent_sdk import ClaudeAgentOptions, create_sdk_mcp_server

        config = self.context.config
        global_memory = self._global_memory = read_memory(GLOBAL_MEMORY)
        server = create_sdk_mcp_server(name=MCP_SERVER, tools=[self._mcp_tool(t) for t in self.context.tools])
        approved = approved_mcp_servers(config)
        env = {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "ENABLE_TOOL_SEARCH": "false",
            "DISABLE_AUTOUPDATER": "1",
            # Claude Code's JavaScript runs interpreted: its JIT's code and profiles cost ~50 MB per runner and
            # buy nothing measurable for an agent that waits on the model (benchmarks/claude_cold.py).
            "BUN_JSC_useJIT": "0",
            "CLAUDE_CODE_MAX_RETRIES": str(config.model_max_retries),
            "ANTHROPIC_API_KEY": os.environ.get("ANTHROPIC_API_KEY", "placeholder-the-host-injects-the-key"),
        }
        return ClaudeAgentOptions(
            cwd=os.getcwd(),
            model=config.model or None,
            system_prompt={"type": "preset", "preset": "claude_code",
                           "append": system_prompt(config, global_memory)},
            permission_mode="bypassPermissions",
            mcp_servers={**approved, MCP_SERVER: server},
            # `mcp__<server>` (no tool part) allows every tool of that server.
            allowed_tools=[f"mcp__{MCP_SERVER}__{t.name}" for t in self.context.tools] + CLAUDE_CODE_TOOLS
            + [f"mcp__{name}" for name in approved],
            resume=resume or None,
            setting_sources=["project"],
            max_turns=config.max_turns,
            include_partial_messages=True,  # stream events: text shown while it is written
            env=env,
        )

    def _mcp_tool(self, spec: Tool) -> Any:
        from claude_agent_sdk import SdkMcpTool

        async def handler(args: dict[str, Any]) -> dict[str, Any]:
            try:
                text = await spec.call(self.context.tool_context, args)
                return {"content": [{"type": "text", "text": text}]}
            except ToolError as exc:
                return {"content": [{"type": "text", "text": f"Error: {exc}"}], "is_error": True}

        return SdkMcpTool(name=spec.name, description=spec.description, input_schema=spec.schema, handler=handler)

    async def _connect(self, resume: str | None) -> None:
        from claude_agent_sdk import ClaudeSDKClient

        self.client = ClaudeSDKClient(options=self._options(resume))
        try:
            await self.client.connect()
        except Exception as exc:
            self.client = None
            raise ProviderError(f"could not start Claude Code: {exc}") from exc

    async def run_turn(self, turn: Turn) -> str | None:
        if self.client is None:
            await self._connect(resume=self.context.get_state(STATE_KEY))
        from claude_agent_sdk import ResultMessage, StreamEvent

        self._pending_results = 1
        self._interrupted = False
        self._text = ""
        try:
            await self.client.query(turn.prompt)
            async for message in self.client.receive_messages():
                self._remember_session(message)
                if isinstance(message, StreamEvent):
                    self._show(message)
                elif isinstance(message, ResultMessage):
                    if self._interrupted:
                        return None  # the runner says it stopped
                    if message.is_error:
                        raise ProviderError(self._describe_error(message))
                    self._pending_results -= 1
                    if self._pending_results <= 0:
                        return message.result
                    # An answer to an earlier part of a turn that took follow-ups: send it now, in place
                    # of what was shown while it was written.
                    if message.result and strip_internal(message.result):
                        stream = self.context.answer.take()
                        self.context.tool_context.write("chat", strip_internal(message.result),
                                                        payload={"stream": stream} if stream else None)
            return None
        except ProviderError:
            raise
        except asyncio.CancelledError:  # stopped without the SDK's help: this client's state is unknown
            await self._drop_client()
            raise
        except Exception as exc:  # the CLI died or the stream broke: start a fresh client next turn
            await self._drop_client()
            raise ProviderError(f"the agent process failed: {type(exc).__name__}: {exc}") from exc

    def _remember_session(self, message: Any) -> None:
        """Keep the SDK session id from the turn's first message on, not only from its result: a runner killed
        mid-turn then resumes the session with the turn's own transcript (prompt, tool calls and results)."""
        data = getattr(message, "data", None)
        session_id = getattr(message, "session_id", None) or (data.get("session_id") if isinstance(data, dict) else None)
        if isinstance(session_id, str) and session_id and session_id != self._session_id:
            self._session_id = session_id
            self.context.set_state(STATE_KEY, session_id)

    def _show(self, message: Any) -> None:
        """A raw API stream event: the main agent's text deltas are the answer being written."""
        if message.parent_tool_use_id is not None:
            return  # a subagent's (Task tool) own stream
        event = message.event if isinstance(message.event, dict) else {}
        if event.get("type") == "message_start":
            self._text = ""
        elif event.get("type") == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self._text += delta["text"]
                self.context.answer.update(self._text)

    async def interrupt(self) -> bool:
        if self.client is None:
            return False
        self._interrupted = True
        try:
            await self.client.interrupt()
        except Exception:
            return False  # the runner cancels the turn instead
        return True

    async def follow_up(self, turn: Turn) -> None:
        if self.client is not None:
            self._pending_results += 1
            await self.client.query(turn.prompt)

    def _describe_error(self, message: Any) -> str:
        status = getattr(message, "api_error_status", None)
        if status in API_ERRORS:
            return f"Sorry, {API_ERRORS[status]}."
        if message.subtype == "error_max_turns":
            return f"Sorry, I stopped after {self.context.config.max_turns} steps without finishing."
        detail = "; ".join(message.errors or []) or message.result or message.subtype
        return f"Sorry, the model call failed: {detail}"

    async def command(self, name: str) -> str:
        if name == "clear":
            self._session_id = None
            self.context.set_state(STATE_KEY, None)
            await self._drop_client()
            await self._connect(resume=None)
            return "Started a fresh conversation."
        if name == "compact":
            result = await self.run_turn(Turn([], "/compact"))
            return result or "Conversation compacted."
        return await super().command(name)

    async def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await client.disconnect()
            except Exception:
                pass

    async def close(self) -> None:
        await self._drop_client()
