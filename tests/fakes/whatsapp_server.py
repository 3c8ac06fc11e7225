"""A fake WhatsApp Cloud API on 127.0.0.1: the Graph API the bot calls, and the person who writes to it.

The Graph side answers `POST /{version}/{phone_number_id}/messages` (text,
interactive, reaction, image, document, read + typing indicator),
`POST /{version}/{phone_number_id}/media` (multipart upload),
`GET /{version}/{media_id}` (media URL) and the media download itself, in the
Cloud API's JSON shapes and with its limits and error objects; it records what
the bot did. The person side builds webhook payloads the way Meta does and
posts them to the channel's webhook, signed with the app secret
(`X-Hub-Signature-256`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

VERSION = "v21.0"


@dataclass
class SentMessage:
    """One message the bot sent, as the fake recorded it."""

    id: str
    to: str
    type: str
    body: dict[str, Any]  # the request's JSON
    text: str = ""
    buttons: tuple[str, ...] = ()
    file_name: str | None = None
    file_data: bytes | None = None
    reactions: list[str] = field(default_factory=list)


def wamid() -> str:
    """A message id in the Cloud API's form: "wamid." + base64."""
    return "wamid." + base64.b64encode(b"\x15\x02\x00\x11\x18\x12" + secrets.token_bytes(18)).decode()


def graph_error(status: int, code: int, message: str, details: str | None = None) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "fbtrace_id": secrets.token_urlsafe(12)}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return web.json_response({"error": error}, status=status)


def _too_long(value: Any, limit: int) -> bool:
    return not isinstance(value, str) or not value or len(value) > limit


class FakeWhatsApp:
    def __init__(self, *, access_token: str = "EAAG-fake-token", app_secret: str = "fake-app-secret",
                 phone_number_id: str = "106540352242922", display_number: str = "15550001111",
                 verify_token: str = "fake-verify-token") -> None:
        self.access_token = access_token
        self.app_secret = app_secret
        self.phone_number_id = phone_number_id
        self.display_number = display_number
        self.verify_token = verify_token
        self.sent: list[SentMessage] = []
        self.reactions: dict[str, list[str]] = {}  # message id → emojis the bot put there
        self.typing: list[str] = []  # message ids marked read with a typing indicator
        self.inbound: dict[str, str] = {}  # id of a person's message → their wa_id
        self.media: dict[str, tuple[str, bytes, str]] = {}  # media id → (file name, data, mime type)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every Graph request
        self.window_closed: set[str] = set()  # wa_ids outside the 24-hour window (error 131047)
        self.down = False
        self.next_error: tuple[int, int, str] | None = None  # (status, code, message) for the next send
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._media_ids = itertools.count(1_000_000_000_000_001)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- server lifecycle ------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=200 * 2**20)
        app.router.add_post("/{version}/{phone}/messages", self._messages)
        app.router.add_post("/{version}/{phone}/media", self._upload)
        app.router.add_get("/download/{media_id}", self._download)  # before the catch-all node route
        app.router.add_get("/{version}/{node}", self._node)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop listening and close every open connection (the port then refuses connections)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        """The Graph front end restarts: live keep-alive connections are closed, the same port serves again."""
        await self.stop()
        await self.start()

    # -- Graph API -------------------------------------------------------------

    def _refuse(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path))
        if self.down:
            return graph_error(503, 131016, "Service unavailable", "A service is temporarily unavailable.")
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        return None

    async def _node(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refuse(request)) is not None:
            return refused
        node = request.match_info["node"]
        if node == self.phone_number_id:
            return web.json_response({"verified_name": "Andy", "display_phone_number": self.display_number,
                                      "id": node, "quality_rating": "GREEN"})
        if node in self.media:
            name, data, mime = self.media[node]
            return web.json_response({
                "messaging_product": "whatsapp", "url": f"{self.base_url}/download/{node}", "mime_type": mime,
                "sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data), "id": node,
            })
        return graph_error(400, 100, f"Unsupported get request. Object with ID '{node}' does not exist")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refuse(request)) is not None:
            return refused
        name, data, mime = self.media[request.match_info["media_id"]]
        return web.Response(body=data, content_type=mime)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refuse(request)) is not None:
            return refused
        form = await request.post()
        upload = form.get("file")
        if form.get("messaging_product") != "whatsapp" or not isinstance(upload, web.FileField):
            return graph_error(400, 100, "(#100) The parameter messaging_product is required.")
        media_id = str(next(self._media_ids))
        self.media[media_id] = (upload.filename, upload.file.read(), str(form.get("type") or upload.content_type))
        return web.json_response({"id": media_id})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refuse(request)) is not None:
            return refused
        if request.match_info["phone"] != self.phone_number_id:
            return graph_error(400, 100, "Unsupported post request.")
        body = await request.json()
        if body.get("messaging_product") != "whatsapp":
            return graph_error(400, 100, "(#100) The parameter messaging_product is required.")
        if body.get("status") == "read":
            if body.get("message_id") not in self.inbound:
                return graph_error(400, 100, "Invalid parameter", "message_id is not a message of this number")
            if body.get("typing_indicator") == {"type": "text"}:
                self.typing.append(body["message_id"])
            return web.json_response({"success": True})
        to, kind = str(body.get("to", "")), body.get("type")
        if self.next_error is not None:
            (status, code, text), self.next_error = self.next_error, None
            return graph_error(status, code, text)
        if to in self.window_closed:
            return graph_error(400, 131047, "Re-engagement message", "Message failed to send because more than "
                               "24 hours have passed since the customer last replied to this number.")
        problem, message = self._record(to, kind, body.get(kind))
        if problem:
            return graph_error(400, 100, "(#100) Invalid parameter", problem)
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                  "messages": [{"id": message.id}]})

    def _record(self, to: str, kind: Any, content: Any) -> tuple[str | None, SentMessage]:
        """Validate one send like the Cloud API does; record it when valid."""
        message = SentMessage(wamid(), to, str(kind), {"type": kind, kind: content})
        if not isinstance(content, dict):
            return f"{kind} object missing", message
        if kind == "text":
            if _too_long(content.get("body"), 4096):
                return "text.body must be 1 to 4096 characters", message
            message.text = content["body"]
        elif kind == "reaction":
            self.reactions.setdefault(str(content.get("message_id")), []).append(str(content.get("emoji")))
            return None, message  # a reaction is not a message in the chat
        elif kind in ("image", "document"):
            if content.get("id") not in self.media:
                return "media id not found", message
            name, data, _ = self.media[content["id"]]
            message.file_name, message.file_data = content.get("filename", name), data
            message.text = content.get("caption", "")
        elif kind == "interactive":
            problem = self._interactive(content, message)
            if problem:
                return problem, message
        else:
            return f"unsupported message type {kind}", message
        self.sent.append(message)
        return None, message

    @staticmethod
    def _interactive(content: dict[str, Any], message: SentMessage) -> str | None:
        action, header = content.get("action") or {}, content.get("header")
        if header is not None and _too_long(header.get("text"), 60):
            return "header.text must be 1 to 60 characters"
        if content.get("type") == "button":
            buttons = action.get("buttons") or []
            if not 1 <= len(buttons) <= 3:
                return "a reply-button message has 1 to 3 buttons"
            for b in buttons:
                if _too_long(b["reply"].get("title"), 20) or _too_long(b["reply"].get("id"), 256):
                    return "button title ≤ 20 and id ≤ 256 characters"
            titles = [b["reply"]["title"] for b in buttons]
            body_limit = 1024
        elif content.get("type") == "list":
            rows = [row for section in action.get("sections") or [] for row in section.get("rows") or []]
            if not 1 <= len(rows) <= 10 or _too_long(action.get("button"), 20):
                return "a list has 1 to 10 rows and a button label ≤ 20 characters"
            for row in rows:
                if _too_long(row.get("title"), 24) or _too_long(row.get("id"), 200):
                    return "row title ≤ 24 and id ≤ 200 characters"
            titles = [row["title"] for row in rows]
            body_limit = 4096
        else:
            return "interactive.type must be button or list"
        if _too_long((content.get("body") or {}).get("text"), body_limit):
            return f"body.text must be 1 to {body_limit} characters"
        message.text, message.buttons = content["body"]["text"], tuple(titles)
        return None

    # -- the person's side: webhooks ------------------------------------------

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    def webhook(self, value: dict[str, Any], field_name: str = "messages") -> dict[str, Any]:
        """The envelope Meta wraps around every change."""
        value = {"messaging_product": "whatsapp",
                 "metadata": {"display_phone_number": self.display_number, "phone_number_id": self.phone_number_id},
                 **value}
        return {"object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": field_name}]}]}

    def message(
        self, wa_id: str, name: str, kind: str, content: dict[str, Any], **extra: Any
    ) -> tuple[str, dict[str, Any]]:
        """A person's message as a webhook payload; returns (message id, payload)."""
        message_id = wamid()
        self.inbound[message_id] = wa_id
        message = {"from": wa_id, "id": message_id, "timestamp": str(int(time.time())), "type": kind,
                   kind: content, **extra}
        return message_id, self.webhook({"contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                                         "messages": [message]})

    def upload_from_person(self, name: str, data: bytes, mime: str) -> str:
        """A file the person attached: stored where the bot can fetch it by media id."""
        media_id = str(next(self._media_ids))
        self.media[media_id] = (name, data, mime)
        return media_id

    async def post_webhook(self, url: str, payload: dict[str, Any] | bytes, signature: str | None = "sign") -> int:
        """POST to the channel's webhook as Meta does; signature "sign" signs correctly, None leaves it out."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = self.sign(body) if signature == "sign" else signature
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=body, headers=headers) as response:
                return response.status
