"""A fake Webex on 127.0.0.1: the REST API (`/v1/…`) the bot calls through webexpythonsdk, and people writing.

The API side answers people/me, people/{id}, rooms/{id}, messages (create as JSON or
multipart with a file, get, list newest first with Link paging and `mentionedPeople=me`,
update, delete), attachment/actions/{id}, contents/{id} (file downloads, bearer token
required) and webhooks (list, create, update), in Webex's JSON shapes and error bodies.
The person side stores a message (or a card submission) and notifies every registered
webhook as Webex does: a JSON body with only ids, signed `X-Spark-Signature` (HMAC-SHA1
with the webhook's secret). The bot's own messages are notified too, as on Webex.

Simplification: Webex notifies a bot about group messages only where it is mentioned; the fake
notifies every message, so the contract suite's plain group messages arrive.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.channels.harness import PlatformMessage


def webex_id(kind: str) -> str:
    """An id in Webex's form: base64 of ciscospark://us/KIND/uuid."""
    return base64.b64encode(f"ciscospark://us/{kind}/{uuid.uuid4()}".encode()).decode().rstrip("=")


def now_iso(offset: float = 0.0) -> str:
    t = time.time() + offset
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


@dataclass
class Person:
    id: str
    email: str
    name: str
    bot: bool = False

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "emails": [self.email], "displayName": self.name, "nickName": self.name,
                "orgId": "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9mYWtl", "created": "2024-01-01T00:00:00.000Z",
                "type": "bot" if self.bot else "person"}


@dataclass
class Room:
    id: str
    title: str
    direct: bool


@dataclass
class Message:
    data: dict[str, Any]
    file: tuple[str, bytes, str] | None = None
    edits: list[str] = field(default_factory=list)


class FakeWebex:
    def __init__(self, token: str = "fake-webex-bot-token") -> None:
        self.token = token
        self.bot = Person(webex_id("PEOPLE"), "andy@webex.bot", "Andy", bot=True)
        self.people: dict[str, Person] = {self.bot.id: self.bot}
        self.rooms: dict[str, Room] = {}
        self.messages: dict[str, Message] = {}  # in creation order
        self.actions: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, tuple[str, bytes, str]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.down = False
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/"

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._gate])
        r = app.router
        r.add_get("/v1/people/me", self._me)
        r.add_get("/v1/people/{id}", self._person)
        r.add_get("/v1/rooms/{id}", self._room)
        r.add_post("/v1/messages", self._create)
        r.add_get("/v1/messages", self._list)
        r.add_get("/v1/messages/{id}", self._get)
        r.add_put("/v1/messages/{id}", self._update)
        r.add_delete("/v1/messages/{id}", self._delete)
        r.add_get("/v1/attachment/actions/{id}", self._action)
        r.add_get("/v1/contents/{id}", self._content)
        r.add_get("/v1/webhooks", self._list_hooks)
        r.add_post("/v1/webhooks", self._create_hook)
        r.add_put("/v1/webhooks/{id}", self._update_hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self.start()

    # -- API -------------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.down:
            return error(503, "Service Unavailable")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return error(401, "The request requires a valid access token set in the Authorization request header.")
        return await handler(request)  # type: ignore[no-any-return]

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response(self.bot.json())

    async def _person(self, request: web.Request) -> web.Response:
        person = self.people.get(request.match_info["id"])
        return web.json_response(person.json()) if person else error(404, "Person not found")

    async def _room(self, request: web.Request) -> web.Response:
        room = self.rooms.get(request.match_info["id"])
        if room is None:
            return error(404, "Could not find a room with provided ID.")
        return web.json_response({"id": room.id, "title": room.title, "type": "direct" if room.direct else "group",
                                  "isLocked": False, "created": "2024-01-01T00:00:00.000Z"})

    async def _create(self, request: web.Request) -> web.Response:
        file: tuple[str, bytes, str] | None = None
        if request.content_type.startswith("multipart/"):
            data: dict[str, Any] = {}
            async for part in await request.multipart():
                if part.name == "files":
                    file = (part.filename or "file", bytes(await part.read()),
                            part.headers.get("Content-Type", "application/octet-stream"))
                elif part.name:
                    data[part.name] = await part.text()
        else:
            data = await request.json()
        room = self.rooms.get(str(data.get("roomId")))
        if room is None:
            return error(404, "Could not find a room with provided ID.")
        markdown = data.get("markdown") or data.get("text") or ""
        if not markdown and file is None and not data.get("attachments"):
            return error(400, "Message must have text, markdown, files or attachments.")
        if len(markdown.encode()) > 7439:
            return error(400, "Message length limit exceeded.")
        parent = data.get("parentId")
        if parent and parent not in self.messages:
            return error(404, "Parent message not found.")
        message = self.add(room.id, self.bot, markdown, parent=parent, file=file,
                           attachments=data.get("attachments"))
        return web.json_response(message.data)

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        room = self.rooms.get(query.get("roomId", ""))
        if room is None:
            return error(404, "Could not find a room with provided ID.")
        if not room.direct and query.get("mentionedPeople") != "me":
            return error(403, "Bots can only list messages in group rooms where they are mentioned.")
        found = [m.data for m in reversed(self.messages.values()) if m.data["roomId"] == room.id
                 and (room.direct or self.bot.id in m.data.get("mentionedPeople", []))]
        if "beforeMessage" in query:
            ids = [m["id"] for m in found]
            found = found[ids.index(query["beforeMessage"]) + 1:] if query["beforeMessage"] in ids else []
        size = int(query.get("max", "50"))
        page, more = found[:size], len(found) > size
        headers = {}
        if more:
            url = request.url.update_query({"beforeMessage": page[-1]["id"]})
            headers["Link"] = f'<{url}>; rel="next"'
        return web.json_response({"items": page}, headers=headers)

    async def _get(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["id"])
        return web.json_response(message.data) if message else error(404, "Message not found")

    async def _update(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["id"])
        data = await request.json()
        if message is None or message.data["personId"] != self.bot.id:
            return error(404, "Message not found")
        if data.get("roomId") != message.data["roomId"]:
            return error(400, "roomId does not match the message's room.")
        text = data.get("markdown") or data.get("text") or ""
        message.data.update(text=text, markdown=text, updated=now_iso())
        message.edits.append(text)
        return web.json_response(message.data)

    async def _delete(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["id"])
        if message is None:
            return error(404, "Message not found")
        message.data["deleted"] = True
        return web.Response(status=204)

    async def _action(self, request: web.Request) -> web.Response:
        action = self.actions.get(request.match_info["id"])
        return web.json_response(action) if action else error(404, "Attachment action not found")

    async def _content(self, request: web.Request) -> web.Response:
        content = self.contents.get(request.match_info["id"])
        if content is None:
            return error(404, "Content not found")
        name, data, mime = content
        return web.Response(body=data, content_type=mime,
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def _list_hooks(self, request: web.Request) -> web.Response:
        return web.json_response({"items": list(self.webhooks.values())})

    async def _create_hook(self, request: web.Request) -> web.Response:
        data = await request.json()
        hook = {"id": webex_id("WEBHOOK"), "name": data["name"], "targetUrl": data["targetUrl"],
                "resource": data["resource"], "event": data["event"], "secret": data.get("secret"),
                "status": "active", "created": now_iso()}
        self.webhooks[hook["id"]] = hook
        return web.json_response(hook)

    async def _update_hook(self, request: web.Request) -> web.Response:
        hook = self.webhooks.get(request.match_info["id"])
        if hook is None:
            return error(404, "Webhook not found")
        hook.update({k: v for k, v in (await request.json()).items() if k in ("name", "targetUrl", "secret", "status")})
        return web.json_response(hook)

    # -- state and the person's side --------------------------------------------------

    def room(self, room_id: str, title: str, direct: bool = False) -> Room:
        room = self.rooms.setdefault(room_id, Room(room_id, title, direct))
        return room

    def person(self, person_id: str, name: str, bot: bool = False) -> Person:
        email = f"{person_id}@webex.bot" if bot else f"{person_id}@example.com"
        return self.people.setdefault(person_id, Person(person_id, email, name, bot))

    def add(self, room_id: str, author: Person, text: str, *, parent: str | None = None, mention: bool = False,
            file: tuple[str, bytes, str] | None = None, attachments: Any = None, created: str | None = None, message_id: str | None = None) -> Message:
        room = self.rooms[room_id]
        data: dict[str, Any] = {"id": message_id or webex_id("MESSAGE"), "roomId": room_id,
                                "roomType": "direct" if room.direct else "group", "text": text,
                                "personId": author.id, "personEmail": author.email, "created": created or now_iso()}
        if author is self.bot:
            data["markdown"] = text
        if parent:
            data["parentId"] = parent
        if mention:
            data["mentionedPeople"] = [self.bot.id]
        if attachments:
            data["attachments"] = attachments
        if file is not None:
            content_id = webex_id("CONTENT")
            self.contents[content_id] = file
            data["files"] = [f"{self.base_url}contents/{content_id}"]
        message = Message(data, file)
        self.messages[data["id"]] = message
        self._notify_later("messages", {k: data[k] for k in ("id", "roomId", "roomType", "personId", "personEmail",
                                                                "created") if k in data})
        return message

    def submit(self, message_id: str, person: Person, inputs: dict[str, Any]) -> str:
        """A person presses a card's Action.Submit: the button's data merged with the card's inputs."""
        message = self.messages[message_id].data
        action = {"id": webex_id("ATTACHMENT_ACTION"), "type": "submit", "messageId": message_id, "inputs": inputs,
                  "personId": person.id, "roomId": message["roomId"], "created": now_iso()}
        self.actions[action["id"]] = action
        return action["id"]

    def notification(self, resource: str, data: dict[str, Any], hook: dict[str, Any] | None = None) -> dict[str, Any]:
        hook = hook or {"id": webex_id("WEBHOOK"), "name": "x", "targetUrl": "", "filter": ""}
        return {"id": hook["id"], "name": hook["name"], "targetUrl": hook["targetUrl"], "resource": resource,
                "event": "created", "orgId": "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9mYWtl",
                "createdBy": self.bot.id, "appId": "Y2lzY29zcGFyazovL3VzL0FQUExJQ0FUSU9OL2Zha2U",
                "ownedBy": "creator", "status": "active", "created": "2024-01-01T00:00:00.000Z",
                "actorId": data.get("personId"), "data": data}

    async def notify(self, resource: str, data: dict[str, Any]) -> list[int]:
        """Post the notification to every active webhook for `resource`; the statuses they answered."""
        statuses = []
        for hook in list(self.webhooks.values()):
            if hook["resource"] == resource and hook["status"] == "active":
                body = json.dumps(self.notification(resource, data, hook)).encode()
                statuses.append(await post(hook["targetUrl"], body, sign(hook["secret"] or "", body)))
        return statuses

    def _notify_later(self, resource: str, data: dict[str, Any]) -> None:
        if data.get("personId") != self.bot.id:
            return  # people's messages are notified by the test, which awaits the answer
        task = asyncio.get_running_loop().create_task(self.notify(resource, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def sent(self) -> list[PlatformMessage]:
        """What the bot wrote, oldest first."""
        out = []
        for m in self.messages.values():
            d = m.data
            if d["personId"] != self.bot.id:
                continue
            buttons = tuple(a["title"] for att in d.get("attachments") or []
                            for a in att.get("content", {}).get("actions", []))
            out.append(PlatformMessage(d["id"], d["roomId"], d.get("markdown") or "", d.get("parentId"),
                                       buttons=buttons, file_name=m.file[0] if m.file else None,
                                       file_data=m.file[1] if m.file else None, edits=m.edits, raw=d))
        return out


async def post(url: str, body: bytes, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Spark-Signature"] = signature
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status


def error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message, "errors": [{"description": message}],
                              "trackingId": f"ROUTER_{uuid.uuid4()}"}, status=status)
