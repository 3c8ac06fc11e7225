"""A fake Telegram Bot API on 127.0.0.1, spoken to by the real python-telegram-bot.

    fake = FakeTelegram()
    await fake.start()                      # fake.api_base, fake.file_base: the channel's base URLs
    await fake.user_message(chat, user, "hi")   # a person writes (an update for getUpdates, or a webhook POST)
    fake.sent, fake.reactions, fake.actions  # what the bot did

Wire format as the real API: POST /bot<token>/<method> with form or multipart
fields (non-string values JSON-encoded), answered {"ok": true, "result": …} or
{"ok": false, "error_code": …, "description": …}; files at /file/bot<token>/<path>.
getUpdates long-polls up to `timeout` seconds and forgets updates below `offset`;
setWebhook switches to POSTing updates with the X-Telegram-Bot-Api-Secret-Token header.
Faults: `down` (502 for every call), `drop_connections()`, `fail_polls` (next polls 502),
`fail_next(method, code, description, retry_after=, after=)`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp
from aiohttp import web

TOKEN = "7000000001:AAFakeTokenForTestsOnly_abcdefghijk"
BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Andy", "username": "andy_nanoclaw_bot",
            "can_join_groups": True, "can_read_all_group_messages": True, "supports_inline_queries": False}
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span",
                 "tg-spoiler", "tg-emoji", "blockquote"}
_JSON_FIELDS = {"reply_markup", "reaction", "allowed_updates", "entities", "caption_entities", "reply_parameters",
                "link_preview_options"}


class ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class Sent:
    """One message the bot put in a chat, as the server keeps it."""

    message: dict[str, Any]  # the Message object the API returned
    params: dict[str, Any]  # the request fields as received
    file_name: str | None = None
    file_data: bytes | None = None
    edits: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.time)  # when the server received it (benchmarks time first text)

    @property
    def chat(self) -> str:
        return str(self.message["chat"]["id"])

    @property
    def id(self) -> str:
        return str(self.message["message_id"])

    @property
    def text(self) -> str:
        return str(self.message.get("text") or self.message.get("caption") or "")

    @property
    def buttons(self) -> tuple[str, ...]:
        rows = (self.params.get("reply_markup") or {}).get("inline_keyboard") or []
        return tuple(b["text"] for row in rows for b in row)


class _TagChecker(HTMLParser):
    """Telegram's HTML parse mode: known tags only, properly nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            self.error = self.error or f"unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.error = self.error or f"unmatched end tag \"{tag}\""


def check_html(text: str) -> str | None:
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    if checker.stack and not checker.error:
        return f"unclosed tag \"{checker.stack[-1]}\""
    return checker.error


class FakeTelegram:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}  # every message by id (ids are unique server-wide here)
        self.sent: list[Sent] = []
        self.reactions: dict[str, list[str]] = {}  # message id → emoji the bot set
        self.actions: list[tuple[str, str]] = []  # (chat, action)
        self.callback_answers: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.files: dict[str, tuple[str, bytes, int]] = {}  # file_id → (path, data, declared size)
        self.webhook: dict[str, Any] | None = None  # url, secret_token, allowed_updates
        self.down = False
        self.fail_polls = 0
        self.failures: dict[str, list[tuple[int, str, int | None] | None]] = {}  # method → its next calls' errors
        self._queue: list[tuple[int, dict[str, Any] | Any]] = []  # (update id, raw update as sent)
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(500_000)
        self._arrived = asyncio.Event()
        self._polls: dict[int, web.Request] = {}
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.port = 0

    # --- server --------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._closing = True
        self._wake()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = asyncio.Event()

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>")
        if request.match_info["token"] != self.token:
            return _fail(401, "Unauthorized")
        method = request.match_info["method"]
        handler = getattr(self, f"_m_{method}", None)
        if handler is None and method != "getUpdates":  # getUpdates is async: it long-polls
            return _fail(404, "Not Found")
        params = await _params(request)
        self.calls.append((method, params))
        failure = self.failures[method].pop(0) if self.failures.get(method) else None
        if failure is not None:
            code, description, retry_after = failure
            body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
            if retry_after is not None:
                body["parameters"] = {"retry_after": retry_after}
            return web.json_response(body, status=code)
        try:
            if method == "getUpdates":
                result = await self._get_updates(request, params)
            else:
                result = handler(params)
        except ApiError as exc:
            return _fail(exc.code, exc.description)
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        for path, data, _size in self.files.values():
            if path == request.match_info["path"]:
                return web.Response(body=data)
        return web.Response(status=404)

    # --- Bot API methods -------------------------------------------------------------------------------

    def _m_getMe(self, p: dict[str, Any]) -> Any:
        return BOT_USER

    def _m_deleteWebhook(self, p: dict[str, Any]) -> Any:
        self.webhook = None
        return True

    def _m_setWebhook(self, p: dict[str, Any]) -> Any:
        self.webhook = {"url": p["url"], "secret_token": p.get("secret_token"),
                        "allowed_updates": p.get("allowed_updates")}
        return True

    async def _get_updates(self, request: web.Request, p: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        if self.fail_polls:
            self.fail_polls -= 1
            raise ApiError(502, "Bad Gateway")
        offset = int(p.get("offset") or 0)
        if offset:  # confirms every update below it, as Telegram does
            self._queue = [(uid, u) for uid, u in self._queue if uid >= offset]
        deadline = time.monotonic() + min(float(p.get("timeout") or 0), 30.0)
        self._polls[id(request)] = request
        try:
            while not self._closing and not self._queue and (left := deadline - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    pass
                if request.transport is None or request.transport.is_closing():
                    return []
        finally:
            self._polls.pop(id(request), None)
        return [u for _uid, u in self._queue[: int(p.get("limit") or 100)]]

    def _m_sendMessage(self, p: dict[str, Any]) -> Any:
        chat = self._chat(p)
        text = str(p.get("text", ""))
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        self._check_entities(p, text)
        msg = self._new_message(chat, BOT_USER, text=text)
        if p.get("reply_markup"):
            msg["reply_markup"] = p["reply_markup"]
        self.sent.append(Sent(msg, p))
        return msg

    def _m_sendDocument(self, p: dict[str, Any]) -> Any:
        chat = self._chat(p)
        upload = p.get("document")
        if not isinstance(upload, tuple):
            raise ApiError(400, "Bad Request: there is no document in the request")
        name, data = upload
        caption = str(p.get("caption") or "")
        if len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        self._check_entities(p, caption)
        msg = self._new_message(chat, BOT_USER, caption=caption or None)
        msg["document"] = self._store_file(name, data)
        self.sent.append(Sent(msg, {k: v for k, v in p.items() if k != "document"}, name, data))
        return msg

    def _m_sendChatAction(self, p: dict[str, Any]) -> Any:
        chat = self._chat(p)
        self.actions.append((str(chat["id"]), str(p.get("action"))))
        return True

    def _m_setMessageReaction(self, p: dict[str, Any]) -> Any:
        self._chat(p)
        msg = self.messages.get(int(p.get("message_id", 0)))
        if msg is None:
            raise ApiError(400, "Bad Request: message to react not found")
        emoji = [r["emoji"] for r in p.get("reaction") or [] if r.get("type") == "emoji"]
        self.reactions[str(msg["message_id"])] = emoji
        return True

    def _m_editMessageText(self, p: dict[str, Any]) -> Any:
        sent = self._sent_message(p, "message to edit not found")
        text = str(p.get("text", ""))
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        if text == sent.message.get("text"):
            raise ApiError(400, "Bad Request: message is not modified: specified new message content and reply "
                                "markup are exactly the same as a current content and reply markup of the message")
        self._check_entities(p, text)
        sent.message["text"] = text
        sent.edits.append(text)
        # As the Bot API does: an edit without reply_markup removes the inline keyboard.
        sent.params["reply_markup"] = p.get("reply_markup")
        sent.message.pop("reply_markup", None)
        if p.get("reply_markup"):
            sent.message["reply_markup"] = p["reply_markup"]
        return sent.message

    def _m_editMessageReplyMarkup(self, p: dict[str, Any]) -> Any:
        sent = self._sent_message(p, "message to edit not found")
        sent.params["reply_markup"] = p.get("reply_markup")
        sent.message.pop("reply_markup", None)
        if p.get("reply_markup"):
            sent.message["reply_markup"] = p["reply_markup"]
        return sent.message

    def _m_answerCallbackQuery(self, p: dict[str, Any]) -> Any:
        self.callback_answers.append(p)
        return True

    def _m_getFile(self, p: dict[str, Any]) -> Any:
        found = self.files.get(str(p.get("file_id")))
        if found is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, _data, size = found
        if size > 20 * 2**20:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": p["file_id"], "file_unique_id": f"u{p['file_id']}", "file_size": size, "file_path": path}

    # --- helpers -------------------------------------------------------------------------------------

    def _chat(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            chat = self.chats.get(int(p.get("chat_id", "")))
        except ValueError:
            chat = None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _sent_message(self, p: dict[str, Any], missing: str) -> Sent:
        self._chat(p)
        for sent in self.sent:
            if sent.message["message_id"] == int(p.get("message_id", 0)):
                return sent
        raise ApiError(400, f"Bad Request: {missing}")

    def _check_entities(self, p: dict[str, Any], text: str) -> None:
        if p.get("parse_mode") == "HTML" and (problem := check_html(text)):
            raise ApiError(400, f"Bad Request: can't parse entities: {problem}")

    def _new_message(self, chat: dict[str, Any], sender: dict[str, Any], **fields: Any) -> dict[str, Any]:
        msg = {"message_id": next(self._ids), "date": int(time.time()), "chat": chat, "from": sender}
        msg.update({k: v for k, v in fields.items() if v is not None})
        self.messages[msg["message_id"]] = msg
        return msg

    def _store_file(self, name: str, data: bytes, size: int | None = None, mime: str | None = None) -> dict[str, Any]:
        n = len(self.files) + 1
        file_id = f"BQACAgQAAxkBAAI{n:05d}"
        self.files[file_id] = (f"documents/file_{n}{'.' + name.rsplit('.', 1)[-1] if '.' in name else ''}",
                               data, size if size is not None else len(data))
        doc = {"file_id": file_id, "file_unique_id": f"AgAD{n:05d}", "file_name": name,
               "file_size": size if size is not None else len(data)}
        if mime:
            doc["mime_type"] = mime
        return doc

    # --- a person on the platform ------------------------------------------------------------------------

    def add_chat(self, chat_id: int, type: str, title: str) -> None:
        self.chats[chat_id] = {"id": chat_id, "type": type,
                               **({"first_name": title} if type == "private" else {"title": title})}

    async def user_message(
        self, chat_id: int, sender: dict[str, Any], text: str = "", *, entities: list[dict[str, Any]] | None = None,
        reply_to: int | None = None, document: tuple[str, bytes] | None = None, document_size: int | None = None,
        photo: bytes | None = None, sender_chat: dict[str, Any] | None = None,
    ) -> int:
        """A message from `sender` (a User object) in `chat_id`; returns its message id."""
        fields: dict[str, Any] = {"sender_chat": sender_chat}
        key = "caption" if (document or photo) else "text"
        if text:
            fields[key] = text
        if entities:
            fields[f"{key}_entities" if key == "caption" else "entities"] = entities
        if reply_to is not None:
            fields["reply_to_message"] = self.messages[reply_to]
        msg = self._new_message(self.chats[chat_id], sender, **fields)
        if document:
            msg["document"] = self._store_file(*document, size=document_size)
        if photo:
            small, big = self._store_file("thumb.jpg", photo[:16]), self._store_file("photo.jpg", photo)
            msg["photo"] = [
                {"file_id": small["file_id"], "file_unique_id": small["file_unique_id"], "width": 90, "height": 90,
                 "file_size": small["file_size"]},
                {"file_id": big["file_id"], "file_unique_id": big["file_unique_id"], "width": 1280, "height": 960,
                 "file_size": big["file_size"]},
            ]
        await self.push({"message": msg})
        return int(msg["message_id"])

    async def press(self, sent: Sent, label: str, sender: dict[str, Any]) -> int:
        """`sender` presses the inline button `label` under the bot's message; returns the webhook status (or 200)."""
        rows = (sent.params.get("reply_markup") or {}).get("inline_keyboard") or []
        [data] = [b["callback_data"] for row in rows for b in row if b["text"] == label]
        query = {"id": str(next(self._ids) * 1000 + 7), "from": sender, "message": sent.message,
                 "chat_instance": "-1234567890123", "data": data}
        return await self.push({"callback_query": query})

    async def push(self, update: dict[str, Any]) -> int:
        """Deliver an update (an update_id is added): queued for getUpdates, or POSTed to the webhook."""
        return await self.push_raw({"update_id": next(self._update_ids), **update})

    async def push_raw(self, raw: Any, *, secret: str | None = "", body: bytes | None = None) -> int:
        """Deliver anything, as is; for a webhook `secret` None omits the header, "" sends the right one."""
        if self.webhook is None:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            self._queue.append((update_id if isinstance(update_id, int) else next(self._update_ids), raw))
            self._wake()
            return 200
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret or str(self.webhook.get("secret_token") or "")
        if self._client is None:
            self._client = aiohttp.ClientSession()
        data = body if body is not None else json.dumps(raw).encode()
        async with self._client.post(self.webhook["url"], data=data, headers=headers) as resp:
            return resp.status

    def fail_next(self, method: str, code: int, description: str, retry_after: int | None = None,
                  after: int = 0) -> None:
        """The next call of `method` (or the one after `after` more that succeed) gets this error."""
        self.failures.setdefault(method, []).extend([None] * after + [(code, description, retry_after)])

    def drop_connections(self) -> None:
        """Cut every waiting long poll, and fail the next poll with a 502."""
        for request in list(self._polls.values()):
            if request.transport is not None:
                request.transport.close()
        self.fail_polls = 1
        self._wake()

    @property
    def pending_updates(self) -> int:
        return len(self._queue)


def _fail(code: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)


async def _params(request: web.Request) -> dict[str, Any]:
    """The request's fields: strings, JSON values decoded, uploads as (file name, bytes)."""
    out: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        out.update(await request.json())
        return out
    for name, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            out[name] = (value.filename, value.file.read())
        else:  # python-telegram-bot JSON-encodes objects and lists, sends strings as they are
            out[name] = json.loads(str(value)) if name in _JSON_FIELDS else str(value)
    return out
