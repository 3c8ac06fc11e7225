"""A fake Microsoft Teams on 127.0.0.1: the Bot Connector the bot writes to, the Microsoft identity platform's
token endpoint, the Bot Framework's OpenID metadata and signing keys, and people writing in Teams.

The connector answers `POST /v3/conversations/{id}/activities` (messages, typing) and
`PUT /v3/conversations/{id}/activities/{activityId}` (edits, card updates) in the Bot Framework's
shapes, only with an access token issued by `POST /token` (client credentials, the app's id and
secret checked). `GET /openid` and `GET /keys` publish the RSA key that signs the JWT sent with
each activity (iss https://api.botframework.com, aud the app id, serviceurl this server), so the
channel's check runs on a real signature. People's files are served pre-authenticated at
`/files/{id}`, like SharePoint's download links.
"""

from __future__ import annotations

import functools
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.channels.harness import PlatformMessage

APP_ID = "00000000-1111-2222-3333-444444444444"
APP_PASSWORD = "fake~client~secret"
TENANT = "99999999-8888-7777-6666-555555555555"
ISSUER = "https://api.botframework.com"


@functools.cache
def shared_key(purpose: str) -> rsa.RSAPrivateKey:
    """One RSA key per purpose and test process (making one takes ~50 ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Sent:
    id: str
    conversation: str
    activity: dict[str, Any]
    edits: list[dict[str, Any]] = field(default_factory=list)


class FakeTeams:
    def __init__(self) -> None:
        self.key = shared_key("bot framework")
        self.kid = "fake-" + secrets.token_hex(8)
        self.sent: list[Sent] = []
        self.typing: list[str] = []  # conversations a typing activity went to
        self.files: dict[str, bytes] = {}
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.down = False
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(int(time.time() * 1000))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        return self.base_url + "/"

    def next_id(self) -> str:
        return str(next(self._ids))

    async def start(self) -> None:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/token", self._token)
        app.router.add_get("/openid", self._openid)
        app.router.add_get("/keys", self._keys)
        app.router.add_get("/files/{id}", self._file)
        app.router.add_post("/v3/conversations/{conversation}/activities", self._send)
        app.router.add_put("/v3/conversations/{conversation}/activities/{id}", self._update)
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

    # -- Microsoft's side ---------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.down:
            return web.json_response({"error": {"code": "ServiceError", "message": "Unavailable"}}, status=503)
        if request.path.startswith("/v3/"):
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return web.json_response({"message": "Authorization has been denied for this request."}, status=401)
        return await handler(request)  # type: ignore[no-any-return]

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials" or form.get("scope") != "https://api.botframework.com/.default":
            return web.json_response({"error": "invalid_request"}, status=400)
        if form.get("client_id") != APP_ID or form.get("client_secret") != APP_PASSWORD:
            return web.json_response({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client"
                                      " secret provided."}, status=401)
        token = "eyJ0-fake-" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                  "access_token": token})

    async def _openid(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": ISSUER, "authorization_endpoint": "https://invalid.botframework.com",
                                  "jwks_uri": f"{self.base_url}/keys", "id_token_signing_alg_values_supported": ["RS256"],
                                  "token_endpoint_auth_methods_supported": ["private_key_jwt"]})

    async def _keys(self, request: web.Request) -> web.Response:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", endorsements=["msteams", "skype"])
        return web.json_response({"keys": [jwk]})

    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["id"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def _send(self, request: web.Request) -> web.Response:
        conversation = request.match_info["conversation"]
        activity = await request.json()
        if activity.get("type") == "typing":
            self.typing.append(conversation)
            return web.json_response({}, status=201)
        if activity.get("type") != "message" or not (activity.get("text") or activity.get("attachments")):
            return web.json_response({"error": {"code": "BadArgument", "message": "Activity is empty"}}, status=400)
        if len(json.dumps(activity)) > 28000:
            return web.json_response({"error": {"code": "MessageSizeTooBig", "message": "Message too large"}},
                                     status=413)
        sent = Sent(self.next_id(), conversation, activity)
        self.sent.append(sent)
        return web.json_response({"id": sent.id}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        sent = next((s for s in self.sent if s.id == request.match_info["id"]), None)
        if sent is None or sent.conversation.split(";")[0] != request.match_info["conversation"].split(";")[0]:
            return web.json_response({"error": {"code": "NotFound", "message": "Activity not found"}}, status=404)
        update = await request.json()
        sent.edits.append(update)
        sent.activity = {**sent.activity, **{k: v for k, v in update.items() if k in ("text", "attachments")}}
        return web.json_response({"id": sent.id})

    # -- the people's side --------------------------------------------------------------

    def token(self, *, audience: str = APP_ID, issuer: str = ISSUER, age: float = 0.0, key: Any = None,
              service_url: str | None = None) -> str:
        """The JWT the Bot Framework sends with an activity (`age` seconds old; another `key` forges it)."""
        issued = int(time.time() - age)
        claims = {"iss": issuer, "aud": audience, "iat": issued, "nbf": issued, "exp": issued + 3600,
                  "serviceurl": service_url or self.service_url}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})

    def as_platform(self, sent: Sent) -> PlatformMessage:
        activity = sent.activity
        cards = [a["content"] for a in activity.get("attachments") or []
                 if a.get("contentType") == "application/vnd.microsoft.card.adaptive"]
        text = activity.get("text") or "\n".join(b.get("text", "") for c in cards for b in c.get("body", [])
                                                 if b.get("type") == "TextBlock")
        buttons = tuple(a["title"] for c in cards for a in c.get("actions", []))
        base, _, thread = sent.conversation.partition(";messageid=")
        return PlatformMessage(sent.id, base, text, thread or None, buttons=buttons,
                               edits=[e.get("text") or json.dumps(e.get("attachments")) for e in sent.edits],
                               raw=activity)


async def post_activity(url: str, activity: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None
            return response.status, answer
