"""A fake Google Chat on 127.0.0.1: the Chat API the app calls, Google's OAuth token endpoint and certificates,
and people acting in Chat, whose interaction events are posted to the app with Google's bearer token.

The API side answers `POST /v1/spaces/{space}/messages` (text or cardsV2, thread and
messageReplyOption), `PUT`/`PATCH /v1/spaces/{space}/messages/{id}?updateMask=text` and
`GET /v1/media/{resource}?alt=media`, in the Chat API's JSON and error shapes, only with an
access token it issued. `POST /token` takes the service account's JWT-bearer assertion (checked
against the key it generated for that account) and issues one. `GET /certs` serves the x509
certificate of the "Google" key that signs event tokens (iss chat@system.gserviceaccount.com,
aud the project number), so the channel's check runs on a real signature.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt

from tests.channels.harness import PlatformMessage

PROJECT_NUMBER = "123456789012"
CHAT_ISSUER = "chat@system.gserviceaccount.com"


@functools.cache
def shared_key(purpose: str) -> rsa.RSAPrivateKey:
    """One RSA key per purpose and test process (making one takes ~50 ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _certificate(key: rsa.RSAPrivateKey, name: str) -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class ChatMessage:
    data: dict[str, Any]
    edits: list[str] = field(default_factory=list)


class FakeGoogleChat:
    def __init__(self) -> None:
        self.google_key = shared_key("google")
        self.google_kid = secrets.token_hex(20)
        self.account_key = shared_key("service account")
        self.account_email = "nanoclaw-chat@fake-project.iam.gserviceaccount.com"
        self.messages: dict[str, ChatMessage] = {}  # the app's messages, in order
        self.media: dict[str, tuple[bytes, str]] = {}
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.cert_fetches = 0
        self.down = False
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def key_file(self, folder: Path) -> Path:
        """The service account's JSON key, as the Cloud console downloads it (token_uri: this fake)."""
        path = folder / "chat-service-account.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": "fake-project", "private_key_id": secrets.token_hex(20),
            "private_key": _key_pem(self.account_key), "client_email": self.account_email,
            "client_id": "109876543210987654321", "token_uri": f"{self.base_url}/token",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        }))
        return path

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/token", self._token)
        app.router.add_get("/certs", self._certs)
        app.router.add_post("/v1/spaces/{space}/messages", self._create)
        app.router.add_patch("/v1/spaces/{space}/messages/{id}", self._update)
        app.router.add_put("/v1/spaces/{space}/messages/{id}", self._update)  # messages.update; PATCH is .patch
        app.router.add_get("/v1/media/{resource:.+}", self._media)
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

    # -- Google's side ---------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.down:
            return error(503, "UNAVAILABLE", "The service is currently unavailable.")
        if request.path.startswith("/v1/"):
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or not self._authorized(auth[7:]):
                return error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        return await handler(request)  # type: ignore[no-any-return]

    def _account_public_key(self) -> bytes:
        return self.account_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)

    def _authorized(self, token: str) -> bool:
        """An access token issued here, or a JWT the service account signed itself (Google's client
        libraries use self-signed JWTs for service accounts where the API accepts them, as Chat does)."""
        if token in self.tokens:
            return True
        try:
            claims = google_jwt.decode(token, certs=self._account_public_key())
        except Exception:  # not a valid JWT of the account
            return False
        return claims.get("iss") == self.account_email

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = google_jwt.decode(str(form.get("assertion")), certs=self._account_public_key(),
                                       audience="https://oauth2.googleapis.com/token")  # what Google expects
        except Exception:  # any invalid assertion: Google's answer
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                                     status=400)
        if claims.get("iss") != self.account_email or "chat.bot" not in str(claims.get("scope")):
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _certs(self, request: web.Request) -> web.Response:
        self.cert_fetches += 1
        return web.json_response({self.google_kid: _certificate(self.google_key, CHAT_ISSUER)})

    async def _create(self, request: web.Request) -> web.Response:
        space = f"spaces/{request.match_info['space']}"
        body = await request.json()
        text, cards = body.get("text") or "", body.get("cardsV2") or []
        if not text and not cards:
            return error(400, "INVALID_ARGUMENT", "Message cannot be empty.")
        if len(text) > 4096:
            return error(400, "INVALID_ARGUMENT", "Message text is longer than 4096 characters.")
        thread = (body.get("thread") or {}).get("name")
        if thread and not thread.startswith(space + "/threads/"):
            return error(400, "INVALID_ARGUMENT", "Thread does not belong to the space.")
        message = self.add(space, text, {"name": "users/app", "type": "BOT", "displayName": "Andy"},
                           thread=thread or None)
        if cards:
            message.data["cardsV2"] = cards
            message.data["fallbackText"] = body.get("fallbackText", "")
        return web.json_response(message.data)

    async def _update(self, request: web.Request) -> web.Response:
        name = f"spaces/{request.match_info['space']}/messages/{request.match_info['id']}"
        message = self.messages.get(name)
        if message is None:
            return error(404, "NOT_FOUND", "Message not found.")
        mask = set(request.query.get("updateMask", "").split(","))
        if not mask or not mask <= {"text", "cardsV2", "cards_v2"}:
            return error(400, "INVALID_ARGUMENT", "Unsupported update mask.")
        body = await request.json()
        text = body.get("text", "")
        if mask & {"cardsV2", "cards_v2"}:  # a masked field absent from the body is cleared
            message.data["cardsV2"] = body.get("cardsV2") or []
        message.data.update(text=text, lastUpdateTime=now())
        message.edits.append(text)
        return web.json_response(message.data)

    async def _media(self, request: web.Request) -> web.Response:
        if request.query.get("alt") != "media":
            return error(400, "INVALID_ARGUMENT", "alt=media required.")
        found = self.media.get(request.match_info["resource"])
        if found is None:
            return error(404, "NOT_FOUND", "Attachment not found.")
        return web.Response(body=found[0], content_type=found[1])

    # -- the people's side -------------------------------------------------------------

    def add(self, space: str, text: str, sender: dict[str, Any], *, thread: str | None = None) -> ChatMessage:
        number = next(self._ids)
        name = f"{space}/messages/m{number}.{uuid.uuid4().hex[:6]}"
        data = {"name": name, "sender": sender, "createTime": now(), "text": text,
                "thread": {"name": thread or f"{space}/threads/t{number}"}, "space": {"name": space}}
        message = ChatMessage(data)
        if sender.get("type") == "BOT" and sender.get("name") == "users/app":
            self.messages[name] = message
        return message

    def token(self, *, audience: str = PROJECT_NUMBER, issuer: str = CHAT_ISSUER, age: float = 0.0,
              key: rsa.RSAPrivateKey | None = None) -> str:
        """The bearer token Google sends with an event (`age` seconds old; another `key` forges it)."""
        issued = int(time.time() - age)
        signer = crypt.RSASigner.from_string(_key_pem(key or self.google_key), self.google_kid)
        return google_jwt.encode(signer, {"iss": issuer, "aud": audience, "iat": issued,
                                          "exp": issued + 3600}).decode()

    def sent(self) -> list[PlatformMessage]:
        out = []
        for m in self.messages.values():
            d = m.data
            buttons = tuple(b["text"] for c in d.get("cardsV2") or [] for s in c["card"].get("sections", [])
                            for w in s.get("widgets", []) for b in (w.get("buttonList") or {}).get("buttons", []))
            text = d.get("text") or "\n".join(w["textParagraph"]["text"] for c in d.get("cardsV2") or []
                                              for s in c["card"].get("sections", []) for w in s.get("widgets", [])
                                              if "textParagraph" in w)
            out.append(PlatformMessage(d["name"], d["space"]["name"], text, d["thread"]["name"], buttons=buttons,
                                       edits=m.edits, raw=d))
        return out


async def post_event(url: str, event: Any, token: str | None) -> tuple[int, Any]:
    """Deliver one interaction event as Google does; the status and JSON the app answered."""
    headers = {"Content-Type": "application/json", "User-Agent": "Google-Dynamite"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None
            return response.status, answer


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "status": code}}, status=status)
