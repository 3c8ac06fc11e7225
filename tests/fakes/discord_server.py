"""A fake Discord for tests: REST API v10, the CDN for attachments, and the gateway (websocket), on 127.0.0.1.

It speaks the wire format discord.py expects: HELLO → IDENTIFY → READY (guild unavailable) →
GUILD_CREATE, heartbeats, dispatches with increasing `s`, RESUME → replay of missed events →
RESUMED, zlib-stream compression when the client asks for it. One guild with a text channel
and an active thread, and one DM channel. It records what the bot did (`messages`,
`reactions`, `typing`, `interaction_responses`) and lets a test act as people (`say`, `press`,
`submit_modal`) or as a misbehaving platform (`dispatch`, `send_raw`, `drop`, `down`).

Interactions follow Discord's rules: one callback per interaction (a second is 400, code 40060),
a MODAL callback (type 9) only for a button press (not for a modal submission), and a modal
must have a title, a custom_id and 1–5 components, its text inputs a custom_id.

Every message (people's and the bot's) is kept per channel and served by GET
/channels/{id}/messages as Discord does: at most `limit` (1–100, default 50) messages, newest
first; with `after` the ones right after that id, with `before` the ones right before it
(discord.py's history() pages with `after` taking the first, newest, id as its next cursor).
`forbidden` channels answer 403, unknown ones 404; `drop(resumable=False)` ends the sessions
so the bot must IDENTIFY afresh (a RESUME is refused with op 9).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import mimetypes
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import unquote

from aiohttp import WSMsgType, web

TOKEN = "MTAwMDAwMDAwMDAwMDAwOTAw.fake.discord-bot-token"
API = "/api/v10"
GUILD = "1000000000000000001"
BOT_ID = "1000000000000000900"
APP_ID = "1000000000000000800"
TEXT_CHANNEL = "1100000000000000001"
THREAD = "1300000000000000001"
DM_CHANNEL = "1200000000000000001"
TIMESTAMP = "2025-01-01T12:00:00.000000+00:00"
HEARTBEAT_MS = 41250
MESSAGE_CONTENT_INTENT = 1 << 15


@dataclass
class Posted:
    """A message the bot created, as the fake stored it."""

    id: str
    channel_id: str
    content: str
    components: list[dict[str, Any]] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    edits: list[str] = field(default_factory=list)
    reactions: list[str] = field(default_factory=list)
    nonce: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Session:
    id: str
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, for RESUME
    conn: _Conn | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Conn:
    """One gateway websocket; compresses as a zlib stream when the client asked for it."""

    def __init__(self, ws: web.WebSocketResponse, zlib_stream: bool) -> None:
        self.ws = ws
        self._zlib = zlib.compressobj() if zlib_stream else None

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        if self._zlib is None:
            await self.ws.send_str(text)
        else:
            await self.ws.send_bytes(self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH))


class DiscordFake:
    def __init__(self) -> None:
        self.port = 0
        self.messages: list[Posted] = []  # by the bot, oldest first
        self.reactions: dict[str, list[str]] = {}  # message id → emoji the bot added
        self.typing: list[str] = []  # channel ids
        self.interaction_responses: list[dict[str, Any]] = []  # callback bodies, with the interaction "id"
        self._interaction_types: dict[str, int] = {}  # interaction id → type, until it is answered
        self.identifies = 0
        self.resumes = 0
        self.down = False
        self.gateway_down = False  # True: the gateway refuses websocket connections (503)
        self.message_content_allowed = True  # False: the portal's Message Content switch is off (close 4014)
        self.channels: dict[str, dict[str, Any]] = {
            TEXT_CHANNEL: {"id": TEXT_CHANNEL, "type": 0, "guild_id": GUILD, "name": "general", "position": 0,
                           "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None},
            THREAD: {"id": THREAD, "type": 11, "guild_id": GUILD, "parent_id": TEXT_CHANNEL, "name": "plans",
                     "owner_id": "1400000000000000001", "message_count": 1, "member_count": 1,
                     "rate_limit_per_user": 0, "flags": 0,
                     "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                         "archive_timestamp": TIMESTAMP, "locked": False}},
            DM_CHANNEL: {"id": DM_CHANNEL, "type": 1, "recipients": [], "last_message_id": None},
        }
        self.files: dict[str, bytes] = {}  # CDN path → bytes
        self.history: dict[str, list[dict[str, Any]]] = {}  # channel id → messages as REST returns them, oldest first
        self.history_requests: list[tuple[str, dict[str, str]]] = []  # (channel id, query) of GET messages
        self.forbidden: set[str] = set()  # channels whose messages the bot may not read (403)
        self._ids = itertools.count(1500000000000000001)
        self._users: dict[str, str] = {}
        self._sessions: dict[str, _Session] = {}
        self._conns: set[_Conn] = set()
        self._runner: web.AppRunner | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)
        r = app.router
        r.add_get(f"{API}/users/@me", self._me)
        r.add_get(f"{API}/oauth2/applications/@me", self._application)
        r.add_get(f"{API}/gateway/bot", self._gateway_bot)
        r.add_get(f"{API}/channels/{{cid}}", self._get_channel)
        r.add_post(f"{API}/channels/{{cid}}/messages", self._create_message)
        r.add_get(f"{API}/channels/{{cid}}/messages", self._get_messages)
        r.add_patch(f"{API}/channels/{{cid}}/messages/{{mid}}", self._edit_message)
        r.add_put(f"{API}/channels/{{cid}}/messages/{{mid}}/reactions/{{emoji}}/@me", self._react)
        r.add_post(f"{API}/channels/{{cid}}/typing", self._typing)
        r.add_post(f"{API}/interactions/{{iid}}/{{token}}/callback", self._interaction_callback)
        r.add_get("/attachments/{path:.+}", self._cdn)
        r.add_get("/gateway", self._gateway)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for conn in list(self._conns):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- people and the platform, for tests ---------------------------------------------------

    def user_id(self, name: str) -> str:
        """A snowflake for a test's user name ("u1" → 14…01); numeric names are taken as they are."""
        if name.isdigit():
            return name
        return self._users.setdefault(name, str(1400000000000000001 + len(self._users)))

    def next_id(self) -> str:
        return str(next(self._ids))

    def user_json(self, user_id: str, name: str, bot: bool = False) -> dict[str, Any]:
        return {"id": user_id, "username": name.lower(), "global_name": name, "discriminator": "0",
                "avatar": None, "bot": bot}

    def bot_user(self) -> dict[str, Any]:
        return {**self.user_json(BOT_ID, "Andy", bot=True), "verified": True, "mfa_enabled": False, "flags": 0}

    async def say(self, channel_id: str, content: str, *, user: dict[str, Any],
                  mentions: Sequence[dict[str, Any]] = (), files: Sequence[tuple[str, bytes, int | None]] = (),
                  msg_type: int = 0) -> str:
        """A MESSAGE_CREATE as Discord sends it; files are (name, data, claimed size or None)."""
        message_id = self.next_id()
        attachments = []
        for name, data, size in files:
            attachment_id = self.next_id()
            path = f"{channel_id}/{attachment_id}/{name}"
            self.files[path] = data
            url = f"http://127.0.0.1:{self.port}/attachments/{path}"
            attachments.append({"id": attachment_id, "filename": name, "size": len(data) if size is None else size,
                                "url": url, "proxy_url": url, "content_type": _mime(name)})
        data: dict[str, Any] = {
            "id": message_id, "channel_id": channel_id, "author": user, "content": content, "timestamp": TIMESTAMP,
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": list(mentions),
            "mention_roles": [], "attachments": attachments, "embeds": [], "pinned": False, "type": msg_type,
            "flags": 0,
        }
        guild_id = self.channels.get(channel_id, {}).get("guild_id")
        if guild_id:
            data["guild_id"] = guild_id
            data["member"] = {"roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False, "flags": 0}
        self._keep(data)
        await self.dispatch("MESSAGE_CREATE", data)
        return message_id

    async def press(self, message: Posted, label: str, user: dict[str, Any]) -> str:
        """A person presses the button `label` under the bot's `message` (INTERACTION_CREATE, type 3)."""
        button = next(c for row in message.components for c in row["components"] if c.get("label") == label)
        return await self._interact(message, 3, {"custom_id": button["custom_id"], "component_type": 2}, user)

    async def submit_modal(self, message: Posted, modal: dict[str, Any], values: dict[str, str],
                           user: dict[str, Any]) -> str:
        """A person fills in and submits `modal` (the data of a type-9 callback), opened from a button of `message`:
        INTERACTION_CREATE type 5 MODAL_SUBMIT, whose components mirror the modal's with each text input's value."""
        return await self._interact(message, 5, {"custom_id": modal["custom_id"],
                                                 "components": _submitted(modal["components"], values)}, user)

    async def wait_response(self, interaction_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The bot's callback to interaction `interaction_id`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for response in self.interaction_responses:
                if response["id"] == interaction_id:
                    return response
            if loop.time() > deadline:
                raise AssertionError(f"no callback to interaction {interaction_id}: {self.interaction_responses}")
            await asyncio.sleep(0.02)

    async def _interact(self, message: Posted, kind: int, inner: dict[str, Any], user: dict[str, Any]) -> str:
        interaction_id = self.next_id()
        channel = self.channels.get(message.channel_id, {"id": message.channel_id, "type": 0})
        data: dict[str, Any] = {
            "id": interaction_id, "application_id": APP_ID, "type": kind, "token": f"itoken-{interaction_id}",
            "version": 1, "channel_id": message.channel_id, "channel": channel, "data": inner,
            "message": message.raw, "locale": "en-US", "app_permissions": "0", "attachment_size_limit": 26214400,
            "entitlements": [], "authorizing_integration_owners": {},
        }
        if channel.get("guild_id"):
            data["guild_id"] = channel["guild_id"]
            data["member"] = {"user": user, "roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False,
                              "flags": 0, "permissions": "0"}
        else:
            data["user"] = user
        self._interaction_types[interaction_id] = kind
        await self.dispatch("INTERACTION_CREATE", data)
        return interaction_id

    async def dispatch(self, event: str, data: Any) -> None:
        """Send a dispatch (op 0) to every session; a disconnected session gets it on RESUME."""
        for session in list(self._sessions.values()):
            await self._dispatch_to(session, event, data)

    async def send_raw(self, text: str) -> None:
        """A frame that is not what Discord sends (to test robustness)."""
        for conn in list(self._conns):
            await conn.send_raw(text)

    async def drop(self, resumable: bool = True) -> None:
        """Close every gateway connection the way a Discord restart does (the sessions stay resumable
        unless `resumable` is False: then a RESUME is refused and the bot must IDENTIFY again)."""
        for session in self._sessions.values():
            session.conn = None
        if not resumable:
            self._sessions.clear()
        conns, self._conns = list(self._conns), set()
        await asyncio.gather(*(asyncio.wait_for(c.ws.close(code=1001), 2) for c in conns), return_exceptions=True)

    # --- gateway ------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_down:
            return web.Response(status=503)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, request.query.get("compress") == "zlib-stream")
        self._conns.add(conn)
        await conn.send({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, d = frame.get("op"), frame.get("d")
                if op == 1:
                    await conn.send({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self._identify(conn, d)
                elif op == 6:
                    await self._resume(conn, d)
        finally:
            self._conns.discard(conn)
            for session in self._sessions.values():
                if session.conn is conn:
                    session.conn = None
        return ws

    async def _identify(self, conn: _Conn, d: dict[str, Any]) -> None:
        if d.get("token") != TOKEN:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if int(d.get("intents") or 0) & MESSAGE_CONTENT_INTENT and not self.message_content_allowed:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        session = _Session(secrets.token_hex(16), conn=conn)
        ready = {
            "v": 10, "user": self.bot_user(), "guilds": [{"id": GUILD, "unavailable": True}],
            "session_id": session.id, "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
            "application": {"id": APP_ID, "flags": 0}, "private_channels": [], "relationships": [],
        }
        if "shard" in d:
            ready["shard"] = d["shard"]
        await self._dispatch_to(session, "READY", ready)
        await self._dispatch_to(session, "GUILD_CREATE", self._guild())
        self._sessions[session.id] = session  # events from now on reach it
        self.identifies += 1

    async def _resume(self, conn: _Conn, d: dict[str, Any]) -> None:
        session = self._sessions.get(str(d.get("session_id")))
        if d.get("token") != TOKEN or session is None:
            await conn.send({"op": 9, "d": False, "s": None, "t": None})
            return
        self.resumes += 1
        seen = int(d.get("seq") or 0)
        async with session.lock:
            session.conn = conn
            for frame in session.log:
                if frame["s"] > seen:
                    await conn.send(frame)
        await self._dispatch_to(session, "RESUMED", {})

    async def _dispatch_to(self, session: _Session, event: str, data: Any) -> None:
        async with session.lock:
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": data}
            session.log.append(frame)
            if session.conn is not None:
                try:
                    await session.conn.send(frame)
                except (ConnectionError, RuntimeError):
                    session.conn = None

    def _guild(self) -> dict[str, Any]:
        channels = [c for c in self.channels.values() if c.get("guild_id") == GUILD and c["type"] != 11]
        threads = [c for c in self.channels.values() if c.get("guild_id") == GUILD and c["type"] == 11]
        return {
            "id": GUILD, "name": "Family", "icon": None, "owner_id": "1400000000000000001", "unavailable": False,
            "member_count": 3, "large": False, "features": [], "roles": [
                {"id": GUILD, "name": "@everyone", "permissions": "1071698660929", "position": 0, "color": 0,
                 "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
            "emojis": [], "stickers": [], "members": [], "voice_states": [], "presences": [],
            "channels": channels, "threads": threads, "stage_instances": [], "guild_scheduled_events": [],
            "joined_at": TIMESTAMP, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "premium_tier": 0, "preferred_locale": "en-US",
            "nsfw_level": 0, "system_channel_flags": 0,
        }

    # --- REST ---------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {TOKEN}"

    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 0, "401: Unauthorized")
        return _json(self.bot_user())

    async def _application(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 0, "401: Unauthorized")
        return _json({
            "id": APP_ID, "name": "Andy", "description": "", "icon": None, "bot_public": False,
            "bot_require_code_grant": False, "verify_key": "00" * 32, "flags": 0,
            "owner": self.user_json("1400000000000000001", "Owner"),
        })

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 0, "401: Unauthorized")
        return _json({
            "url": f"ws://127.0.0.1:{self.port}/gateway", "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
        })

    async def _get_channel(self, request: web.Request) -> web.Response:
        failed = self._refuse(request)
        if failed is not None:
            return failed
        channel = self.channels.get(request.match_info["cid"])
        return _json(channel) if channel else _error(404, 10003, "Unknown Channel")

    async def _create_message(self, request: web.Request) -> web.Response:
        failed = self._refuse(request)
        if failed is not None:
            return failed
        channel_id = request.match_info["cid"]
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        payload, files = await _read_message_body(request)
        content = payload.get("content") or ""
        if len(content) > 2000:
            return _error(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.")
        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            for earlier in self.messages:
                if earlier.nonce == nonce and earlier.channel_id == channel_id:
                    return _json(earlier.raw)  # what Discord does with a repeated nonce
        message_id = self.next_id()
        raw = {
            "id": message_id, "channel_id": channel_id, "author": self.bot_user(), "content": content,
            "timestamp": TIMESTAMP, "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": [], "mention_roles": [], "embeds": [], "pinned": False, "type": 0, "flags": 0,
            "components": payload.get("components") or [], "nonce": nonce,
            "attachments": [{"id": self.next_id(), "filename": name, "size": len(data),
                             "url": f"http://127.0.0.1:{self.port}/attachments/{channel_id}/{message_id}/{name}",
                             "proxy_url": ""} for name, data in files],
        }
        self._keep(raw)
        guild_id = self.channels[channel_id].get("guild_id")
        if guild_id:
            raw["guild_id"] = guild_id
        self.messages.append(Posted(message_id, channel_id, content, raw["components"], files, nonce=nonce,
                                    raw={**raw, "allowed_mentions": payload.get("allowed_mentions")}))
        return _json(raw)

    def _keep(self, data: dict[str, Any]) -> None:
        """A message as GET /channels/{id}/messages returns it (no guild_id, no member)."""
        kept = {k: v for k, v in data.items() if k not in ("guild_id", "member")}
        self.history.setdefault(data["channel_id"], []).append(kept)

    async def _get_messages(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 0, "401: Unauthorized")
        channel_id = request.match_info["cid"]
        self.history_requests.append((channel_id, dict(request.query)))
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        if channel_id in self.forbidden:
            return _error(403, 50001, "Missing Access")
        if self.down:
            return _error(503, 0, "Service Unavailable")
        try:
            limit = int(request.query.get("limit", "50"))
            after = int(request.query["after"]) if "after" in request.query else None
            before = int(request.query["before"]) if "before" in request.query else None
        except ValueError:
            return _error(400, 50035, "Invalid Form Body")
        if not 1 <= limit <= 100:
            return _error(400, 50035, "Invalid Form Body: limit: int value should be between 1 and 100.")
        found = sorted(self.history.get(channel_id, []), key=lambda m: int(m["id"]))
        if before is not None:
            found = [m for m in found if int(m["id"]) < before]
        if after is not None:
            found = [m for m in found if int(m["id"]) > after][:limit]  # the ones right after `after`
        else:
            found = found[-limit:]  # the newest
        return _json(list(reversed(found)))  # newest first, always

    async def _edit_message(self, request: web.Request) -> web.Response:
        failed = self._refuse(request)
        if failed is not None:
            return failed
        posted = self._find(request.match_info["cid"], request.match_info["mid"])
        if posted is None:
            return _error(404, 10008, "Unknown Message")
        payload, _ = await _read_message_body(request)
        if "content" in payload:
            posted.edits.append(payload["content"] or "")
            posted.raw["content"] = payload["content"]
        if "components" in payload:
            posted.components = posted.raw["components"] = payload["components"] or []
        return _json({**posted.raw, "edited_timestamp": TIMESTAMP})

    async def _react(self, request: web.Request) -> web.Response:
        failed = self._refuse(request)
        if failed is not None:
            return failed
        if request.match_info["cid"] not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        emoji = unquote(request.match_info["emoji"])
        self.reactions.setdefault(request.match_info["mid"], []).append(emoji)
        posted = self._find(request.match_info["cid"], request.match_info["mid"])
        if posted is not None:
            posted.reactions.append(emoji)
        return web.Response(status=204)

    async def _typing(self, request: web.Request) -> web.Response:
        failed = self._refuse(request)
        if failed is not None:
            return failed
        self.typing.append(request.match_info["cid"])
        return web.Response(status=204)

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        interaction_id = request.match_info["iid"]
        # No bot token here: the interaction's own token in the path is the credential (Discord checks it).
        if request.match_info["token"] != f"itoken-{interaction_id}":
            return _error(401, 50027, "Invalid Webhook Token")
        body = await request.json()
        kind = self._interaction_types.pop(interaction_id, None)
        if kind is None:
            if any(r["id"] == interaction_id for r in self.interaction_responses):
                return _error(400, 40060, "Interaction has already been acknowledged.")
            return _error(404, 10062, "Unknown interaction")
        problem = _modal_problem(body.get("data") or {}) if body.get("type") == 9 else None
        if body.get("type") == 9 and kind == 5:
            problem = "Interaction response type 9 is not valid for a modal submission"
        if problem is not None:
            self._interaction_types[interaction_id] = kind  # not answered yet
            return _error(400, 50035, f"Invalid Form Body: {problem}")
        self.interaction_responses.append({"id": interaction_id, **body})
        flags = (body.get("data") or {}).get("flags") or 0
        return _json({"interaction": {"id": interaction_id, "type": kind,
                                      "response_message_ephemeral": bool(flags & 64)},
                      "resource": {"type": body.get("type")}})

    async def _cdn(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["path"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    def _refuse(self, request: web.Request) -> web.Response | None:
        if not self._authorized(request):
            return _error(401, 0, "401: Unauthorized")
        if self.down:
            return _error(503, 0, "Service Unavailable")
        return None

    def _find(self, channel_id: str, message_id: str) -> Posted | None:
        return next((m for m in self.messages if m.id == message_id and m.channel_id == channel_id), None)


async def _read_message_body(request: web.Request) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """JSON, or multipart with `payload_json` and `files[n]` parts (how discord.py uploads)."""
    if not request.content_type.startswith("multipart/"):
        return await request.json(), []
    payload: dict[str, Any] = {}
    files: list[tuple[str, bytes]] = []
    reader = await request.multipart()
    async for part in reader:
        if part.name == "payload_json":
            payload = json.loads(await part.text())  # type: ignore[union-attr]
        elif part.name and part.name.startswith("files["):
            files.append((part.filename or "file", bytes(await part.read())))  # type: ignore[union-attr]
    return payload, files


def _modal_problem(modal: dict[str, Any]) -> str | None:
    """What Discord would refuse in a modal (a type-9 callback's data), or None."""
    title, custom_id, components = modal.get("title"), modal.get("custom_id"), modal.get("components")
    if not isinstance(title, str) or not 1 <= len(title) <= 45:
        return "data.title: Must be between 1 and 45 in length."
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        return "data.custom_id: Must be between 1 and 100 in length."
    if not isinstance(components, list) or not 1 <= len(components) <= 5:
        return "data.components: Must be between 1 and 5 in length."
    inputs = [c for c in _walk(components) if c.get("type") == 4]
    if not inputs or any(not c.get("custom_id") or c.get("style") not in (1, 2) for c in inputs):
        return "data.components: a text input needs a custom_id and a style."
    for label in (c for c in components if c.get("type") == 18):
        if not 1 <= len(label.get("label") or "") <= 45 or len(label.get("description") or "") > 100:
            return "data.components.label: label 1 to 45, description at most 100 characters."
    return None


def _walk(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for component in components:
        found.append(component)
        found.extend(_walk(component.get("components") or []))
        if isinstance(component.get("component"), dict):
            found.extend(_walk([component["component"]]))
    return found


def _submitted(components: list[dict[str, Any]], values: dict[str, str]) -> list[dict[str, Any]]:
    """A modal's components as Discord returns them on submission: ids, custom_ids and values only."""
    out: list[dict[str, Any]] = []
    for index, component in enumerate(components, 1):
        item: dict[str, Any] = {"type": component["type"], "id": component.get("id", index)}
        if component["type"] == 1:  # an action row (the older layout)
            item["components"] = _submitted(component.get("components") or [], values)
        elif component["type"] == 18:  # a label around one component
            item["component"] = _submitted([component["component"]], values)[0]
        elif component["type"] == 4:
            item.update(custom_id=component["custom_id"], value=values.get(component["custom_id"], ""))
        out.append(item)
    return out


def text_inputs(modal: dict[str, Any]) -> list[dict[str, Any]]:
    """The text inputs (type 4) of a modal, wherever they sit (in labels or action rows)."""
    return [c for c in _walk(modal.get("components") or []) if c.get("type") == 4]


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only when Content-Type is exactly "application/json" (no charset)
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status=status)


def _mime(name: str) -> str | None:
    return mimetypes.guess_type(name)[0]
