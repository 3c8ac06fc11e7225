"""The web chat: the owner's chat with the assistant in a browser, served by the host's own web server.

One chat (`web:owner`, a DM with the admin group) whose conversations are its
threads, each its own agent session. Messages live in `state/web-chat.db`
(web_store), so sending never waits for a browser. Open pages get live events
over one WebSocket: messages, states, the reply being written, typing,
conversations, and (when asked) the dashboard's state. Routes are owner-only
(login cookie and CSRF checked by the host's web server).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

from nanoclaw.channels.base import (
    Capabilities,
    Channel,
    FileAttachment,
    InboundEvent,
    OutgoingMessage,
    SendResult,
)
from nanoclaw.channels.text import split_message
from nanoclaw.channels.web_store import MAIN, PREVIEW_TYPES, WebChatStore, title_for
from nanoclaw.host.attachments import MAX_INBOUND_FILE, safe_file_name
from nanoclaw.host.bootstrap import WEB_CHAT
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

if TYPE_CHECKING:
    from aiohttp import WSMsgType, web

log = get_logger("nanoclaw.channels.web")

_STATIC = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")
_KINDS = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
_NEW_CONVERSATION = re.compile(r"^c[0-9a-f]{12}$")  # an id the page made while offline
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TOPICS = frozenset({"chat", "dashboard"})


class WebChannel(Channel):
    type = "web"
    local = True
    capabilities = Capabilities(
        threads=True, edits=True, reactions=True, cards=True, modals=True, typing=True, files=True,
        max_message_length=100_000, live_partials=True,
        formatting="Web chat renders Markdown (CommonMark): **bold**, _italic_, `code`, lists, links, tables, "
                   "code blocks with a language for highlighting.",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.store: WebChatStore | None = None
        self.sockets: dict[web.WebSocketResponse, set[str]] = {}  # each page's topics
        self.typing: dict[str | None, bool] = {}
        self.partials: dict[str, tuple[str | None, str]] = {}  # stream id → (thread, text): for pages opened now
        self.chat = WEB_CHAT
        self.on_subscribe: dict[str, Callable[[], dict[str, Any]]] = {}  # topic → its current state, for a new page

    async def start(self) -> None:
        state = self.host.settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.store = WebChatStore(state / "web-chat.db")
        page = self.host.register_page
        page("GET", "/", self._index)
        page("GET", "/static/{name}", self._static)
        page("GET", "/api/chat/messages", self._history)
        page("POST", "/api/chat/messages", self._post)
        page("POST", "/api/chat/stop", self._stop)
        page("POST", "/api/chat/cards/{card_id}", self._press)
        page("GET", "/api/chat/files/{file_id}", self._download)
        page("GET", "/api/chat/conversations", self._conversations)
        page("POST", "/api/chat/conversations", self._new_conversation)
        page("PATCH", "/api/chat/conversations/{id}", self._rename)
        page("DELETE", "/api/chat/conversations/{id}", self._delete)
        page("GET", "/api/chat/events", self._events)

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self.store is not None:
            self.store.close()

    # -- the host's side ---------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        store = self._store()
        existing = store.by_outgoing(message.id)
        if existing is not None:  # a retry of what is already in the chat
            return SendResult(existing)
        thread = self._conversation_for(message.route.thread_id)
        fields: dict[str, Any] = dict(outgoing_id=message.id, thread_id=thread, author="assistant",
                                      kind=message.kind, text=message.text or "")
        if message.kind in ("card", "question"):
            fields.update(title=message.title, buttons=message.buttons, card_id=message.card_id,
                          form_url=_local_url(message.payload.get("form_url")))
        if message.file is not None:
            fields.update(file_id=store.add_file(message.file.name, message.file.data, message.file.mime_type
                                                 or mimetypes.guess_type(message.file.name)[0]),
                          file_name=message.file.name)
        stream = message.payload.get("stream")
        if isinstance(stream, str):
            fields["stream_id"] = stream[:64]
            self.partials.pop(stream, None)
        limit = (self.capabilities.max_message_length or 100_000) * 9 // 10  # room for the rendered markup
        pieces = split_message(fields["text"], limit) if len(fields["text"]) > limit else [fields["text"]]
        first: str | None = None
        for n, piece in enumerate(pieces):
            row = store.add(**{**fields, "text": piece, "outgoing_id": message.id if n == 0 else f"{message.id}#{n}"})
            self.publish({"type": "message", "message": row})
            first = first or row["id"]
        return SendResult(first)

    async def already_sent(self, route: Route, message_id: str) -> str | None:
        return self._store().by_outgoing(message_id)

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        self._changed(self._store().update(platform_message_id, text=text, edited=1))

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        store = self._store()
        row = store.get(platform_message_id)
        if row is None or emoji in row["reactions"]:
            return
        self._changed(store.update(platform_message_id, reactions=json.dumps([*row["reactions"], emoji])))

    async def set_typing(self, route: Route, on: bool) -> None:
        self.typing[route.thread_id] = on  # a page opened mid-turn learns it on connect
        self.publish({"type": "typing", "thread_id": route.thread_id, "on": on})
        if on:  # the agent took the conversation's waiting messages
            for message_id in self._store().waiting(route.thread_id):
                self._changed(self._store().advance(message_id, "working"))

    async def processed(self, route: Route, message_ids: list[str], status: str) -> None:
        for message_id in message_ids:
            self._changed(self._store().advance(message_id, status))

    async def show_partial(self, route: Route, stream_id: str, text: str | None) -> None:
        if text is None:
            self.partials.pop(stream_id, None)
            self.publish({"type": "partial", "stream_id": stream_id, "thread_id": route.thread_id, "end": True})
            return
        self.partials[stream_id] = (route.thread_id, text)
        self.publish(_partial(stream_id, route.thread_id, text))

    async def close_card(self, route: Route, platform_message_id: str, card_id: str, text: str, outcome: str) -> None:
        self._changed(self._store().update(platform_message_id, closed=outcome))

    # -- the page's side ---------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        page = resources.files("nanoclaw.webui").joinpath("index.html").read_text()
        return web.Response(text=page, content_type="text/html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        name = request.match_info["name"]
        if not _STATIC.match(name):
            raise web.HTTPNotFound()
        try:
            data = resources.files("nanoclaw.webui").joinpath(name).read_bytes()
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(body=data, content_type=_KINDS[name.rsplit(".", 1)[1]])

    async def _history(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        thread = self._thread_param(request.query.get("thread"))
        if isinstance(thread, web.Response):
            return thread
        before = request.query.get("before")
        if before is not None and not before.isdigit():
            return _error(400, "before must be a message seq number")
        store = self._store()
        partials = [_partial(sid, t, text) for sid, (t, text) in self.partials.items() if t == thread]
        return web.json_response({
            "messages": store.history(thread, int(before) if before else None),
            "conversation": store.conversation(thread or MAIN), "partials": partials,
            "working": self.typing.get(thread, False), "assistant": self.host.settings.assistant_name,
        })

    async def _post(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        read = await _read_post(request)
        if isinstance(read, web.Response):
            return read
        text, thread, client_id, files = read
        store = self._store()
        if client_id is not None:
            earlier = store.by_client(client_id)
            if earlier is not None:  # the page sent it again after losing the answer: it is stored once
                return web.json_response({"message": earlier, "duplicate": True})
        if thread is not None and store.conversation(thread) is None:
            if not _NEW_CONVERSATION.match(thread):
                return _error(400, "no such conversation")
            self._conversation_changed(store.add_conversation(title_for(text or files[0].name), thread))
        elif thread is not None and not store.history(thread):
            conversation = store.conversation(thread)
            if conversation is not None and conversation["title"] == "New chat":  # named by its first message
                self._conversation_changed(store.rename(thread, title_for(text or files[0].name)))
        stored_files = [(store.add_file(f.name, f.data, f.mime_type), f.name) for f in files]
        row = store.add(thread_id=thread, author="owner", kind="file" if files and not text else "chat", text=text,
                        client_id=client_id, status="stored", file_id=stored_files[0][0] if stored_files else None,
                        file_name=", ".join(n for _, n in stored_files) or None)
        self.publish({"type": "message", "message": row})
        result = await self.host.receive(InboundEvent(
            channel_type=self.type, platform_id=self.chat, message_id=row["id"], text=text, sender_id=WEB_CHAT,
            sender_name="Owner", thread_id=thread, is_dm=True, chat_name="Web chat", files=tuple(files),
        ))
        if not result.accepted:
            row = store.update(row["id"], status="rejected")
            self.publish({"type": "message", "message": row})
            return web.json_response({"message": row, "error": result.error}, status=422)
        if result.reply is not None or not result.triggered:  # answered by the host itself, or context only
            row = store.advance(row["id"], "done") or row
            self.publish({"type": "message", "message": row})
        return web.json_response({"message": store.get(row["id"]), "triggered": result.triggered,
                                  "reply": result.reply})

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        thread = self._thread_param(body.get("thread_id"))
        if isinstance(thread, web.Response):
            return thread
        stopped = self.host.stop_turn(Route(self.type, self.chat, thread))
        return web.json_response({"stopped": stopped})

    async def _press(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        card_id = request.match_info["card_id"]
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        value = body.get("value")
        if not isinstance(value, str) or not value:
            return _error(400, "expected JSON {\"value\": …}")
        row = self._store().card(card_id)
        if row is None or value not in json.loads(row["buttons"] or "[]"):
            return _error(404, "no such card or button")
        if row["closed"] or row["answer"]:
            return _error(409, f"This card is closed already. {row['closed'] or ''}".strip())
        error = await self.host.answer(card_id, value, WEB_CHAT)
        if error:
            return _error(409, error)
        self._changed(self._store().update(row["id"], answer=value))
        return web.json_response({"ok": True})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        row = self._store().file(request.match_info["file_id"])
        if row is None:
            raise web.HTTPNotFound()
        name = safe_file_name(row["name"])
        if request.query.get("inline") == "1" and row["mime_type"] in PREVIEW_TYPES:
            return web.Response(body=row["data"], content_type=row["mime_type"], headers={
                "Content-Disposition": f"inline; filename*=UTF-8''{quote(name, safe='')}",
                "Content-Security-Policy": "default-src 'none'; sandbox"})
        return web.Response(body=row["data"], content_type="application/octet-stream", headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"})

    async def _conversations(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        query = request.query.get("q", "").strip()
        store = self._store()
        if query:
            return web.json_response({"results": store.search(query[:200])})
        return web.json_response({"conversations": store.conversations()})

    async def _new_conversation(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        title = body.get("title") or "New chat"
        if not isinstance(title, str) or not title.strip():
            return _error(400, "the title is text")
        conversation = self._store().add_conversation(title.strip())
        self._conversation_changed(conversation)
        return web.json_response({"conversation": conversation})

    async def _rename(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            return _error(400, "a conversation needs a name")
        conversation = self._store().rename(request.match_info["id"], title.strip())
        if conversation is None:
            return _error(404, "no such conversation")
        self._conversation_changed(conversation)
        return web.json_response({"conversation": conversation})

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        conversation_id = request.match_info["id"]
        if conversation_id == MAIN:
            return _error(400, "the main chat stays; its messages can be searched but not deleted")
        if not self._store().delete_conversation(conversation_id):
            return _error(404, "no such conversation")
        self.publish({"type": "conversation", "deleted": conversation_id})
        return web.json_response({"ok": True})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        self.sockets[ws] = {"chat"}
        for thread_id, on in self.typing.items():
            if on:
                await ws.send_str(json.dumps({"type": "typing", "thread_id": thread_id, "on": True}))
        for stream_id, (thread_id, text) in list(self.partials.items()):
            await ws.send_str(json.dumps(_partial(stream_id, thread_id, text)))
        try:
            async for msg in ws:  # the page only says which topics it wants
                if msg.type == WSMsgType.ERROR:
                    break
                if msg.type == WSMsgType.TEXT:
                    await self._subscribe(ws, msg.data)
        finally:
            self.sockets.pop(ws, None)
        return ws

    async def _subscribe(self, ws: web.WebSocketResponse, data: str) -> None:
        try:
            request = json.loads(data)
        except ValueError:
            return
        topics = request.get("topics") if isinstance(request, dict) else None
        if request.get("type") != "subscribe" or not isinstance(topics, list):
            return
        wanted = {t for t in topics if isinstance(t, str) and t in TOPICS} | {"chat"}
        for topic in wanted - self.sockets.get(ws, set()):
            state = self.on_subscribe.get(topic)
            if state is not None:
                await ws.send_str(json.dumps(state()))
        self.sockets[ws] = wanted

    # -- helpers -------------------------------------------------------------------------

    def publish(self, event: dict[str, Any], topic: str = "chat") -> None:
        """Send an event to every open page that listens to `topic`."""
        data = json.dumps(event)
        for ws, topics in list(self.sockets.items()):
            if ws.closed:
                self.sockets.pop(ws, None)
                continue
            if topic in topics:
                task = asyncio.ensure_future(ws.send_str(data))
                task.add_done_callback(lambda t: t.exception())  # a closing socket is not an error

    def _store(self) -> WebChatStore:
        if self.store is None:
            raise RuntimeError("web channel not started")
        return self.store

    def _changed(self, row: dict[str, Any] | None) -> None:
        if row is not None:
            self.publish({"type": "message", "message": row})

    def _conversation_changed(self, conversation: dict[str, Any] | None) -> None:
        if conversation is not None:
            self.publish({"type": "conversation", "conversation": conversation})

    def _conversation_for(self, thread: str | None) -> str | None:
        """A reply to a thread the page does not know yet (the agent sent to it) gets a conversation."""
        store = self._store()
        if thread is not None and store.conversation(thread) is None:
            self._conversation_changed(store.add_conversation("Thread", thread))
        return thread

    def _thread_param(self, raw: Any) -> str | None | web.Response:
        if raw in (None, "", MAIN):
            return None
        if not isinstance(raw, str) or len(raw) > 64:
            return _error(400, "thread_id must be a conversation id")
        if self._store().conversation(raw) is None and not _NEW_CONVERSATION.match(raw):
            return _error(404, "no such conversation")
        return raw


def _partial(stream_id: str, thread_id: str | None, text: str) -> dict[str, Any]:
    from nanoclaw.channels.web_html import render  # Markdown and Pygments: loaded with the first reply shown

    return {"type": "partial", "stream_id": stream_id, "thread_id": thread_id, "html": render(text)}


async def _read_post(request: web.Request) -> web.Response | tuple[str, str | None, str | None, list[FileAttachment]]:
    """(text, thread, client id, files) of a message the page posts, or the 4xx to answer."""
    from aiohttp import web

    files: list[FileAttachment] = []
    fields: dict[str, str] = {}
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        async for part in reader:
            if part.name == "file" and part.filename:
                data = await part.read(decode=False)
                if len(data) > MAX_INBOUND_FILE:
                    return _error(413, f"files are limited to {MAX_INBOUND_FILE // 2**20} MB")
                name = safe_file_name(part.filename)
                files.append(FileAttachment(name, bytes(data), part.headers.get("Content-Type")
                                            or mimetypes.guess_type(name)[0]))
            elif part.name in ("text", "thread_id", "client_id"):
                fields[part.name] = await part.text()
    elif request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        fields = {k: str(form.get(k, "")) for k in ("text", "thread_id", "client_id")}
    else:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        if not isinstance(body.get("text"), str):
            return _error(400, "expected JSON {\"text\": …}")
        for key in ("thread_id", "client_id"):
            if body.get(key) is not None and not isinstance(body[key], str):
                return _error(400, f"{key} must be a string")
        fields = {k: body.get(k) or "" for k in ("text", "thread_id", "client_id")}
    text, thread, client_id = fields.get("text", ""), fields.get("thread_id") or None, fields.get("client_id") or None
    if not text.strip() and not files:
        return _error(400, "the message is empty")
    if thread == MAIN:
        thread = None
    if client_id is not None and not _CLIENT_ID.match(client_id):
        return _error(400, "client_id is 8–64 letters, digits, - or _")
    return text, thread, client_id, files


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "expected a JSON object")
    return body if isinstance(body, dict) else _error(400, "expected a JSON object")


def _error(status: int, text: str) -> web.Response:
    from aiohttp import web

    return web.json_response({"error": text}, status=status)


def _local_url(url: Any) -> str | None:
    """Only links to the host's own forms open in the page's modal."""
    return url if isinstance(url, str) and url.startswith("http://") and "/credentials/" in url else None
