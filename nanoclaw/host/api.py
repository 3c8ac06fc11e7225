"""The host's local API: JSON lines on a unix socket in NANOCLAW_HOME, mode 0600.

One request per line, `{"op": ..., ...}`; each gets one reply line
`{"ok": true, ...}` or `{"ok": false, "error": ...}`. A connection may also
receive event lines `{"event": ...}` at any time (subscriptions).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.host.api")
MAX_LINE = 4 * 1024 * 1024

Handler = Callable[[dict[str, Any], "ApiConnection"], Awaitable[dict[str, Any] | None]]


class ApiConnection:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.closed = asyncio.Event()
        self.on_close: list[Callable[[], None]] = []

    def send(self, obj: dict[str, Any]) -> None:
        if self.closed.is_set() or self.writer.is_closing():
            raise ConnectionError("client disconnected")
        self.writer.write(json.dumps(obj).encode() + b"\n")

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            for callback in self.on_close:
                callback()
            self.writer.close()


class LocalApi:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.handlers: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None

    def register(self, op: str, handler: Handler) -> None:
        self.handlers[op] = handler

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        old = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE)
        finally:
            os.umask(old)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        if self.path.exists():
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ApiConnection(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    conn.send({"ok": False, "error": f"request too large (limit {MAX_LINE} bytes)"})
                    break
                if not line:
                    break
                reply = await self._dispatch(line, conn)
                if reply is not None:
                    conn.send(reply)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            conn.close()

    async def _dispatch(self, line: bytes, conn: ApiConnection) -> dict[str, Any] | None:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            return {"ok": False, "error": "malformed request: expected one JSON object per line"}
        op = request.get("op")
        handler = self.handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            return {"ok": False, "error": f"unknown op {op!r}; known: {', '.join(sorted(self.handlers))}"}
        try:
            return await handler(request, conn)
        except Exception as exc:
            log.error("api.handler_failed", op=op, error=f"{type(exc).__name__}: {exc}")
            return {"ok": False, "error": f"{op} failed: {exc}"}
