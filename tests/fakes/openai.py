"""A fake OpenAI-compatible Chat Completions server on 127.0.0.1 (what Ollama, vLLM or OpenRouter speak).

    with FakeOpenAI() as fake:
        fake.script(Step.call("bash", {"command": "ls"}), Step.say("done"))
        ... point the provider at fake.base_url ...
        fake.requests[-1].messages

Replies stream as the real API does (`data: {chunk}` lines, `data: [DONE]`); a
tool call's arguments are split across several chunks. When the script is
empty, `fake.responder(request)` answers (default: echo the last user text).
Faults: `fail_next(status, times=, retry_after=)`, `cut_next()`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

_ids = itertools.count(1)


@dataclass(frozen=True)
class Step:
    text: str | None = None
    calls: tuple[tuple[str, str], ...] = ()  # (name, raw JSON arguments)
    tokens: int = 0  # >0: the text streams as this many chunks…
    seconds: float = 0.0  # …evenly over this long (a model writing)

    @classmethod
    def say(cls, text: str) -> Step:
        return cls(text=text)

    @classmethod
    def stream(cls, text: str, tokens: int, seconds: float) -> Step:
        """`text` in `tokens` chunks over `seconds`, the first at once."""
        return cls(text=text, tokens=tokens, seconds=seconds)

    @classmethod
    def call(cls, name: str, args: dict[str, Any] | str, text: str | None = None) -> Step:
        """A tool call; pass a str for raw (possibly malformed) arguments."""
        raw = args if isinstance(args, str) else json.dumps(args)
        return cls(text=text, calls=((name, raw),))


@dataclass
class ChatRequest:
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    def last_user_text(self) -> str:
        users = [m for m in self.messages if m.get("role") == "user"]
        return str(users[-1].get("content", "")) if users else ""

    def tool_results(self) -> list[str]:
        """Contents of the tool messages after the last assistant tool call."""
        out = []
        for m in reversed(self.messages):
            if m.get("role") != "tool":
                break
            out.insert(0, str(m.get("content", "")))
        return out


@dataclass
class FakeOpenAI:
    requests: list[ChatRequest] = field(default_factory=list)
    responder: Callable[[ChatRequest], Step] = lambda req: Step.say("echo: " + req.last_user_text()[-200:])

    first_token_at: list[float] = field(default_factory=list)  # time.time() of each reply's first text chunk
    disconnects: int = 0  # replies the client stopped reading before their end (a cancelled stream)

    def __post_init__(self) -> None:
        self._script: deque[Step | Callable[[ChatRequest], Step]] = deque()
        self._faults: deque[tuple[str, int, float | None]] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *steps: Step | Callable[[ChatRequest], Step]) -> FakeOpenAI:
        with self._lock:
            self._script.extend(steps)
        return self

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        with self._lock:
            self._faults.extend([("status", status, retry_after)] * times)

    def cut_next(self, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([("cut", 0, None)] * times)

    def __enter__(self) -> FakeOpenAI:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._handle)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        req = ChatRequest({k.lower(): v for k, v in request.headers.items()}, await request.json())
        with self._lock:
            self.requests.append(req)
            fault = self._faults.popleft() if self._faults else None
            step = self._script.popleft() if self._script and fault is None else None
        if fault and fault[0] == "status":
            headers = {"retry-after": str(fault[2])} if fault[2] is not None else {}
            return web.json_response({"error": {"message": f"fake error {fault[1]}"}}, status=fault[1], headers=headers)
        if step is None and not fault:
            step = self.responder(req)
        elif callable(step):
            step = step(req)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        if fault and fault[0] == "cut":
            await response.write(_chunk({"content": "half an ans"}))
            request.transport.close()  # type: ignore[union-attr]
            return response
        assert isinstance(step, Step)
        text = step.text or ""
        size = -(-len(text) // step.tokens) if step.tokens else 8
        start = time.monotonic()
        try:
            for i, piece in enumerate(_pieces(text, size)):
                if step.tokens:
                    await asyncio.sleep(max(0.0, start + step.seconds * i / step.tokens - time.monotonic()))
                await response.write(_chunk({"content": piece}))
                if i == 0:
                    self.first_token_at.append(time.time())
        except (ConnectionResetError, ConnectionError):
            self.disconnects += 1
            return response
        for index, (name, raw) in enumerate(step.calls):
            call_id = f"call_{next(_ids)}"
            await response.write(_chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                                        "function": {"name": name, "arguments": ""}}]}))
            for piece in _pieces(raw, 5):  # arguments arrive in fragments, as from real servers
                await response.write(_chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        await response.write(_chunk({}, finish="tool_calls" if step.calls else "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()
