"""The NanoClaw tools, defined once for every provider (DESIGN §7).

Each tool is a name, a description the model reads, a JSON schema and a
handler. Handlers never touch the outside world: they write rows to
outbound.db for the host to check and perform, and return a short status for
the model. Providers adapt `TOOLS` to their own tool format.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from nanoclaw.protocol.link import AnyRunnerEnd
from nanoclaw.protocol.runner_env import RunnerConfig

MAX_FILE_BYTES = 50 * 1024 * 1024
_B36 = string.digits + string.ascii_lowercase


class ToolError(Exception):
    """Bad arguments or a refused action; the text goes back to the model."""


@dataclass
class ToolContext:
    config: RunnerConfig
    end: AnyRunnerEnd
    ring: Callable[[], None]
    current_seq: Callable[[], int | None]  # the inbound seq being answered
    message_id: Callable[[], str | None] = lambda: None  # the next outbound row's id in the running turn
    questions: dict[str, asyncio.Future[str]] = field(default_factory=dict)
    replies: dict[str, asyncio.Future[str]] = field(default_factory=dict)  # host answers to call_host

    async def call_host(self, action: str, payload: dict[str, Any], timeout: float = 30.0) -> str:
        """Ask the host to perform a system action and wait for its answer (a status or data as text)."""
        request_id = short_id("r-")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.replies[request_id] = future
        try:
            self.write("system", None, payload={**payload, "action": action, "request_id": request_id})
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ToolError(f"the host did not answer {action} in time") from None
        finally:
            self.replies.pop(request_id, None)

    def write(self, kind: str, text: str | None, to: str | None = None, payload: dict[str, Any] | None = None) -> str:
        """One outbound row, committed and rung; returns its id (the handle for edits)."""
        with self.end.transaction():
            seq = self.end.write(
                kind=kind, text=text, route=None if to else self.end.routing(), to_name=to,
                in_reply_to=self.current_seq(), payload=payload, id=self.message_id(),
            )
        self.ring()
        return self.end.message_id(seq)


Handler = Callable[[ToolContext, dict[str, Any]], Awaitable[str]]
CREDENTIAL_WAIT = 660.0  # the form's ten minutes, and some


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]
    handler: Handler
    admin_only: bool = False

    async def call(self, ctx: ToolContext, args: dict[str, Any]) -> str:
        validate(self.schema, args)
        if self.admin_only and not ctx.config.is_admin:
            raise ToolError(f"{self.name} is only available to the admin agent group")
        return await self.handler(ctx, args)


def validate(schema: dict[str, Any], args: Any) -> None:
    """The subset of JSON Schema our tools use: object, required, property types, enums, lengths."""
    if not isinstance(args, dict):
        raise ToolError("arguments must be a JSON object")
    props = schema.get("properties", {})
    missing = [k for k in schema.get("required", []) if k not in args]
    if missing:
        raise ToolError(f"missing required argument(s): {', '.join(missing)}")
    unknown = [k for k in args if k not in props]
    if unknown:
        raise ToolError(f"unknown argument(s): {', '.join(unknown)}; allowed: {', '.join(props)}")
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}
    for key, value in args.items():
        spec = props[key]
        expected = types.get(spec.get("type", ""), object)
        if not isinstance(value, expected) or (spec.get("type") in ("integer", "number") and isinstance(value, bool)):
            raise ToolError(f"argument {key!r} must be of type {spec.get('type')}")
        if "enum" in spec and value not in spec["enum"]:
            raise ToolError(f"argument {key!r} must be one of {spec['enum']}")
        if isinstance(value, str) and len(value) > spec.get("maxLength", 100_000):
            raise ToolError(f"argument {key!r} is longer than {spec['maxLength']} characters")
        if isinstance(value, list):
            if len(value) > spec.get("maxItems", 1000) or len(value) < spec.get("minItems", 0):
                raise ToolError(f"argument {key!r} must have {spec.get('minItems', 0)}–{spec.get('maxItems')} items")
            item_type = types.get(spec.get("items", {}).get("type", ""), object)
            if not all(isinstance(v, item_type) for v in value):
                raise ToolError(f"every item of {key!r} must be of type {spec['items']['type']}")


def _text(desc: str, max_length: int = 100_000) -> dict[str, Any]:
    return {"type": "string", "description": desc, "maxLength": max_length}


_TO = _text("A destination name from list_destinations (e.g. 'family-chat', 'agent:researcher'). "
            "Omit to reply in the current conversation and thread.", 200)


def short_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_B36) for _ in range(8))


async def send_message(ctx: ToolContext, args: dict[str, Any]) -> str:
    message_id = ctx.write("chat", args["text"], to=args.get("to"))
    return f"Message queued for delivery (message_id {message_id})."


async def send_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    source = _checked_path(args["path"])
    message_id = short_id("f-")
    target_dir = ctx.end.folder.outbox / message_id
    target_dir.mkdir(parents=True)
    shutil.copyfile(source, target_dir / source.name, follow_symlinks=False)
    ctx.write("file", args.get("caption"), to=args.get("to"), payload={"file": f"{message_id}/{source.name}"})
    return f"File {source.name} queued for delivery."


def _checked_path(raw: str) -> Path:
    """Only regular files inside the agent or session folder may be sent."""
    path = Path(raw if os.path.isabs(raw) else os.path.join(os.getcwd(), raw))
    resolved = path.resolve()
    roots = [Path("/workspace/agent").resolve(), Path("/workspace").resolve()]
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise ToolError(f"{raw} is outside /workspace; copy the file into /workspace/agent first")
    if not resolved.is_file():
        raise ToolError(f"{raw} is not a file")
    if resolved.stat().st_size > MAX_FILE_BYTES:
        raise ToolError(f"{raw} is larger than {MAX_FILE_BYTES // 1024 // 1024} MB")
    return resolved


async def edit_message(ctx: ToolContext, args: dict[str, Any]) -> str:
    ctx.write("edit", args["text"], payload={"message_id": args["message_id"]})
    return "Edit queued."


async def add_reaction(ctx: ToolContext, args: dict[str, Any]) -> str:
    ctx.write("reaction", None, payload={"message_id": args["message_id"], "emoji": args["emoji"]})
    return "Reaction queued."


async def send_card(ctx: ToolContext, args: dict[str, Any]) -> str:
    payload = {"title": args.get("title"), "buttons": args.get("buttons", [])}
    message_id = ctx.write("card", args["text"], to=args.get("to"), payload=payload)
    return f"Card queued (message_id {message_id})."


async def ask_user_question(ctx: ToolContext, args: dict[str, Any]) -> str:
    question_id = short_id("q-")
    timeout = float(args.get("timeout_seconds", 600))
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    ctx.questions[question_id] = future
    payload = {"question_id": question_id, "options": args.get("options", []), "expires_in": timeout}
    ctx.write("question", args["question"], payload=payload)
    try:
        answer = await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        return "The person did not answer in time; the question expired."
    finally:
        ctx.questions.pop(question_id, None)
    return f"The person answered: {answer}"


async def send_to_agent(ctx: ToolContext, args: dict[str, Any]) -> str:
    agent = args["agent"].removeprefix("agent:")
    ctx.write("chat", args["text"], to=f"agent:{agent}")
    return f"Message sent to agent {agent}; its reply will arrive as a new message."


async def request_credential(ctx: ToolContext, args: dict[str, Any]) -> str:
    return await ctx.call_host("request_credential", dict(args), timeout=CREDENTIAL_WAIT)


async def create_agent(ctx: ToolContext, args: dict[str, Any]) -> str:
    payload = {"id": args["id"], "name": args.get("name") or args["id"], "instructions": args.get("instructions", "")}
    result = await ctx.call_host("create_agent", payload)
    if result.startswith("Asked the owner"):
        return result
    return f"{result}. Reach it with send_to_agent(agent='{args['id']}')."


async def list_destinations(ctx: ToolContext, args: dict[str, Any]) -> str:
    names = sorted(ctx.end.destinations())
    route = ctx.end.routing()
    here = f"{route.channel_type}:{route.platform_id}" if route else "none"
    return json.dumps({"current_conversation": here, "destinations": names})


def _host_action(action: str) -> Handler:
    async def handler(ctx: ToolContext, args: dict[str, Any]) -> str:
        return await ctx.call_host(action, dict(args))

    return handler


async def _host_doctor(ctx: ToolContext, args: dict[str, Any]) -> str:
    return await ctx.call_host("doctor_checks", args, timeout=120.0)  # doctor checks the platforms: slower


_SCHEDULE = {
    "cron": _text("Cron expression in the task's timezone, e.g. '0 8 * * 1' = Mondays 08:00.", 100),
    "interval_seconds": {"type": "number", "description": "Run every N seconds (at least 60)."},
    "at": _text("Run once at this ISO time, e.g. 2026-12-24T18:00.", 40),
    "timezone": _text("IANA timezone, e.g. Europe/Berlin; default the host's.", 64),
}
_TASK_ID = {"task_id": _text("The task id (t-…) from list_tasks.", 20)}

TOOLS: list[Tool] = [
    Tool("send_message", "Send a message now, before your final answer (progress updates), or to another "
         "destination. Your final answer is sent automatically; do not repeat it with this tool.",
         {"type": "object", "properties": {"text": _text("Message text (Markdown)."), "to": _TO}, "required": ["text"]},
         send_message),
    Tool("send_file", "Send a file from /workspace/agent (or the session folder) to the conversation or a destination.",
         {"type": "object", "properties": {"path": _text("Path of the file, relative to /workspace/agent or absolute.", 1000),
                                           "caption": _text("Optional caption.", 4000), "to": _TO}, "required": ["path"]},
         send_file),
    Tool("edit_message", "Replace the text of a message you sent earlier (message_id from send_message/send_card).",
         {"type": "object", "properties": {"message_id": _text("The message_id returned when it was sent.", 200),
                                           "text": _text("New text.")}, "required": ["message_id", "text"]},
         edit_message),
    Tool("add_reaction", "React with an emoji to a message; message_id is the id attribute of an incoming <message> "
         "or one returned by send_message.",
         {"type": "object", "properties": {"message_id": _text("Message id.", 200), "emoji": _text("One emoji.", 32)},
          "required": ["message_id", "emoji"]},
         add_reaction),
    Tool("send_card", "Send a card with a text and buttons (shown as a numbered list where the chat has no buttons). "
         "Use ask_user_question instead when you need the answer.",
         {"type": "object", "properties": {"text": _text("Card body."), "title": _text("Optional title.", 200),
                                           "buttons": {"type": "array", "items": {"type": "string"}, "maxItems": 10,
                                                       "description": "Button labels."}, "to": _TO},
          "required": ["text"]},
         send_card),
    Tool("ask_user_question", "Ask the person a question and WAIT for the answer (buttons for the options, free text "
         "otherwise). Returns their answer, or that it expired.",
         {"type": "object", "properties": {"question": _text("The question.", 4000),
                                           "options": {"type": "array", "items": {"type": "string"}, "maxItems": 10,
                                                       "description": "Possible answers, shown as buttons."},
                                           "timeout_seconds": {"type": "number", "description": "Default 600."}},
          "required": ["question"]},
         ask_user_question),
    Tool("send_to_agent", "Send a message to another agent (see list_destinations for 'agent:<id>' names). Its reply "
         "comes back to you as a new message.",
         {"type": "object", "properties": {"agent": _text("Agent id, e.g. 'researcher'.", 64),
                                           "text": _text("What to tell or ask it.")}, "required": ["agent", "text"]},
         send_to_agent),
    Tool("create_agent", "Create a new agent (its own folder, memory and instructions) that you can then talk to "
         "with send_to_agent. Outside the admin group the owner approves it first.",
         {"type": "object", "properties": {"id": _text("Short id: lowercase letters, digits, - or _.", 40),
                                           "name": _text("Display name.", 100),
                                           "instructions": _text("Its CLAUDE.md: who it is and what it does.", 20000)},
          "required": ["id", "instructions"]},
         create_agent),
    Tool("schedule_task", "Schedule a prompt to run later or repeatedly in this conversation (its result is sent "
         "here). Give exactly one of cron, interval_seconds or at.",
         {"type": "object", "properties": {"prompt": _text("What to do when it runs.", 20000), **_SCHEDULE},
          "required": ["prompt"]},
         _host_action("schedule_task")),
    Tool("list_tasks", "List this agent group's scheduled tasks (id, schedule, next run, status, last result).",
         {"type": "object", "properties": {}}, _host_action("list_tasks")),
    Tool("update_task", "Change a task's prompt and/or schedule.",
         {"type": "object", "properties": {**_TASK_ID, "prompt": _text("New prompt.", 20000), **_SCHEDULE},
          "required": ["task_id"]},
         _host_action("update_task")),
    Tool("pause_task", "Pause a scheduled task.", {"type": "object", "properties": _TASK_ID, "required": ["task_id"]},
         _host_action("pause_task")),
    Tool("resume_task", "Resume a paused task.", {"type": "object", "properties": _TASK_ID, "required": ["task_id"]},
         _host_action("resume_task")),
    Tool("cancel_task", "Cancel a task for good.", {"type": "object", "properties": _TASK_ID, "required": ["task_id"]},
         _host_action("cancel_task")),
    Tool("list_all_tasks", "List the scheduled tasks of every agent group. Admin only.",
         {"type": "object", "properties": {}}, _host_action("list_all_tasks"), admin_only=True),
    Tool("list_groups", "List agent groups and every chat that wrote to the assistant (wired or not), with their "
         "ids. Admin only.", {"type": "object", "properties": {}}, _host_action("list_groups"), admin_only=True),
    Tool("wire_group", "Register a chat (channel:id from list_groups) with an agent group so it answers there, "
         "e.g. to join a group chat. Admin only.",
         {"type": "object", "properties": {
             "chat": _text("channel:platform_id from list_groups.", 300),
             "agent_group": _text("Agent group id; default main.", 40),
             "trigger": {"type": "string", "enum": ["mention", "prefix", "always", "dm"],
                         "description": "mention (default): answer when @named; always; prefix; dm."},
             "trigger_value": _text("The prefix, or another mention word.", 40),
             "session_mode": {"type": "string", "enum": ["shared", "per-thread", "agent-shared"]},
             "sender_policy": {"type": "string", "enum": ["open", "allowlist", "ask"],
                               "description": "who may talk: everyone, listed people, or ask the owner first"}},
          "required": ["chat"]},
         _host_action("wire_group"), admin_only=True),
    Tool("request_credential", "Ask the person for a credential (API key, token) you need. They enter it in a "
         "form; it goes into NanoClaw's vault and is added to your requests to that host automatically - you "
         "never see it. Waits for them; returns saved, rejected, failed: …, or expired.",
         {"type": "object", "properties": {
             "name": _text("Short name, e.g. github.", 64),
             "host_pattern": _text("Host it is for, e.g. api.github.com or *.example.com.", 200),
             "header_name": _text("Request header that carries it (default Authorization).", 64),
             "value_format": _text("Header value with {value}, default 'Bearer {value}'.", 200),
             "description": _text("For the person: what it is and where to get it.", 1000)},
          "required": ["name", "host_pattern", "description"]},
         request_credential),
    Tool("install_packages", "Ask the owner to add Debian packages (apt names) to your sandbox. Returns at once; "
         "if the owner approves, they are there from your next start (podman/docker runtimes only).",
         {"type": "object", "properties": {
             "packages": {"type": "array", "items": {"type": "string", "maxLength": 63}, "minItems": 1,
                          "maxItems": 20, "description": "Debian package names, e.g. ['ripgrep', 'ffmpeg']."},
             "reason": _text("One line for the owner: what you need them for.", 500)},
          "required": ["packages"]},
         _host_action("install_packages")),
    Tool("add_mcp_server", "Ask the owner to add an MCP server to your agent group; its tools are yours from your "
         "next start (claude provider). Either a stdio server that runs inside your sandbox (command + args, e.g. "
         "command 'npx', args ['-y', '@modelcontextprotocol/server-filesystem', '/workspace/agent']) or a remote "
         "one (url, http/https). A remote server's traffic goes through the vault proxy like all your requests: "
         "if it needs a key, ask for it with request_credential (or the owner runs `nanoclaw secrets add`) and the "
         "vault adds the header - never put a secret in url or env (env is stored in clear; names containing "
         "KEY, TOKEN, SECRET or PASSWORD are refused). Returns at once.",
         {"type": "object", "properties": {
             "name": _text("Server name: lowercase letters, digits, - or _ (tools appear as mcp__<name>__…).", 32),
             "command": _text("stdio: the program to run in your sandbox, e.g. npx or python3.", 500),
             "args": {"type": "array", "items": {"type": "string", "maxLength": 1000}, "maxItems": 50,
                      "description": "stdio: its arguments."},
             "env": {"type": "object", "description": "stdio: at most 20 NAME: value pairs (no secrets).",
                     "additionalProperties": {"type": "string"}},
             "url": _text("remote: the server's URL, http:// or https://.", 2000),
             "transport": {"type": "string", "enum": ["http", "sse"],
                           "description": "remote: http (streamable HTTP, the default) or sse."},
             "reason": _text("One line for the owner: what you need it for.", 500)},
          "required": ["name"]},
         _host_action("add_mcp_server")),
    Tool("add_mount", "Give an agent group one of the owner's folders at /workspace/extra/<name> (from its next "
         "start), if the owner's mount allow-list permits it. Admin only.",
         {"type": "object", "properties": {
             "agent_group": _text("Agent group id.", 40), "path": _text("Absolute host path, or ~/...", 1000),
             "writable": {"type": "boolean", "description": "Read-write (only if the allow-list says so)."},
             "name": _text("Name under /workspace/extra/ (default: the folder's name).", 40)},
          "required": ["agent_group", "path"]},
         _host_action("add_mount"), admin_only=True),
    Tool("remove_mount", "Take a folder back from an agent group (by its name under /workspace/extra/). Admin only.",
         {"type": "object", "properties": {"agent_group": _text("Agent group id.", 40),
                                           "name": _text("The mount's name.", 40)},
          "required": ["agent_group", "name"]},
         _host_action("remove_mount"), admin_only=True),
    Tool("host_status", "NanoClaw's own state: uptime, provider, sandbox runtime, each chat channel's connection, "
         "live runners and queue, sessions per agent group. Admin only: for the owner's questions about the "
         "assistant itself (\"why didn't you answer on Telegram?\").",
         {"type": "object", "properties": {}}, _host_action("host_status"), admin_only=True),
    Tool("channel_health", "Each chat channel's connection: connected, retrying (reason, next try) or failed "
         "(reason, fix). Admin only.", {"type": "object", "properties": {}}, _host_action("channel_health"),
         admin_only=True),
    Tool("recent_logs", "The host's latest log events (no message texts, no secrets), newest last. Admin only.",
         {"type": "object", "properties": {
             "level": {"type": "string", "enum": ["info", "warning", "error"],
                       "description": "lowest level shown (default warning)"},
             "contains": _text("Only events containing this, e.g. telegram or email.", 100),
             "limit": {"type": "integer", "description": "at most this many (default 40, at most 100)"}}},
         _host_action("recent_logs"), admin_only=True),
    Tool("doctor_checks", "Run `nanoclaw doctor` on this machine: each check with its fix (sandbox, model key, "
         "channels, disk, service…). Takes a few seconds. Admin only.",
         {"type": "object", "properties": {}}, _host_doctor, admin_only=True),
    Tool("list_destinations", "List where you can send messages: the current conversation and named destinations.",
         {"type": "object", "properties": {}}, list_destinations),
]


def tool_names() -> list[str]:
    return [t.name for t in TOOLS]
