"""A fake Anthropic Messages API on 127.0.0.1, for the real Claude Code CLI.

The CLI (driven through ``claude_agent_sdk``) is pointed at it with
``ANTHROPIC_BASE_URL=fake.base_url``; see :func:`cli_env` for the full set of
variables. The server runs on its own event loop in a background thread, so
sync and async tests use it the same way::

    with FakeAnthropic() as fake:
        fake.script(
            Reply.tool("mcp__nanoclaw__send_message", {"text": "hi"}),
            Reply.text("done"),
        )
        ...  # run the CLI with env=cli_env(fake, tmp_path)
        req = fake.main_requests()[-1]
        assert req.tool_results()[0].text == "sent"

Scripting
    ``fake.script(*replies)`` queues replies for *main* requests (see the rule
    below), consumed in order. A reply is a :class:`Reply` (``Reply.text``,
    ``Reply.tool``, ``Reply.of(...)`` for several blocks) or a callable
    ``(Request) -> Reply`` computed when the request arrives. When the script is
    empty ``fake.responder(request)`` answers (default: ``echo: <last user
    text>``). Side requests are answered by ``fake.side_responder`` (default: a
    short fixed text) and never consume the script.

Main vs side requests (the rule)
    The CLI sends more than the conversation through ``POST /v1/messages``.
    Observed with Claude Code 2.1.331: the session-title call
    (``generate_session_title``) has the same model, ``max_tokens`` and
    ``stream: true`` as the conversation, but **no tools** and
    ``output_config.format = {"type": "json_schema", ...}`` (it wants
    ``{"title": ...}``); the quota / model / API-key probes in the binary send
    ``max_tokens: 1`` and no tools. The conversation itself always carries
    Claude Code's tool list (Bash, Read, ..., ``mcp__*``) unless the options say
    ``tools=[]`` with no MCP servers. So, in order:

    1. an ``x-claude-code-request-class`` header, if a CLI build sends it,
       decides (main/subagent/workflow are main; auxiliary, side_reply,
       compaction are side);
    2. a non-empty ``tools`` list: **main**;
    3. ``max_tokens <= 1``: side;
    4. ``output_config.format`` set (JSON-schema output): side;
    5. otherwise **main** (so a tool-less conversation still works).

    Side requests get ``fake.side_responder`` (a value fitting the JSON schema,
    e.g. ``{"title": "Fake title"}``, else the text ``Fake title``) and never
    consume the script or main-only faults. ``side_question`` control requests
    carry the full tool list and count as main. Override with
    ``fake.is_main = callable``.

Inspecting
    ``fake.requests`` (every request, any path, in arrival order),
    ``fake.messages_requests()``, ``fake.main_requests()``,
    ``fake.side_requests()``, ``fake.other_requests()`` (paths other than
    ``/v1/messages``), ``fake.headers_seen(name)``. A :class:`Request` has
    ``path``, ``headers`` (lower-cased names), ``body`` (parsed JSON),
    ``stream``, ``model``, ``is_main`` and helpers ``last_user_text()``,
    ``tool_results()``, ``tool_names()``, ``system_text()``.
    ``fake.wait_for(pred, timeout)`` / ``fake.wait_for_main(n)`` block until
    requests arrive.

Faults
    ``fake.fail_next(status, message=..., retry_after=..., times=1)`` makes the
    next *main* request(s) (``side=True``: the next ``/v1/messages`` request of
    any kind) answer with an Anthropic-shaped JSON error: 401
    authentication_error, 429 rate_limit_error (``retry-after`` header), 500
    api_error, 529 overloaded_error, ... ``fake.cut_next(after_events=N)``
    streams N SSE events of the reply then drops the connection;
    ``fake.stream_error_next(...)`` sends an in-stream ``event: error`` after N
    events, as the real API does for mid-stream overloads. Neither consumes the
    scripted reply, so the CLI's retry gets it whole.
    ``fake.latency`` (seconds, default 0) sleeps before each SSE event.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Union

from aiohttp import web

# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class TextBlock:
    text: str


@dataclass(frozen=True)
class ToolUseBlock:
    name: str
    input: dict[str, Any]
    id: str | None = None  # generated when None


@dataclass(frozen=True)
class ThinkingBlock:
    thinking: str
    signature: str = "fake-signature"


Block = Union[TextBlock, ToolUseBlock, ThinkingBlock]


@dataclass(frozen=True)
class Reply:
    """One assistant message: content blocks plus stop reason and usage."""

    content: tuple[Block, ...]
    stop_reason: str | None = None  # None: "tool_use" if any tool_use block, else "end_turn"
    input_tokens: int | None = None  # None: estimated from the request size
    output_tokens: int | None = None  # None: estimated from the content

    @classmethod
    def text(cls, text: str, **kw: Any) -> Reply:
        return cls((TextBlock(text),), **kw)

    @classmethod
    def tool(cls, name: str, input: dict[str, Any] | None = None, *, text: str | None = None,
             id: str | None = None, **kw: Any) -> Reply:
        """A tool call, optionally preceded by some text ("Let me check...")."""
        blocks: list[Block] = [TextBlock(text)] if text else []
        blocks.append(ToolUseBlock(name, dict(input or {}), id))
        return cls(tuple(blocks), **kw)

    @classmethod
    def tools(cls, *calls: tuple[str, dict[str, Any]], text: str | None = None, **kw: Any) -> Reply:
        """Several parallel tool calls in one message."""
        blocks: list[Block] = [TextBlock(text)] if text else []
        blocks.extend(ToolUseBlock(n, dict(i)) for n, i in calls)
        return cls(tuple(blocks), **kw)

    @classmethod
    def of(cls, *blocks: Block | str, **kw: Any) -> Reply:
        return cls(tuple(TextBlock(b) if isinstance(b, str) else b for b in blocks), **kw)

    @property
    def resolved_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUseBlock) for b in self.content) else "end_turn"


ReplySource = Union[Reply, Callable[["Request"], Reply]]

# --------------------------------------------------------------------------- requests


@dataclass
class ToolResult:
    tool_use_id: str
    content: Any  # str or list of content blocks, as sent
    is_error: bool

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "".join(b.get("text", "") for b in self.content if isinstance(b, dict))
        return ""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    raw: bytes
    body: Any  # parsed JSON, or None
    received_at: float
    is_main: bool = False
    status: int | None = None  # what the fake answered (set once answered)
    cut: bool = False  # the connection was dropped by cut_next()
    reply: Reply | None = None  # the scripted/computed reply, for /v1/messages
    response: dict[str, Any] | None = None  # the Message sent (with generated ids), for /v1/messages

    def tool_use_ids(self) -> list[str]:
        """Ids of the tool_use blocks this request was answered with."""
        return [b["id"] for b in (self.response or {}).get("content", []) if b.get("type") == "tool_use"]

    @property
    def is_messages(self) -> bool:
        return self.method == "POST" and self.path == "/v1/messages"

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    def tool_names(self) -> list[str]:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return [t.get("name", "") for t in tools or [] if isinstance(t, dict)]

    def tool(self, name: str) -> dict[str, Any] | None:
        """The tool definition (name, description, input_schema) the model was offered."""
        for t in (self.body or {}).get("tools") or []:
            if isinstance(t, dict) and t.get("name") == name:
                return t
        return None

    def system_text(self) -> str:
        system = self.body.get("system") if isinstance(self.body, dict) else None
        if isinstance(system, str):
            return system
        return "\n".join(b.get("text", "") for b in system or [] if isinstance(b, dict))

    def user_texts(self) -> list[str]:
        """Text of each user turn (tool_result-only turns give '')."""
        return [_text_of(m.get("content")) for m in self.messages if m.get("role") == "user"]

    def last_user_text(self) -> str:
        """Text of the last user message that has any text (skips pure tool_result turns).

        Claude Code wraps context in ``<system-reminder>`` text blocks; those
        are left out, so this is what the person typed.
        """
        for m in reversed(self.messages):
            if m.get("role") != "user":
                continue
            text = _text_of(m.get("content"), skip_reminders=True)
            if text:
                return text
        return ""

    def tool_results(self) -> list[ToolResult]:
        """tool_result blocks in the last user message (the answers to the previous tool_use)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return [
                    ToolResult(b.get("tool_use_id", ""), b.get("content"), bool(b.get("is_error")))
                    for b in m.get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_result"
                ]
        return []

    def all_tool_results(self) -> list[ToolResult]:
        return [
            ToolResult(b.get("tool_use_id", ""), b.get("content"), bool(b.get("is_error")))
            for m in self.messages if m.get("role") == "user" and isinstance(m.get("content"), list)
            for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"
        ]


def _text_of(content: Any, skip_reminders: bool = False) -> str:
    if isinstance(content, str):
        return "" if skip_reminders and _is_reminder(content) else content
    parts = []
    for b in content or []:
        if isinstance(b, dict) and b.get("type") == "text":
            t = b.get("text", "")
            if not (skip_reminders and _is_reminder(t)):
                parts.append(t)
    return "\n".join(parts)


def _is_reminder(text: str) -> bool:
    return text.lstrip().startswith("<system-reminder>")


def default_is_main(req: Request) -> bool:
    """The main/side rule (see the module docstring)."""
    if not req.is_messages or not isinstance(req.body, dict):
        return False
    request_class = req.headers.get("x-claude-code-request-class")
    if request_class:  # sent by some CLI builds: main|subagent|workflow|compaction|auxiliary|side_reply
        return request_class in ("main", "subagent", "workflow")
    body = req.body
    if body.get("tools"):
        return True
    if (body.get("max_tokens") or 0) <= 1:  # quota / model / API-key probes
        return False
    if (body.get("output_config") or {}).get("format"):  # title generation, classifiers: JSON-schema output
        return False
    return True


def echo_responder(req: Request) -> Reply:
    return Reply.text(f"echo: {req.last_user_text()}")


def side_responder(req: Request) -> Reply:
    """Short fixed text; for JSON-schema requests (e.g. the session title) a JSON value fitting the schema."""
    fmt = ((req.body or {}).get("output_config") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        return Reply.text(json.dumps(_sample(fmt.get("schema") or {}, "Fake title")))
    return Reply.text("Fake title")


def _sample(schema: dict[str, Any], text: str) -> Any:
    t = schema.get("type")
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if t == "object" or "properties" in schema:
        return {k: _sample(v if isinstance(v, dict) else {}, text) for k, v in (schema.get("properties") or {}).items()}
    if t == "array":
        return []
    if t in ("number", "integer"):
        return 0
    if t == "boolean":
        return False
    if t == "null":
        return None
    return text


# --------------------------------------------------------------------------- faults

_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 502: "api_error", 503: "api_error", 529: "overloaded_error",
}


@dataclass
class _Fault:
    kind: str  # "status" | "cut" | "stream_error"
    side: bool  # also applies to side requests
    status: int = 500
    error_type: str = "api_error"
    message: str = "fake error"
    headers: dict[str, str] = field(default_factory=dict)
    after_events: int = 0


# --------------------------------------------------------------------------- server

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):04d}{secrets.token_hex(6)}"


class FakeAnthropic:
    """The fake API. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, *, latency: float = 0.0, model: str | None = None) -> None:
        self.latency = latency
        self.model = model  # None: echo the request's model
        self.responder: Callable[[Request], Reply] = echo_responder
        self.side_responder: Callable[[Request], Reply] = side_responder
        self.is_main: Callable[[Request], bool] = default_is_main
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []  # exceptions raised by reply callables
        self._script: deque[ReplySource] = deque()
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        assert self.port, "FakeAnthropic is not started"
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeAnthropic:
        if self._thread:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as e:  # pragma: no cover - start-up failure
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-anthropic", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if not self._thread or not self._loop:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp keeps the bound socket here
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ scripting

    def script(self, *replies: ReplySource) -> FakeAnthropic:
        """Queue replies for the next main requests, in order."""
        with self._lock:
            self._script.extend(replies)
        return self

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()

    @property
    def pending(self) -> int:
        """Scripted replies not yet consumed."""
        with self._lock:
            return len(self._script)

    def fail_next(self, status: int, message: str | None = None, *, error_type: str | None = None,
                  retry_after: float | None = None, headers: dict[str, str] | None = None,
                  times: int = 1, side: bool = False) -> None:
        """Answer the next ``times`` main requests (``side=True``: any /v1/messages) with an error."""
        h = dict(headers or {})
        if retry_after is not None:
            h["retry-after"] = str(retry_after)
        etype = error_type or _ERROR_TYPES.get(status, "api_error")
        with self._lock:
            for _ in range(times):
                self._faults.append(_Fault("status", side, status, etype, message or f"fake {etype}", h))

    def cut_next(self, after_events: int = 2, *, times: int = 1, side: bool = False) -> None:
        """Send ``after_events`` SSE events of the next main reply, then drop the connection.

        The scripted reply is not consumed: the CLI's retry gets it whole.
        Non-streaming requests are cut before the body.
        """
        with self._lock:
            for _ in range(times):
                self._faults.append(_Fault("cut", side, after_events=after_events))

    def stream_error_next(self, error_type: str = "overloaded_error", message: str = "Overloaded", *,
                          after_events: int = 1, times: int = 1, side: bool = False) -> None:
        """Send ``after_events`` SSE events, then an ``event: error``, then end the stream.

        Like :meth:`cut_next`, the scripted reply is not consumed.
        """
        with self._lock:
            for _ in range(times):
                self._faults.append(_Fault("stream_error", side, 200, error_type, message, after_events=after_events))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._faults.clear()
            self.requests.clear()
            self.errors.clear()

    # ------------------------------------------------------------------ inspecting

    def messages_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.is_messages]

    def main_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.is_messages and r.is_main]

    def side_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.is_messages and not r.is_main]

    def other_requests(self) -> list[Request]:
        """Requests to anything but POST /v1/messages (count_tokens, start-up probes, ...)."""
        with self._lock:
            return [r for r in self.requests if not r.is_messages]

    def last_main(self) -> Request:
        reqs = self.main_requests()
        assert reqs, "no main /v1/messages request received"
        return reqs[-1]

    def headers_seen(self, name: str) -> list[str]:
        """Every value of header ``name`` sent to /v1/messages (e.g. 'x-api-key', 'authorization')."""
        name = name.lower()
        return [r.headers[name] for r in self.messages_requests() if name in r.headers]

    def wait_for(self, predicate: Callable[[list[Request]], bool], timeout: float = 10.0) -> list[Request]:
        """Block (thread-safe; call from a worker thread in async tests) until predicate(requests)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake anthropic: condition not met in {timeout}s; saw {self.summary()}")
                self._cond.wait(left)
            return list(self.requests)

    def wait_for_main(self, n: int = 1, timeout: float = 10.0) -> list[Request]:
        self.wait_for(lambda rs: sum(1 for r in rs if r.is_messages and r.is_main) >= n, timeout)
        return self.main_requests()

    def summary(self) -> list[str]:
        out = []
        for r in list(self.requests):
            tag = ("main" if r.is_main else "side") if r.is_messages else "other"
            out.append(f"{r.method} {r.path} [{tag}] -> {r.status}{' (cut)' if r.cut else ''}")
        return out

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = Request(
            method=request.method, path=request.path, query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()}, raw=raw, body=body,
            received_at=time.time(),
        )
        if req.is_messages:
            try:
                req.is_main = bool(self.is_main(req))
            except Exception as e:  # noqa: BLE001
                self.errors.append(e)
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()
        try:
            if req.is_messages:
                return await self._messages(request, req)
            if request.method == "POST" and req.path == "/v1/messages/count_tokens":
                return self._answer(req, web.json_response({"input_tokens": _estimate_tokens(raw)}))
            # Anything else (start-up probes, telemetry, oauth, models): harmless and recorded.
            if req.path in ("/v1/models",):
                return self._answer(req, web.json_response({"data": [], "has_more": False, "first_id": None, "last_id": None}))
            return self._answer(req, web.json_response({}, status=404 if request.method == "GET" else 200))
        finally:
            with self._cond:
                self._cond.notify_all()

    def _answer(self, req: Request, resp: web.StreamResponse) -> web.StreamResponse:
        req.status = resp.status
        return resp

    def _take(self, req: Request) -> tuple[_Fault | None, ReplySource]:
        with self._lock:
            fault = next((f for f in self._faults if req.is_main or f.side), None)
            if fault is not None:
                self._faults.remove(fault)
            if fault and fault.kind == "status":
                return fault, side_responder
            if req.is_main:
                if fault is not None:  # a cut / stream error: the retry gets the same scripted reply
                    src: ReplySource = self._script[0] if self._script else self.responder
                else:
                    src = self._script.popleft() if self._script else self.responder
            else:
                src = self.side_responder
            return fault, src

    async def _messages(self, request: web.Request, req: Request) -> web.StreamResponse:
        fault, src = self._take(req)
        if fault and fault.kind == "status":
            payload = {"type": "error", "error": {"type": fault.error_type, "message": fault.message},
                       "request_id": _new_id("req")}
            resp = web.json_response(payload, status=fault.status, headers={"request-id": payload["request_id"], **fault.headers})
            return self._answer(req, resp)
        try:
            reply = src if isinstance(src, Reply) else src(req)
        except Exception as e:  # noqa: BLE001 - surface in the test, answer 500 here
            self.errors.append(e)
            payload = {"type": "error", "error": {"type": "api_error", "message": f"fake reply callable failed: {e!r}"}}
            return self._answer(req, web.json_response(payload, status=500))
        req.reply = reply
        message = self._message(req, reply)
        req.response = message
        if not req.stream:
            if fault and fault.kind == "cut":
                req.cut = True
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=200)  # never sent
            return self._answer(req, web.json_response(message, headers={"request-id": _new_id("req")}))

        resp = web.StreamResponse(status=200, headers={
            "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
            "request-id": _new_id("req"),
        })
        req.status = 200
        await resp.prepare(request)
        for n, (event, data) in enumerate(_sse_events(message)):
            if fault and fault.kind in ("cut", "stream_error") and n >= fault.after_events:
                if fault.kind == "cut":
                    req.cut = True
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                err = {"type": "error", "error": {"type": fault.error_type, "message": fault.message}}
                await resp.write(_sse("error", err))
                break
            if self.latency:
                await asyncio.sleep(self.latency)
            await resp.write(_sse(event, data))
        await resp.write_eof()
        return resp

    def _message(self, req: Request, reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for b in reply.content:
            if isinstance(b, TextBlock):
                content.append({"type": "text", "text": b.text})
            elif isinstance(b, ToolUseBlock):
                content.append({"type": "tool_use", "id": b.id or _new_id("toolu"), "name": b.name, "input": b.input})
            elif isinstance(b, ThinkingBlock):
                content.append({"type": "thinking", "thinking": b.thinking, "signature": b.signature})
        out_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, len(json.dumps(content)) // 4)
        in_tokens = reply.input_tokens if reply.input_tokens is not None else _estimate_tokens(req.raw)
        return {
            "id": _new_id("msg"), "type": "message", "role": "assistant",
            "model": self.model or req.model or "claude-fake", "content": content,
            "stop_reason": reply.resolved_stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": in_tokens, "output_tokens": out_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }


def _estimate_tokens(raw: bytes) -> int:
    return max(1, len(raw) // 4)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _chunks(s: str, size: int) -> list[str]:
    return [s[i:i + size] for i in range(0, len(s), size)] or [""]


def _sse_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The event sequence the real API streams for ``message``."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}
            for piece in _chunks(block["text"], 24):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "text_delta", "text": piece}}
        elif block["type"] == "tool_use":
            yield "content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "input_json_delta", "partial_json": ""}}
            for piece in _chunks(json.dumps(block["input"]), 16):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "input_json_delta", "partial_json": piece}}
        elif block["type"] == "thinking":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "signature_delta", "signature": block["signature"]}}
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                            "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


# --------------------------------------------------------------------------- CLI env


def cli_env(fake: FakeAnthropic, home: Path, *, api_key: str = "dummy", max_retries: int | None = None,
            **extra: str) -> dict[str, str]:
    """Environment for the real Claude Code CLI talking to ``fake``, with HOME under ``home``.

    Pass as ``ClaudeAgentOptions(env=cli_env(fake, tmp_path))``.
    """
    home = Path(home)
    config = home / ".claude"
    config.mkdir(parents=True, exist_ok=True)
    env = {
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ENABLE_TOOL_SEARCH": "false",
        "IS_SANDBOX": "1",
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(config),
    }
    if max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    env.update(extra)
    return env


def fake_anthropic_fixture() -> Iterator[FakeAnthropic]:
    """A started fake; fails the test at teardown if a reply callable raised."""
    with FakeAnthropic() as fake:
        yield fake
    assert not fake.errors, f"fake anthropic: reply callables raised {fake.errors!r}"


try:  # importable without pytest; `from tests.fakes.anthropic import fake_anthropic` registers the fixture
    import pytest

    fake_anthropic = pytest.fixture(fake_anthropic_fixture, name="fake_anthropic")
except ImportError:  # pragma: no cover
    pass


__all__ = [
    "FakeAnthropic", "Reply", "Request", "TextBlock", "ToolUseBlock", "ThinkingBlock", "ToolResult",
    "cli_env", "echo_responder", "side_responder", "default_is_main",
]

