"""A fake Resend: the REST API the Resend channel calls through the resend SDK, and the inbound mail a person
sends, delivered as Svix-signed webhooks.

The API side (aiohttp on 127.0.0.1) answers `POST /emails` (with Resend's validation, Idempotency-Key
semantics and error bodies `{"statusCode", "name", "message"}`), `GET /emails/receiving`,
`GET /emails/receiving/{id}` and `GET /emails/receiving/{id}/attachments` (with signed `download_url`s served
here) in Resend's JSON shapes, and records what the bot sent. The person side stores a received mail and
builds the `email.received` event, signed the way Svix signs (Standard Webhooks: `svix-id`,
`svix-timestamp`, `svix-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), written here from the
specification rather than with the svix library the channel verifies with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.channels.harness import PlatformMessage


def svix_headers(secret: str, body: bytes, *, msg_id: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"svix-id": msg_id, "svix-timestamp": stamp, "svix-signature": "v1," + base64.b64encode(digest).decode()}


def iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}+00"


@dataclass
class Received:
    id: str
    sender: str
    to: list[str]
    subject: str
    text: str | None
    html: str | None
    message_id: str
    headers: dict[str, str]
    attachments: list[dict[str, Any]]  # with "data" (bytes) besides Resend's metadata
    created_at: str = field(default_factory=iso)


class ResendFake:
    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self.secret = secret
        self.received: dict[str, Received] = {}
        self.sent: list[PlatformMessage] = []
        self.requests: list[tuple[str, str]] = []
        self.down = False
        self.rate_limited = False
        self._idempotent: dict[str, tuple[str, dict[str, Any]]] = {}  # key → (body digest, answer)
        self._downloads: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self._last = 0.0
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._gate], client_max_size=60 * 2**20)
        app.router.add_post("/emails", self._send)
        app.router.add_get("/emails/receiving", self._list)
        app.router.add_get("/emails/receiving/{id}", self._get)
        app.router.add_get("/emails/receiving/{id}/attachments", self._attachments)
        app.router.add_get("/download/{token}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # -- API -------------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self.down:
            return web.Response(status=503, text="<html>503 Service Temporarily Unavailable</html>",
                                content_type="text/html")
        if request.path.startswith("/download/"):
            return await handler(request)  # type: ignore[no-any-return]
        auth = request.headers.get("Authorization")
        if auth is None:
            return _error(401, "missing_api_key", "Missing API key in the authorization header.")
        if auth != f"Bearer {self.api_key}":
            return _error(403, "invalid_api_key", "API key is invalid")
        if self.rate_limited:
            return _error(429, "rate_limit_exceeded", "Too many requests. You can only make 2 requests per second.")
        return await handler(request)  # type: ignore[no-any-return]

    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        key = request.headers.get("Idempotency-Key")
        digest = hashlib.sha256(raw).hexdigest()
        if key and key in self._idempotent:
            known, answer = self._idempotent[key]
            if known != digest:
                return _error(409, "invalid_idempotent_request",
                              "Same idempotency key used with a different request payload.")
            return web.json_response(answer)
        for name in ("from", "to", "subject"):
            if not body.get(name):
                return _error(422, "missing_required_field", f"Missing `{name}` field.")
        to = body["to"] if isinstance(body["to"], list) else [body["to"]]
        if any("@" not in a or a.endswith("@invalid.test") for a in to):
            return _error(422, "validation_error", "Invalid `to` field. The email address needs to follow the"
                                                   " `email@example.com` or `Name <email@example.com>` format.")
        files = body.get("attachments") or []
        first = files[0] if files else {}
        answer = {"id": str(uuid.uuid4())}
        self.sent.append(PlatformMessage(
            answer["id"], to[0], body.get("text") or "", file_name=first.get("filename"),
            file_data=base64.b64decode(first["content"]) if first.get("content") else None, raw=body))
        if key:
            self._idempotent[key] = (digest, answer)
        return web.json_response(answer)

    async def _list(self, request: web.Request) -> web.Response:
        found = sorted(self.received.values(), key=lambda r: (r.created_at, r.id), reverse=True)  # newest first
        after = request.query.get("after")
        if after:
            ids = [r.id for r in found]
            found = found[ids.index(after) + 1:] if after in ids else []
        limit = int(request.query.get("limit", "10"))
        page = found[:limit]
        return web.json_response({"object": "list", "has_more": len(found) > limit,
                                  "data": [self._summary(r) for r in page]})

    async def _get(self, request: web.Request) -> web.Response:
        mail = self.received.get(request.match_info["id"])
        if mail is None:
            return _error(404, "not_found", "Email not found")
        return web.json_response({**self._summary(mail), "object": "email", "html": mail.html, "text": mail.text,
                                  "headers": mail.headers, "received_for": mail.to})

    async def _attachments(self, request: web.Request) -> web.Response:
        mail = self.received.get(request.match_info["id"])
        if mail is None:
            return _error(404, "not_found", "Email not found")
        data = []
        for item in mail.attachments:
            token = secrets.token_urlsafe(16)
            self._downloads[token] = item["data"]
            data.append({**_meta(item), "size": len(item["data"]), "download_url": f"{self.base_url}/download/{token}",
                         "expires_at": iso(time.time() + 3600)})
        return web.json_response({"object": "list", "has_more": False, "data": data})

    async def _download(self, request: web.Request) -> web.Response:
        data = self._downloads.get(request.match_info["token"])
        return web.Response(body=data) if data is not None else web.Response(status=403, text="expired")

    def _summary(self, mail: Received) -> dict[str, Any]:
        return {"id": mail.id, "to": mail.to, "from": mail.sender, "created_at": mail.created_at,
                "subject": mail.subject, "bcc": [], "cc": [], "reply_to": [], "message_id": mail.message_id,
                "attachments": [_meta(a) for a in mail.attachments]}

    # -- the person's side -------------------------------------------------------------

    def receive(self, sender: str, to: str, subject: str, text: str | None, *, html: str | None = None,
                headers: dict[str, str] | None = None, files: list[tuple[str, bytes, str]] = ()) -> Received:
        """A mail arrives at Resend for `to`; returns it (its `email.received` event: `event(mail)`)."""
        now = max(time.time(), self._last + 1e-6)  # each later than the one before
        self._last = now
        message_id = f"<{uuid.uuid4().hex}@mail.example.com>"
        mail = Received(str(uuid.uuid4()), sender, [to], subject, text, html, message_id,
                        {"message-id": message_id, "mime-version": "1.0", **(headers or {})},
                        [{"id": str(uuid.uuid4()), "filename": n, "content_type": k, "content_disposition": "attachment",
                          "content_id": None, "data": d} for n, d, k in files], created_at=iso(now))
        self.received[mail.id] = mail
        return mail

    def event(self, mail: Received) -> dict[str, Any]:
        return {"type": "email.received", "created_at": iso(), "data": {
            "email_id": mail.id, "created_at": mail.created_at, "from": mail.sender, "to": mail.to, "bcc": [],
            "cc": [], "message_id": mail.message_id, "subject": mail.subject,
            "attachments": [_meta(a) for a in mail.attachments]}}

    async def post_webhook(self, url: str, payload: Any, *, secret: str | None = "", timestamp: int | None = None,
                           headers: dict[str, str] | None = None) -> int:
        """Deliver one webhook as Svix does (secret None: unsigned); returns the HTTP status answered."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json", "User-Agent": "Svix-Webhooks/1.0"}
        if secret is not None:
            sent |= svix_headers(secret or self.secret, body, timestamp=timestamp)
        sent |= headers or {}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=body, headers=sent) as response:
                return response.status


def _meta(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "data"}


def _error(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "name": name, "message": message}, status=status)
