"""A fake signal-cli daemon in HTTP mode (`signal-cli -a +N daemon --http`) on 127.0.0.1.

Serves what signal-cli serves (man signal-cli-jsonrpc(5)): `POST /api/v1/rpc` (JSON-RPC 2.0:
send, sendTyping, sendReaction, getAttachment, listGroups), `GET /api/v1/events` (Server-Sent
Events `event:receive` whose data is `{"envelope": …, "account": …}`, with ids and
`Last-Event-ID` replay) and `GET /api/v1/check`. Errors have signal-cli's codes and shapes
(-1 user error with `data.response.results`, -32601 unknown method, …).

It records what the bot sent. Styled ranges (`textStyle` "start:length:STYLE", UTF-16 units)
are rendered into the recorded text as markers, e.g. BOLD → ⟦b⟧…⟦/b⟧, so tests can assert them.
Tests act as people through `incoming` (an envelope as signal-cli would emit it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

STYLE_MARKS = {"BOLD": "b", "ITALIC": "i", "STRIKETHROUGH": "s", "MONOSPACE": "m", "SPOILER": "sp"}
_NUMBER = re.compile(r"\+[1-9]\d{6,14}")
_DATA_URI = re.compile(r"data:(?P<mime>[^;,]+)(?:;filename=(?P<name>[^;,]*))?;base64,(?P<data>.*)", re.S)


def render_styles(text: str, styles: list[str]) -> str:
    """Insert ⟦x⟧…⟦/x⟧ markers for each "start:length:STYLE" range (UTF-16 offsets, as Signal counts)."""
    boundaries = [0]  # code-point index → UTF-16 offset of its start
    for char in text:
        boundaries.append(boundaries[-1] + (2 if ord(char) > 0xFFFF else 1))
    at: dict[int, list[str]] = {}
    for spec in styles:
        start, length, style = spec.split(":", 2)
        mark = STYLE_MARKS[style]
        begin, end = boundaries.index(int(start)), boundaries.index(int(start) + int(length))
        at.setdefault(begin, []).append(f"⟦{mark}⟧")
        at.setdefault(end, []).insert(0, f"⟦/{mark}⟧")
    out = []
    for i, char in enumerate(text):
        out.extend(at.get(i, []))
        out.append(char)
    out.extend(at.get(len(text), []))
    return "".join(out)


@dataclass
class Sent:
    """One message the bot sent, as recorded."""

    timestamp: int
    chat: str  # "group:<id>" or the recipient's number
    text: str  # with style markers
    styles: list[str]
    attachments: list[tuple[str | None, str, bytes]] = field(default_factory=list)  # (filename, mime, data)
    edits: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class FakeSignalDaemon:
    def __init__(self, account: str, account_uuid: str) -> None:
        self.account = account
        self.account_uuid = account_uuid
        self.groups: dict[str, str] = {}  # group id → name
        self.unregistered: set[str] = set()
        self.attachments: dict[str, bytes] = {}
        self.sent: list[Sent] = []
        self.typing: list[tuple[str, bool]] = []  # (chat, stop)
        self.reactions: dict[str, list[str]] = {}  # "<author>:<timestamp>" → emojis
        self.rpc_log: list[dict[str, Any]] = []
        self.down = False  # Signal's servers unreachable: sends fail with NETWORK_FAILURE
        self.http_status: int | None = None  # answer every RPC with this HTTP status instead
        self._events: list[tuple[int, str]] = []  # (id, data) the last 1000, for Last-Event-ID
        self._streams: set[asyncio.Queue[tuple[int, str] | None]] = set()
        self._stream_connects = 0
        self._clock = int(time.time() * 1000)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stream_connects(self) -> int:
        return self._stream_connects

    async def start(self) -> None:
        app = web.Application(client_max_size=200 * 2**20)
        app.router.add_post("/api/v1/rpc", self._rpc)
        app.router.add_get("/api/v1/events", self._events_stream)
        app.router.add_get("/api/v1/check", self._check)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.drop_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def timestamp(self) -> int:
        """Signal timestamps are milliseconds; ours are unique and increasing."""
        self._clock = max(self._clock + 1, int(time.time() * 1000))
        return self._clock

    # ---- the person's side ---------------------------------------------------------------

    def emit(self, data: str) -> None:
        """Push one raw `receive` event to every connected stream (and the replay buffer)."""
        event_id = (self._events[-1][0] + 1) if self._events else 1
        self._events = [*self._events[-999:], (event_id, data)]
        for queue in list(self._streams):
            queue.put_nowait((event_id, data))

    def incoming(self, envelope: dict[str, Any]) -> None:
        self.emit(json.dumps({"envelope": envelope, "account": self.account}))

    def drop_streams(self) -> None:
        for queue in list(self._streams):
            queue.put_nowait(None)
        self._streams.clear()

    async def wait_streams(self, count: int = 1, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self._streams) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} event streams, got {len(self._streams)}")
            await asyncio.sleep(0.02)

    # ---- HTTP ----------------------------------------------------------------------------

    async def _events_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
        last = request.headers.get("Last-Event-ID")
        if last is not None:
            known = [i for i, _ in self._events]
            after = int(last) if last.isdigit() and int(last) in known else 0
            for item in self._events:
                if item[0] > after:
                    queue.put_nowait(item)
        self._streams.add(queue)
        self._stream_connects += 1
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), 15.0)
                except asyncio.TimeoutError:
                    await response.write(b":\n")  # signal-cli's keep-alive
                    continue
                if item is None:
                    break
                event_id, data = item
                await response.write(f"id:{event_id}\nevent:receive\ndata:{data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(queue)
        return response

    async def _check(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _rpc(self, request: web.Request) -> web.Response:
        if self.http_status is not None:
            return web.Response(status=self.http_status)
        if not (request.content_type or "").startswith("application/json"):
            return web.Response(status=415)
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.json_response({"jsonrpc": "2.0", "id": None,
                                      "error": {"code": -32700, "message": "Parse error", "data": None}})
        self.rpc_log.append(body)
        method, params, rid = body.get("method"), body.get("params") or {}, body.get("id")
        handler = getattr(self, f"_m_{method}", None)
        try:
            if handler is None:
                raise RpcError(-32601, "Method not implemented")
            result = handler(params)
        except RpcError as exc:
            return web.json_response({"jsonrpc": "2.0", "id": rid,
                                      "error": {"code": exc.code, "message": exc.message, "data": exc.data}})
        return web.json_response({"jsonrpc": "2.0", "id": rid, "result": result})

    # ---- JSON-RPC methods ----------------------------------------------------------------

    def _chat(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """The chat a request names, and the per-recipient results signal-cli would report."""
        group, recipients = params.get("groupId"), params.get("recipient")
        if isinstance(recipients, str):
            recipients = [recipients]
        if group:
            if group not in self.groups:
                raise RpcError(-1, "Group not found: " + str(group))
            return f"group:{group}", [{"recipientAddress": {"number": self.account}, "groupId": group}]
        if not recipients:
            raise RpcError(-1, "No recipients given")
        for r in recipients:
            if not _NUMBER.fullmatch(r) or r in self.unregistered:
                raise RpcError(-1, f"The user {r} is not registered.")
        return recipients[0], [{"recipientAddress": {"number": r}} for r in recipients]

    def _results(self, results: list[dict[str, Any]], timestamp: int) -> dict[str, Any]:
        if self.down:
            failed = [{**r, "type": "NETWORK_FAILURE"} for r in results]
            raise RpcError(-1, "Failed to send message", {"response": {"timestamp": timestamp, "results": failed}})
        return {"timestamp": timestamp, "results": [{**r, "type": "SUCCESS"} for r in results]}

    def _m_send(self, params: dict[str, Any]) -> dict[str, Any]:
        chat, results = self._chat(params)
        styles = params.get("textStyle", params.get("textStyles", []))
        styles = [styles] if isinstance(styles, str) else list(styles)
        for spec in styles:
            if not re.fullmatch(r"\d+:\d+:(BOLD|ITALIC|SPOILER|STRIKETHROUGH|MONOSPACE)", spec):
                raise RpcError(-1, f"Invalid textStyle syntax ({spec}) expected 'start:length:STYLE'")
        text = params.get("message") or ""
        rendered = render_styles(text, styles)
        timestamp = self.timestamp()
        reply = self._results(results, timestamp)
        if "editTimestamp" in params:
            edited = int(params["editTimestamp"])
            target = next((m for m in self.sent if m.timestamp == edited and m.chat == chat), None)
            if target is None:
                raise RpcError(-1, "Failed to send message")
            target.edits.append(rendered)
            return reply
        attachments = params.get("attachments", params.get("attachment", []))
        attachments = [attachments] if isinstance(attachments, str) else list(attachments)
        files = []
        for uri in attachments:
            match = _DATA_URI.fullmatch(uri)
            if match is None:
                raise RpcError(-1, "Invalid attachment syntax")
            name = urllib.parse.unquote(match["name"]) if match["name"] is not None else None  # as signal-cli does
            files.append((name, match["mime"], base64.b64decode(match["data"])))
        self.sent.append(Sent(timestamp, chat, rendered, styles, files, raw=params))
        return reply

    def _m_sendTyping(self, params: dict[str, Any]) -> dict[str, Any]:
        chat, _ = self._chat(params)
        self.typing.append((chat, bool(params.get("stop"))))
        return {}

    def _m_sendReaction(self, params: dict[str, Any]) -> dict[str, Any]:
        _, results = self._chat(params)
        emoji, author, ts = params.get("emoji"), params.get("targetAuthor"), params.get("targetTimestamp")
        if not emoji or not author or not isinstance(ts, int):
            raise RpcError(-32602, "emoji, targetAuthor and targetTimestamp are required")
        reply = self._results(results, self.timestamp())
        self.reactions.setdefault(f"{author}:{ts}", []).append(emoji)
        return reply

    def _m_getAttachment(self, params: dict[str, Any]) -> dict[str, Any]:
        data = self.attachments.get(str(params.get("id")))
        if data is None:
            raise RpcError(-1, f"Could not find attachment with ID: {params.get('id')}")
        return {"data": base64.b64encode(data).decode()}

    def _m_listGroups(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"id": gid, "name": name, "isMember": True, "isBlocked": False, "members": [self.account]}
                for gid, name in self.groups.items()]
