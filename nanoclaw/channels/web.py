"""The web chat: the owner's chat with the assistant in a browser, served by the host's own web server.

One chat (`web:owner`, a DM with the admin group) with threads. Messages live
in `state/web-chat.db`, so the page shows the history when it opens and a reply
sent while no page is open is simply there later: sending never waits for a
browser. Open pages get live events over a WebSocket (messages, edits,
reactions, typing). Routes are owner-only (login cookie and CSRF checked by the
host's web server).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import sqlite3
import time
import uuid
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from nanoclaw.channels.base import (
    Capabilities,
    Channel,
    FileAttachment,
    InboundEvent,
    OutgoingMessage,
    SendResult,
)
from nanoclaw.channels.text import split_message, to_html
from nanoclaw.host.attachments import MAX_INBOUND_FILE, safe_file_name
from nanoclaw.host.bootstrap import WEB_CHAT
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.channels.web")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    outgoing_id TEXT UNIQUE,              -- the host's id of what it sent (exactly-once after a crash)
    thread_id   TEXT,
    author      TEXT NOT NULL,            -- owner | assistant
    kind        TEXT NOT NULL,            -- chat | system | card | question | file
    text        TEXT NOT NULL DEFAULT '',
    title       TEXT,
    buttons     TEXT,                     -- JSON list of labels
    card_id     TEXT,
    answer      TEXT,                     -- the button pressed
    form_url    TEXT,                     -- credential form, opened in a modal
    file_id     TEXT,
    file_name   TEXT,
    reactions   TEXT NOT NULL DEFAULT '[]',
    edited      INTEGER NOT NULL DEFAULT 0,
    status      TEXT,                     -- owner messages: done | failed once the agent is through
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread_id, seq);
CREATE TABLE IF NOT EXISTS files (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    mime_type  TEXT,
    data       BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""
PAGE_SIZE = 200


class WebChatStore:
    """The web chat's own SQLite file."""

    def __init__(self, path: Any) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)

    def add(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("id", f"w{uuid.uuid4().hex[:16]}")
        fields["created_at"] = time.time()
        if "buttons" in fields:
            fields["buttons"] = json.dumps(list(fields["buttons"])) if fields["buttons"] else None
        names = ", ".join(fields)
        self.conn.execute(f"INSERT INTO messages ({names}) VALUES ({', '.join('?' * len(fields))})",
                          tuple(fields.values()))
        return self.get(fields["id"])  # type: ignore[return-value]

    def get(self, message_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return _public(row) if row else None

    def by_outgoing(self, outgoing_id: str) -> str | None:
        row = self.conn.execute("SELECT id FROM messages WHERE outgoing_id = ?", (outgoing_id,)).fetchone()
        return row["id"] if row else None

    def history(self, thread_id: str | None, before: int | None = None) -> list[dict[str, Any]]:
        where = "thread_id IS NULL" if thread_id is None else "thread_id = ?"
        args: list[Any] = [] if thread_id is None else [thread_id]
        if before is not None:
            where += " AND seq < ?"
            args.append(before)
        rows = self.conn.execute(f"SELECT * FROM messages WHERE {where} ORDER BY seq DESC LIMIT {PAGE_SIZE}", args)
        messages = [_public(r) for r in rows][::-1]
        if thread_id is None:
            counts = dict(self.conn.execute("SELECT thread_id, COUNT(*) FROM messages WHERE thread_id IS NOT NULL "
                                            "GROUP BY thread_id").fetchall())
            for m in messages:
                m["replies"] = counts.get(m["id"], 0)
        return messages

    def update(self, message_id: str, **fields: Any) -> dict[str, Any] | None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*fields.values(), message_id))
        return self.get(message_id)

    def add_file(self, name: str, data: bytes, mime_type: str | None) -> str:
        file_id = f"f{uuid.uuid4().hex[:16]}"
        self.conn.execute("INSERT INTO files (id, name, mime_type, data, created_at) VALUES (?,?,?,?,?)",
                          (file_id, name, mime_type, data, time.time()))
        return file_id

    def file(self, file_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.conn.close()


def _public(row: sqlite3.Row) -> dict[str, Any]:
    m = dict(row)
    m["buttons"] = json.loads(m["buttons"]) if m["buttons"] else []
    m["reactions"] = json.loads(m["reactions"])
    m["html"] = to_html(m["text"]) if m["text"] else ""
    m.pop("outgoing_id", None)
    return m


class WebChannel(Channel):
    type = "web"
    local = True
    capabilities = Capabilities(
        threads=True, edits=True, reactions=True, cards=True, modals=True, typing=True, files=True,
        max_message_length=100_000,
        formatting="Web chat renders Markdown (CommonMark): **bold**, _italic_, `code`, lists, links, code blocks.",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.store: WebChatStore | None = None
        self.sockets: set[web.WebSocketResponse] = set()
        self.typing: dict[str | None, bool] = {}
        self.chat = WEB_CHAT

    async def start(self) -> None:
        state = self.host.settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.store = WebChatStore(state / "web-chat.db")
        page = self.host.register_page
        page("GET", "/", self._index)
        page("GET", "/static/{name}", self._static)
        page("GET", "/api/chat/messages", self._history)
        page("POST", "/api/chat/messages", self._post)
        page("POST", "/api/chat/cards/{card_id}", self._press)
        page("GET", "/api/chat/files/{file_id}", self._download)
        page("GET", "/api/chat/events", self._events)

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self.store is not None:
            self.store.close()

    # -- the host's side ---------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        store = self._store()
        fields: dict[str, Any] = dict(outgoing_id=message.id, thread_id=message.route.thread_id, author="assistant",
                                      kind=message.kind, text=message.text or "")
        if message.kind in ("card", "question"):
            fields.update(title=message.title, buttons=message.buttons, card_id=message.card_id,
                          form_url=_local_url(message.payload.get("form_url")))
        if message.file is not None:
            fields.update(file_id=store.add_file(message.file.name, message.file.data, message.file.mime_type),
                          file_name=message.file.name)
        existing = store.by_outgoing(message.id)
        if existing is not None:  # a retry of what is already in the chat
            return SendResult(existing)
        limit = (self.capabilities.max_message_length or 100_000) * 9 // 10  # room for the rendered markup
        pieces = split_message(fields["text"], limit) if len(fields["text"]) > limit else [fields["text"]]
        first: str | None = None
        for n, piece in enumerate(pieces):
            row = store.add(**{**fields, "text": piece, "outgoing_id": message.id if n == 0 else f"{message.id}#{n}"})
            self._broadcast({"type": "message", "message": row})
            first = first or row["id"]
        return SendResult(first)

    async def already_sent(self, route: Route, message_id: str) -> str | None:
        return self._store().by_outgoing(message_id)

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        row = self._store().update(platform_message_id, text=text, edited=1)
        if row is not None:
            self._broadcast({"type": "message", "message": row})

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        store = self._store()
        row = store.get(platform_message_id)
        if row is None or emoji in row["reactions"]:
            return
        row = store.update(platform_message_id, reactions=json.dumps([*row["reactions"], emoji]))
        self._broadcast({"type": "message", "message": row})

    async def set_typing(self, route: Route, on: bool) -> None:
        self.typing[route.thread_id] = on  # a page opened mid-turn learns it on connect
        self._broadcast({"type": "typing", "thread_id": route.thread_id, "on": on})

    async def processed(self, route: Route, message_ids: list[str], status: str) -> None:
        store = self._store()
        for message_id in message_ids:
            row = store.update(message_id, status=status) if store.get(message_id) else None
            if row is not None:
                self._broadcast({"type": "message", "message": row})

    # -- the page's side ---------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        page = resources.files("nanoclaw.webui").joinpath("index.html").read_text()
        return web.Response(text=page, content_type="text/html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kinds = {".js": "text/javascript", ".css": "text/css"}
        suffix = name[name.rfind("."):] if "." in name else ""
        if suffix not in kinds or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            data = resources.files("nanoclaw.webui").joinpath(name).read_bytes()
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(body=data, content_type=kinds[suffix])

    async def _history(self, request: web.Request) -> web.StreamResponse:
        thread = request.query.get("thread") or None
        before = request.query.get("before")
        if before is not None and not before.isdigit():
            return _error(400, "before must be a message seq number")
        messages = self._store().history(thread, int(before) if before else None)
        return web.json_response({"messages": messages, "assistant": self.host.settings.assistant_name})

    async def _post(self, request: web.Request) -> web.StreamResponse:
        text, thread, files = await self._read_post(request)
        if isinstance(text, web.StreamResponse):
            return text
        store = self._store()
        if thread is not None and store.get(thread) is None:
            return _error(400, "no such thread")
        stored_files = [(store.add_file(f.name, f.data, f.mime_type), f.name) for f in files]
        row = store.add(thread_id=thread, author="owner", kind="file" if files and not text else "chat", text=text,
                        file_id=stored_files[0][0] if stored_files else None,
                        file_name=", ".join(n for _, n in stored_files) or None)
        self._broadcast({"type": "message", "message": row})
        result = await self.host.receive(InboundEvent(
            channel_type=self.type, platform_id=self.chat, message_id=row["id"], text=text, sender_id=WEB_CHAT,
            sender_name="Owner", thread_id=thread, is_dm=True, chat_name="Web chat", files=tuple(files),
        ))
        if not result.accepted:
            row = store.update(row["id"], status="rejected")
            self._broadcast({"type": "message", "message": row})
            return web.json_response({"message": row, "error": result.error}, status=422)
        return web.json_response({"message": row, "triggered": result.triggered, "reply": result.reply})

    async def _read_post(self, request: web.Request) -> tuple[Any, str | None, list[FileAttachment]]:
        files: list[FileAttachment] = []
        if request.content_type == "multipart/form-data":
            text, thread = "", None
            reader = await request.multipart()
            async for part in reader:
                if part.name == "text":
                    text = await part.text()
                elif part.name == "thread_id":
                    thread = (await part.text()) or None
                elif part.name == "file" and part.filename:
                    data = await part.read(decode=False)
                    if len(data) > MAX_INBOUND_FILE:
                        return _error(413, f"files are limited to {MAX_INBOUND_FILE // 2**20} MB"), None, []
                    name = safe_file_name(part.filename)
                    files.append(FileAttachment(name, bytes(data), part.headers.get("Content-Type")
                                                or mimetypes.guess_type(name)[0]))
        elif request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            text, thread = str(form.get("text", "")), str(form.get("thread_id", "")) or None
        else:
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _error(400, "expected JSON {\"text\": …} or a multipart form"), None, []
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                return _error(400, "expected JSON {\"text\": …}"), None, []
            text, thread = body["text"], body.get("thread_id") or None
            if thread is not None and not isinstance(thread, str):
                return _error(400, "thread_id must be a string"), None, []
        if not text.strip() and not files:
            return _error(400, "the message is empty"), None, []
        return text, thread, files

    async def _press(self, request: web.Request) -> web.StreamResponse:
        card_id = request.match_info["card_id"]
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "expected JSON {\"value\": …}")
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            return _error(400, "expected JSON {\"value\": …}")
        row = self._store().conn.execute("SELECT id, buttons FROM messages WHERE card_id = ?", (card_id,)).fetchone()
        if row is None or value not in json.loads(row["buttons"] or "[]"):
            return _error(404, "no such card or button")
        error = await self.host.answer(card_id, value, WEB_CHAT)
        if error:
            return _error(409, error)
        updated = self._store().update(row["id"], answer=value)
        self._broadcast({"type": "message", "message": updated})
        return web.json_response({"ok": True})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        row = self._store().file(request.match_info["file_id"])
        if row is None:
            raise web.HTTPNotFound()
        name = safe_file_name(row["name"])
        return web.Response(body=row["data"], content_type="application/octet-stream", headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(name)}"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        self.sockets.add(ws)
        for thread_id, on in self.typing.items():
            if on:
                await ws.send_str(json.dumps({"type": "typing", "thread_id": thread_id, "on": True}))
        try:
            async for msg in ws:  # the page only listens; anything it sends is ignored
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets.discard(ws)
        return ws

    # -- helpers -------------------------------------------------------------------------

    def _store(self) -> WebChatStore:
        if self.store is None:
            raise RuntimeError("web channel not started")
        return self.store

    def _broadcast(self, event: dict[str, Any]) -> None:
        data = json.dumps(event)
        for ws in list(self.sockets):
            if ws.closed:
                self.sockets.discard(ws)
                continue
            task = asyncio.ensure_future(ws.send_str(data))
            task.add_done_callback(lambda t: t.exception())  # a closing socket is not an error


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def _local_url(url: Any) -> str | None:
    """Only links to the host's own forms open in the page's modal."""
    return url if isinstance(url, str) and url.startswith("http://") and "/credentials/" in url else None


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
