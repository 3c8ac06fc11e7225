"""A fake Slack on 127.0.0.1: the Web API methods NanoClaw uses, Socket Mode and Events API delivery.

The real slack-sdk/slack-bolt talk to it through SLACK_API_URL. It records what
the bot did (messages, edits, reactions, uploads, acks, opened modals, every
Web API call's arguments) and lets a test act as a person: write (with a
mention, in a thread, with a file), press a Block Kit button, fill in and submit
a modal the bot opened, or play a misbehaving platform (garbage, bad signatures,
outages, dropped sockets). Wire formats follow Slack's docs and the SDK's parsing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

BOT_TOKEN = "xoxb-1-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_USER = "U0BOTANDY1"
BOT_ID = "B0BOTANDY1"
TEAM = "T0TEAM0001"
APP_ID = "A0APP00001"
TRIGGER_TTL = 3.0  # seconds a trigger_id can open a view
ACK_TIMEOUT = 3.0  # Slack waits this long for an interaction's ack
EMOJI = {"thumbsup": "👍", "+1": "👍", "white_check_mark": "✅", "eyes": "👀", "x": "❌", "tada": "🎉"}


@dataclass
class Message:
    """A message in the fake workspace, a person's or the bot's."""

    ts: str
    channel: str
    text: str
    user: str
    thread_ts: str | None = None
    by_bot: bool = False  # posted by our bot through the Web API
    blocks: list[dict[str, Any]] = field(default_factory=list)
    file_name: str | None = None
    file_data: bytes | None = None
    edits: list[str] = field(default_factory=list)
    edited_blocks: list[list[dict[str, Any]]] = field(default_factory=list)
    reactions: list[str] = field(default_factory=list)  # Slack names
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class OpenView:
    """A modal the bot opened with views.open (the view as Slack stored it)."""

    view: dict[str, Any]
    user: str  # who pressed the button whose trigger_id opened it
    trigger_id: str
    errors: dict[str, str] = field(default_factory=dict)  # from the last submission's response_action "errors"
    closed: bool = False
    submissions: int = 0

    def inputs(self) -> list[tuple[str, str]]:
        """(block_id, action_id) of each plain_text_input in the view."""
        return [(b["block_id"], b["element"]["action_id"]) for b in self.view.get("blocks", [])
                if b.get("type") == "input" and b.get("element", {}).get("type") == "plain_text_input"]


def sign(body: str, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """X-Slack-Signature of a request body (v0 HMAC-SHA256)."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


class FakeSlack:
    def __init__(self, *, socket_mode: bool = True, events_url: Callable[[], str] | None = None,
                 channels: dict[str, str] | None = None) -> None:
        self.socket_mode = socket_mode
        self.events_url = events_url  # Events API mode: where Slack posts (the host's /hooks/slack)
        self.channels = channels or {}  # id → name; ids starting with D are DMs
        self.users: dict[str, str] = {}
        self.messages: list[Message] = []
        self.ephemeral: list[dict[str, Any]] = []
        self.acks: list[str] = []
        self.calls: list[str] = []  # Web API methods called, in order
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (method, arguments) of every Web API call
        self.views: list[OpenView] = []
        self.ack_payloads: dict[str, Any] = {}  # Socket Mode envelope id → the payload its ack carried
        self._acked = asyncio.Condition()
        self._tickets: set[str] = set()  # issued by apps.connections.open, each good for one connection
        self._triggers: dict[str, tuple[float, str]] = {}  # trigger_id → (issued at, user)
        self._used_triggers: set[str] = set()
        self._trigger_numbers = itertools.count(100000)
        self.down = False
        self.echo_bot_messages = True  # Slack sends the bot's own posts back as message events
        # Socket Mode events with no connection wait for the next one (Slack retries); False: they are lost,
        # as when Slack has given up (only conversations.history/replies still show them).
        self.queue_while_disconnected = True
        self.lost: list[str] = []  # frames dropped for want of a connection
        self._sockets: set[web.WebSocketResponse] = set()
        self._pending: list[str] = []  # envelopes waiting for a Socket Mode connection
        self._uploads: dict[str, dict[str, Any]] = {}
        self._files: dict[str, bytes] = {}
        self._ts = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- server ------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def next_ts(self) -> str:
        n = next(self._ts)
        return f"{1710000000 + n}.{n:06d}"

    # -- Web API ---------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="<html>Service Unavailable</html>", content_type="text/html")
        method = request.match_info["method"]
        self.calls.append(method)
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.can_read_body:
            args.update(await request.post())
        self.requests.append((method, json.loads(json.dumps(args, default=str))))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        if token != wanted:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(await handler(args))

    async def m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "andy", "team_id": TEAM,
                "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}

    async def m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"}

    async def m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        blocks = args.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        msg = Message(self.next_ts(), channel, str(args.get("text") or ""), BOT_USER, args.get("thread_ts") or None,
                      by_bot=True, blocks=blocks, raw=dict(args))
        self.messages.append(msg)
        self._echo(msg)
        return {"ok": True, "channel": channel, "ts": msg.ts,
                "message": {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": msg.text, "ts": msg.ts}}

    async def m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """A channel's top-level messages (and thread parents, broadcasts) in (oldest, latest], newest first."""
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        top = [m for m in self.messages if m.channel == channel
               and (m.thread_ts in (None, m.ts) or m.raw.get("subtype") == "thread_broadcast")]
        found = sorted(self._in_range(top, args), key=lambda m: _ts(m.ts), reverse=True)
        limit = _limit(args)
        return {"ok": True, "messages": [self._wire(m) for m in found[:limit]], "has_more": len(found) > limit,
                "pin_count": 0, "response_metadata": {"next_cursor": ""}}

    async def m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent always first (whatever oldest says), then the replies in range, oldest first."""
        channel, ts = str(args.get("channel")), str(args.get("ts"))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        parent = self.find(ts, channel)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        replies = [m for m in self.messages if m.channel == channel and m.thread_ts == ts and m.ts != ts]
        found = sorted(self._in_range(replies, args), key=lambda m: _ts(m.ts))
        limit = _limit(args)
        return {"ok": True, "messages": [self._wire(m) for m in [parent, *found[:limit - 1]]],
                "has_more": len(found) > limit - 1, "response_metadata": {"next_cursor": ""}}

    def _in_range(self, messages: list[Message], args: dict[str, Any]) -> list[Message]:
        inclusive = str(args.get("inclusive", "0")).lower() in ("1", "true")
        oldest, latest = _ts(str(args.get("oldest") or "0")), _ts(str(args.get("latest") or "9999999999"))
        return [m for m in messages if (oldest <= _ts(m.ts) if inclusive else oldest < _ts(m.ts))
                and _ts(m.ts) <= latest]

    def _wire(self, m: Message) -> dict[str, Any]:
        """A message as conversations.history shows it: its event without channel, channel_type, event_ts."""
        if m.raw.get("type") == "message":
            wire = {k: v for k, v in m.raw.items() if k not in ("channel", "channel_type", "event_ts")}
        elif m.by_bot:
            wire = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "app_id": APP_ID, "text": m.text,
                    "ts": m.ts}
        else:
            wire = {"type": "message", "user": m.user, "text": m.text, "ts": m.ts}
        if m.thread_ts:
            wire["thread_ts"] = m.thread_ts
        replies = [r for r in self.messages if r.channel == m.channel and r.thread_ts == m.ts and r.ts != m.ts]
        if replies:  # a thread's parent
            wire.update(thread_ts=m.ts, reply_count=len(replies), latest_reply=replies[-1].ts)
        return wire

    async def m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self.find(str(args.get("ts")), str(args.get("channel")))
        if msg is None or not msg.by_bot:
            return {"ok": False, "error": "message_not_found" if msg is None else "cant_update_message"}
        msg.edits.append(str(args.get("text") or ""))
        blocks = args.get("blocks")
        msg.edited_blocks.append(json.loads(blocks) if isinstance(blocks, str) else blocks or [])
        if blocks is not None:  # chat.update keeps the message's blocks unless it is given new ones
            msg.blocks = msg.edited_blocks[-1]
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.edits[-1]}

    async def m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self.ephemeral.append(dict(args))
        return {"ok": True, "message_ts": self.next_ts()}

    async def m_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self.find(str(args.get("timestamp")), str(args.get("channel")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        name = str(args.get("name"))
        if name in msg.reactions:
            return {"ok": False, "error": "already_reacted"}
        msg.reactions.append(name)
        return {"ok": True}

    async def m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = str(args.get("trigger_id") or "")
        if trigger in self._used_triggers:
            return {"ok": False, "error": "exchanged_trigger_id"}
        issued = self._triggers.pop(trigger, None)
        if issued is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        self._used_triggers.add(trigger)
        if time.monotonic() - issued[0] > TRIGGER_TTL:
            return {"ok": False, "error": "expired_trigger_id"}
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        problems = view_problems(view)
        if problems:
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": problems}}
        view_id = f"V{uuid.uuid4().hex[:10].upper()}"
        stored = {"id": view_id, "team_id": TEAM, "type": "modal", "blocks": view["blocks"],
                  "private_metadata": view.get("private_metadata", ""), "callback_id": view.get("callback_id", ""),
                  "state": {"values": {}}, "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
                  "title": view["title"], "clear_on_close": bool(view.get("clear_on_close")),
                  "notify_on_close": bool(view.get("notify_on_close")), "close": view.get("close"),
                  "submit": view.get("submit"), "previous_view_id": None, "root_view_id": view_id, "app_id": APP_ID,
                  "external_id": view.get("external_id", ""), "app_installed_team_id": TEAM, "bot_id": BOT_ID}
        self.views.append(OpenView(stored, issued[1], trigger))
        return {"ok": True, "view": stored}

    async def m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user"))
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        name = self.users[user]
        return {"ok": True, "user": {"id": user, "name": name.lower(), "real_name": name,
                                     "profile": {"display_name": name, "real_name": name}}}

    async def m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        name = self.channels[channel]
        return {"ok": True, "channel": {"id": channel, "name": name, "is_im": channel.startswith("D")}}

    async def m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self._uploads[file_id] = {"name": args.get("filename"), "length": int(args.get("length") or 0)}
        return {"ok": True, "upload_url": f"{self.base}/upload/v1/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="unavailable")
        file_id = request.match_info["file_id"]
        if file_id not in self._uploads:
            return web.Response(status=404, text="no such upload")
        self._uploads[file_id]["data"] = await request.read()
        return web.Response(text=f"OK - {len(self._uploads[file_id]['data'])}")

    async def m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel_id")
        if channel is not None and channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        done = []
        for item in json.loads(str(args.get("files"))):
            upload = self._uploads.get(item["id"])
            if upload is None or "data" not in upload:
                return {"ok": False, "error": "file_not_found"}
            if channel:
                self.messages.append(Message(
                    self.next_ts(), channel, str(args.get("initial_comment") or ""), BOT_USER,
                    args.get("thread_ts") or None, by_bot=True, file_name=upload["name"], file_data=upload["data"],
                    raw=dict(args)))
            done.append({"id": item["id"], "name": upload["name"], "title": item.get("title") or upload["name"],
                         "size": len(upload["data"])})
        return {"ok": True, "files": done}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            # Slack answers an unauthenticated file request with its login page.
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        data = self._files.get(request.match_info["file_id"].rsplit("-", 1)[-1])  # T…-F…
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    # -- Socket Mode -------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:  # Slack only accepts a URL apps.connections.open just issued, once
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self._sockets) + 1,
                                      "debug_info": {"host": "fake"}, "connection_info": {"app_id": APP_ID}}))
        self._sockets.add(ws)
        pending, self._pending = self._pending, []
        for raw in pending:
            await ws.send_str(raw)
        try:
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    with_id = json.loads(frame.data)
                    self.acks.append(with_id.get("envelope_id"))
                    async with self._acked:
                        self.ack_payloads[with_id.get("envelope_id")] = with_id.get("payload")
                        self._acked.notify_all()
        finally:
            self._sockets.discard(ws)
        return ws

    async def send_raw(self, raw: str) -> None:
        """One Socket Mode frame to the app (queued until it connects)."""
        live = [ws for ws in self._sockets if not ws.closed]
        if not live:
            (self._pending if self.queue_while_disconnected else self.lost).append(raw)
            return
        await live[-1].send_str(raw)

    async def drop_connections(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        self._sockets.clear()

    @property
    def connected(self) -> int:
        return sum(1 for ws in self._sockets if not ws.closed)

    # -- delivery -----------------------------------------------------------------------

    async def deliver(self, kind: str, payload: dict[str, Any]) -> int:
        """Send an event ('events_api') or interaction ('interactive') the way the app is set up to get it.

        Returns the HTTP status of the Events API request (200 in Socket Mode)."""
        if self.socket_mode:
            await self.send_raw(json.dumps(self._envelope(kind, payload)))
            return 200
        status, _ = await self._post_payload(kind, payload)
        return status

    async def interact(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Deliver an interaction whose response matters (a view_submission) and return that response.

        Socket Mode: the payload of the envelope's ack; Events API: the JSON body of the HTTP response.
        None: an empty acknowledgement. Like Slack, gives up after 3 s without an ack."""
        if self.socket_mode:
            envelope = self._envelope("interactive", payload)
            await self.send_raw(json.dumps(envelope))
            async with self._acked:
                await asyncio.wait_for(self._acked.wait_for(lambda: envelope["envelope_id"] in self.ack_payloads),
                                       ACK_TIMEOUT)
            return self.ack_payloads[envelope["envelope_id"]]  # type: ignore[no-any-return]
        status, body = await asyncio.wait_for(self._post_payload("interactive", payload), ACK_TIMEOUT)
        assert status == 200, (status, body)
        return json.loads(body) if body.strip() else None

    def _envelope(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"envelope_id": str(uuid.uuid4()), "type": kind, "payload": payload,
                "accepts_response_payload": kind != "events_api", "retry_attempt": 0, "retry_reason": ""}

    async def _post_payload(self, kind: str, payload: dict[str, Any]) -> tuple[int, str]:
        if kind == "events_api":
            return await self._post(json.dumps(payload), "application/json")
        return await self._post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    async def post_signed(self, body: str, content_type: str = "application/json", *, timestamp: str | None = None,
                          signature: str | None = None, signed: bool = True) -> int:
        """POST to the app's Events API URL, signed like Slack unless told otherwise."""
        status, _ = await self._post(body, content_type, timestamp=timestamp, signature=signature, signed=signed)
        return status

    async def _post(self, body: str, content_type: str, *, timestamp: str | None = None,
                    signature: str | None = None, signed: bool = True) -> tuple[int, str]:
        assert self.events_url is not None, "Events API mode needs events_url"
        ts = timestamp or str(int(time.time()))
        headers = {"Content-Type": content_type}
        if signed:
            headers.update({"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or sign(body, ts)})
        async with aiohttp.ClientSession() as session:
            async with session.post(self.events_url(), data=body.encode(), headers=headers) as resp:
                return resp.status, await resp.text()

    def event_callback(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"token": "legacy-verification-token", "team_id": TEAM, "api_app_id": APP_ID, "event": event,
                "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
                "event_time": int(time.time()), "is_ext_shared_channel": False,
                "authorizations": [{"enterprise_id": None, "team_id": TEAM, "user_id": BOT_USER, "is_bot": True,
                                    "is_enterprise_install": False}]}

    def _echo(self, msg: Message) -> None:
        if not self.echo_bot_messages:
            return
        event = {"type": "message", "channel": msg.channel, "user": BOT_USER, "bot_id": BOT_ID, "app_id": APP_ID,
                 "text": msg.text, "ts": msg.ts, "event_ts": msg.ts, "channel_type": self._channel_type(msg.channel)}
        if msg.thread_ts:
            event["thread_ts"] = msg.thread_ts
        task = asyncio.get_running_loop().create_task(self.deliver("events_api", self.event_callback(event)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _channel_type(self, channel: str) -> str:
        return "im" if channel.startswith("D") else "channel"

    # -- a person on Slack ----------------------------------------------------------------

    def add_message(self, channel: str, text: str, user: str, ts: str | None = None) -> Message:
        msg = Message(ts or self.next_ts(), channel, text, user)
        self.messages.append(msg)
        return msg

    async def person_says(self, text: str, *, channel: str, user: str, user_name: str, thread_ts: str | None = None,
                          mention: bool = False, file: tuple[str, bytes] | None = None, bot: bool = False,
                          file_size: int | None = None) -> str:
        if mention:
            text = f"<@{BOT_USER}> {text}"
        msg = self.add_message(channel, text, user)
        msg.thread_ts = thread_ts
        event: dict[str, Any] = {"type": "message", "channel": channel, "text": text, "ts": msg.ts,
                                 "event_ts": msg.ts, "channel_type": self._channel_type(channel), "team": TEAM}
        if bot:
            event.update(subtype="bot_message", bot_id=user, username=user_name)
        else:
            self.users[user] = user_name
            event.update(user=user, client_msg_id=str(uuid.uuid4()))
        if thread_ts:
            event["thread_ts"] = thread_ts
        if file is not None:
            name, data = file
            file_id = f"F{uuid.uuid4().hex[:10].upper()}"
            self._files[file_id] = data
            url = f"{self.base}/files-pri/{TEAM}-{file_id}/{name}"
            event["subtype"] = "file_share"
            event["files"] = [{"id": file_id, "name": name, "title": name, "mimetype": "text/csv",
                               "filetype": name.rsplit(".", 1)[-1], "size": file_size or len(data),
                               "url_private": url, "url_private_download": url + "?download=1"}]
        msg.raw = event
        await self.deliver("events_api", self.event_callback(event))
        return msg.ts

    async def press(self, msg: Message, label: str, user: str, user_name: str = "Alice") -> int:
        status, _ = await self._press(msg, label, user, user_name)
        return status

    async def press_for_view(self, msg: Message, label: str, user: str, user_name: str = "Alice",
                             timeout: float = TRIGGER_TTL + 2) -> OpenView:
        """Press a button that should open a modal; the view the bot opened with its trigger_id."""
        _, trigger = await self._press(msg, label, user, user_name)
        deadline = time.monotonic() + timeout
        while not (opened := [v for v in self.views if v.trigger_id == trigger]):
            assert time.monotonic() < deadline, f"no views.open with the trigger of {label!r}; calls: {self.calls}"
            await asyncio.sleep(0.02)
        return opened[0]

    async def _press(self, msg: Message, label: str, user: str, user_name: str) -> tuple[int, str]:
        blocks = msg.edited_blocks[-1] if msg.edited_blocks else msg.blocks
        for block in blocks:
            for element in block.get("elements") or []:
                if element.get("type") == "button" and element["text"]["text"] == label:
                    payload = self.block_actions(msg, blocks, block, element, user, user_name)
                    return await self.deliver("interactive", payload), payload["trigger_id"]
        raise AssertionError(f"no button {label!r} on message {msg.ts}")

    def new_trigger(self, user: str) -> str:
        """A trigger_id as Slack puts into an interaction: good for one views.open within 3 s."""
        trigger = f"{next(self._trigger_numbers)}.{TEAM[1:]}.{uuid.uuid4().hex}"
        self._triggers[trigger] = (time.monotonic(), user)
        return trigger

    def block_actions(self, msg: Message, blocks: list[dict[str, Any]], block: dict[str, Any],
                      element: dict[str, Any], user: str, user_name: str) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": msg.text,
                                   "ts": msg.ts, "blocks": blocks}
        if msg.thread_ts:
            message["thread_ts"] = msg.thread_ts
        return {
            "type": "block_actions", "token": "legacy-verification-token", "api_app_id": APP_ID,
            "team": {"id": TEAM, "domain": "fake"}, "is_enterprise_install": False,
            "trigger_id": self.new_trigger(user),
            "user": {"id": user, "username": user_name.lower(), "name": user_name.lower(), "team_id": TEAM},
            "container": {"type": "message", "message_ts": msg.ts, "channel_id": msg.channel, "is_ephemeral": False},
            "channel": {"id": msg.channel, "name": self.channels.get(msg.channel, "")},
            "message": message,
            "response_url": f"{self.base}/actions/{msg.ts}",
            "actions": [{"type": "button", "action_id": element["action_id"], "block_id": block.get("block_id"),
                         "text": element["text"], "value": element.get("value"), "action_ts": str(time.time())}],
        }

    async def submit_view(self, opened: OpenView, values: dict[tuple[str, str], str], user_name: str = "Alice"
                          ) -> dict[str, Any] | None:
        """The person who opened the modal fills in its inputs and presses its submit button.

        Sends a view_submission (state.values by block_id and action_id) and applies the app's
        response: none (or response_action "clear") closes the modal, "errors" keeps it open."""
        assert not opened.closed, "the modal was closed"
        assert opened.view.get("submit"), "a modal without a submit button cannot be submitted"
        state: dict[str, dict[str, Any]] = {}
        for block_id, action_id in opened.inputs():
            state.setdefault(block_id, {})[action_id] = {"type": "plain_text_input",
                                                         "value": values.get((block_id, action_id))}
        view = {**opened.view, "state": {"values": state}}
        payload = {
            "type": "view_submission", "token": "legacy-verification-token", "api_app_id": APP_ID,
            "team": {"id": TEAM, "domain": "fake"}, "trigger_id": self.new_trigger(opened.user),
            "user": {"id": opened.user, "username": user_name.lower(), "name": user_name.lower(), "team_id": TEAM},
            "view": view, "response_urls": [], "is_enterprise_install": False, "enterprise": None,
        }
        opened.submissions += 1
        response = await self.interact(payload)
        action = (response or {}).get("response_action")
        if action == "errors":
            errors = response["errors"]  # type: ignore[index]
            known = {block_id for block_id, _ in opened.inputs()}
            assert isinstance(errors, dict) and errors and set(errors) <= known, f"errors for unknown blocks: {errors}"
            opened.errors = dict(errors)
        elif action in (None, "clear"):
            opened.closed, opened.errors = True, {}
        else:
            raise AssertionError(f"unexpected response to a view_submission: {response}")
        return response

    # -- what the bot did ------------------------------------------------------------------

    def find(self, ts: str, channel: str | None = None) -> Message | None:
        for msg in self.messages:
            if msg.ts == ts and (channel is None or msg.channel == channel):
                return msg
        return None

    def bot_messages(self, channel: str | None = None) -> list[Message]:
        return [m for m in self.messages if m.by_bot and (channel is None or m.channel == channel)]


def _ts(ts: str) -> tuple[int, int]:
    seconds, _, fraction = ts.partition(".")
    return int(seconds or 0), int(fraction.ljust(6, "0")[:6] or 0)


def _limit(args: dict[str, Any]) -> int:
    return max(1, min(int(args.get("limit") or 100), 999))


def view_problems(view: Any) -> list[str]:
    """What Slack's views.open refuses in a modal (a subset of its validation)."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["[ERROR] must be a modal view"]
    problems = []

    def plain(key: str, obj: Any, limit: int) -> None:
        if not (isinstance(obj, dict) and obj.get("type") == "plain_text" and 0 < len(obj.get("text") or "") <= limit):
            problems.append(f"[ERROR] {key} must be plain_text of 1..{limit} characters")

    plain("title", view.get("title"), 24)
    for key in ("submit", "close"):
        if key in view:
            plain(key, view[key], 24)
    if len(str(view.get("private_metadata") or "")) > 3000:
        problems.append("[ERROR] private_metadata must be at most 3000 characters")
    if len(str(view.get("callback_id") or "")) > 255:
        problems.append("[ERROR] callback_id must be at most 255 characters")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 100:
        return [*problems, "[ERROR] blocks must be a list of 1..100 blocks"]
    has_input = False
    for i, block in enumerate(blocks):
        if block.get("type") == "input":
            has_input = True
            plain(f"blocks[{i}].label", block.get("label"), 2000)
            element = block.get("element") or {}
            if element.get("type") != "plain_text_input" or not 0 < len(element.get("action_id") or "") <= 255:
                problems.append(f"[ERROR] blocks[{i}].element must be a plain_text_input with an action_id")
            if not 0 < int(element.get("max_length") or 3000) <= 3000:
                problems.append(f"[ERROR] blocks[{i}].element.max_length must be 1..3000")
            if "hint" in block:
                plain(f"blocks[{i}].hint", block["hint"], 2000)
        elif block.get("type") == "section":
            text = block.get("text") or {}
            if not 0 < len(text.get("text") or "") <= 3000:
                problems.append(f"[ERROR] blocks[{i}].text must be 1..3000 characters")
        if len(str(block.get("block_id") or "")) > 255:
            problems.append(f"[ERROR] blocks[{i}].block_id must be at most 255 characters")
    if has_input and "submit" not in view:
        problems.append("[ERROR] a modal with input blocks needs a submit button")
    return problems
