"""The web chat as a platform: the person is an HTTP client logged in with the owner's link.

There is no fake server here: the platform is the host's own web server. The
person logs in with the token from the home (as `nanoclaw web-url` would give
it), posts messages with the page's CSRF header, and reads what the assistant
sent from the chat's history API.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from nanoclaw.host.bootstrap import WEB_CHAT
from tests.channels.harness import Platform, PlatformMessage


class WebPlatform(Platform):
    channel_type = "web"
    group_chat = WEB_CHAT
    dm_chat = WEB_CHAT
    has_groups = False  # the owner's one chat, a DM with the admin group
    can_be_down = False
    inbound = "webhook"  # the page posts to the host; replies go out over the page's socket
    mention_markup = False
    other_bots = False

    def __init__(self) -> None:
        self.home: Path | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.typing: dict[str | None, bool] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, tmp: Path) -> dict[str, str]:
        self.home = tmp / "home"  # where the host under test keeps web.token
        return {}  # always on

    async def stop(self) -> None:
        await self._close()

    @property
    def base(self) -> str:
        return self.webhook_base.rsplit("/hooks", 1)[0]

    async def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            assert self.home is not None
            token = (self.home / "web.token").read_text().strip()
            self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies for 127.0.0.1
            async with self.session.get(f"{self.base}/login", params={"token": token}) as response:
                assert response.status == 200, await response.text()
        return self.session

    def csrf(self) -> str:
        assert self.session is not None
        return next(c.value for c in self.session.cookie_jar if c.key == "nanoclaw_csrf")

    async def post(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        session = await self.client()
        headers = {"X-CSRF-Token": self.csrf(), "Origin": self.base, **kwargs.pop("headers", {})}
        return await session.post(f"{self.base}{path}", headers=headers, **kwargs)

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        if from_bot:
            return ""  # no bot can write in the owner's web chat
        form = aiohttp.FormData()
        form.add_field("text", f"@Andy {text}" if mention else text)
        if thread:
            form.add_field("thread_id", thread)
        if file:
            form.add_field("file", file[1], filename=file[0], content_type="text/csv")
        response = await self.post("/api/chat/messages", data=form)
        body = await response.json()
        assert response.status == 200, body
        return str(body["message"]["id"])

    async def history(self, thread: str | None = None) -> list[dict[str, Any]]:
        session = await self.client()
        params = {"thread": thread} if thread else {}
        async with session.get(f"{self.base}/api/chat/messages", params=params) as response:
            assert response.status == 200
            return list((await response.json())["messages"])

    async def all_messages(self) -> list[dict[str, Any]]:
        session = await self.client()
        async with session.get(f"{self.base}/api/chat/conversations") as response:
            conversations = (await response.json())["conversations"]
        out: list[dict[str, Any]] = []
        for conversation in conversations:  # the main one first
            out.extend(await self.history(None if conversation.get("main") else conversation["id"]))
        return out

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        session = await self.client()
        found = []
        for m in await self.all_messages():
            if m["author"] != "assistant":
                continue
            data = None
            if m["file_id"]:
                async with session.get(f"{self.base}/api/chat/files/{m['file_id']}") as response:
                    data = await response.read()
            found.append(PlatformMessage(
                id=m["id"], chat=WEB_CHAT, text=m["html"], thread=m["thread_id"], buttons=tuple(m["buttons"]),
                file_name=m["file_name"], file_data=data, edits=[m["html"]] if m["edited"] else [],
                reactions=m["reactions"], raw=m,
            ))
        return found

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        response = await self.post(f"/api/chat/cards/{message.raw['card_id']}", json={"value": label})
        assert response.status == 200, await response.text()

    async def reactions_on(self, message_id: str) -> list[str]:
        for m in await self.all_messages():
            if m["id"] == message_id:
                return list(m["reactions"])
        return []

    async def typing_seen(self, chat: str) -> bool:
        await self.listen()
        await asyncio.sleep(0.05)
        return any(self.typing.values())

    async def listen(self) -> None:
        """Open the page's live event stream (as the page does)."""
        if self.ws is not None and not self.ws.closed:
            return
        session = await self.client()
        self.ws = await session.ws_connect(f"{self.base}/api/chat/events", headers={"Origin": self.base})
        self._reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            event = json.loads(msg.data)
            if event["type"] == "typing":
                self.typing[event["thread_id"]] = event["on"]

    async def send_malformed(self) -> None:
        session = await self.client()
        anonymous = aiohttp.ClientSession()
        try:
            attempts = [
                await anonymous.post(f"{self.base}/api/chat/messages", json={"text": "no login"}),
                await session.post(f"{self.base}/api/chat/messages", json={"text": "no csrf"},
                                   headers={"Origin": self.base}),
                await self.post("/api/chat/messages", json={"text": "other site"}, headers={"Origin": "http://evil.test"}),
                await self.post("/api/chat/messages", data=b"{not json", headers={"Content-Type": "application/json"}),
                await self.post("/api/chat/messages", json=["not", "an", "object"]),
                await self.post("/api/chat/messages", json={"text": 42}),
                await self.post("/api/chat/messages", json={"text": "   "}),
                await self.post("/api/chat/messages", json={"text": "x", "thread_id": "no-such-thread"}),
                await self.post("/api/chat/cards/q-unknown1", json={"value": "Yes"}),
            ]
            for response in attempts:
                assert 400 <= response.status < 500, (response.status, await response.text())
        finally:
            await anonymous.close()

    async def drop_connections(self) -> None:
        await self._close()  # the browser loses its connection; the next action logs in again

    async def _close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        self.session = self.ws = self._reader = None

    def bold(self, text: str) -> str:
        return f"<strong>{text}</strong>"


PLATFORM = WebPlatform
