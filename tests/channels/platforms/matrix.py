"""Matrix for the contract suite: a real Synapse (started once per session), the bot behind a cuttable proxy.

Each test gets a fresh bot account and fresh rooms: a group room (Alice, Bob and the bot) and a
direct room (Alice and the bot, `is_direct`), both invites the channel must accept by itself.
"""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
from pathlib import Path
from typing import Any

import aiohttp

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.matrix_server import Person, Synapse, TcpProxy, account, synapse

_bot_numbers = itertools.count(1)
OTHER_BOT = "otherbot"  # listed in MATRIX_BOT_USERS


class MatrixPlatform(Platform):
    channel_type = "matrix"
    group_chat = "!group:localhost"  # replaced by the real room ids in start()
    dm_chat = "!dm:localhost"

    def __init__(self) -> None:
        self.server: Synapse | None = None
        self.proxy: TcpProxy | None = None
        self.http: aiohttp.ClientSession | None = None
        self.people: dict[str, Person] = {}
        self.bot: Person | None = None  # the bot's account, only to read; the channel does the bot's work
        self._ready: set[str] = set()  # rooms where the bot has joined

    async def start(self, tmp: Path) -> dict[str, str]:
        self.server = synapse()  # not in a worker thread: Synapse is tied to the life of the thread that starts it
        self.http = aiohttp.ClientSession()
        bot = await account(self.server, f"andy{next(_bot_numbers)}", self.bot_name)
        self.bot = Person(self.server, bot, self.http)
        alice, bob = await self.person("u1", "Alice"), await self.person("u2", "Bob")
        other = await self.person(OTHER_BOT, "OtherBot")
        self.group_chat = await alice.create_room([bob.user_id, bot.user_id],
                                                  preset="private_chat", name="Team")
        await bob.join(self.group_chat)
        self.dm_chat = await alice.create_room([bot.user_id], preset="trusted_private_chat", is_direct=True)
        self.proxy = TcpProxy(self.server.port)
        port = await self.proxy.start()
        return {"MATRIX_HOMESERVER": f"http://127.0.0.1:{port}", "MATRIX_USER_ID": bot.user_id,
                "MATRIX_ACCESS_TOKEN": bot.token, "MATRIX_BOT_USERS": other.user_id}

    async def stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
        if self.http is not None:
            await self.http.close()

    async def person(self, sender: str, name: str) -> Person:
        if sender not in self.people:
            assert self.server is not None and self.http is not None
            self.people[sender] = Person(self.server, await account(self.server, sender, name), self.http)
        return self.people[sender]

    async def bot_joined(self, room: str, timeout: float = 10.0) -> None:
        """People write only once the channel accepted the invite (as in life: nobody talks to a pending invite)."""
        assert self.bot is not None
        if room in self._ready:
            return
        alice = self.people["u1"]
        for _ in range(int(timeout / 0.05)):
            if self.bot.user_id in await alice.members(room):
                self._ready.add(room)
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the bot did not join {room}")

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        assert self.bot is not None
        room = chat or (self.dm_chat if dm else self.group_chat)
        await self.bot_joined(room)
        who = await self.person(OTHER_BOT if from_bot else sender, "OtherBot" if from_bot else sender_name)
        if who.user_id not in await self.people["u1"].members(room):
            await self.people["u1"].invite(room, who.user_id)
            await who.join(room)
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if mention:  # as Element writes it: a pill in the HTML, the name in the body, the id in m.mentions
            pill = f'<a href="https://matrix.to/#/{self.bot.user_id}">{self.bot_name}</a>'
            content.update(body=f"{self.bot_name}: {text}", format="org.matrix.custom.html",
                           formatted_body=f"{pill}: {text}", **{"m.mentions": {"user_ids": [self.bot.user_id]}})
        if file is not None:
            name, data = file
            mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
            content.update(msgtype="m.file", filename=name, url=await who.upload(name, data, mime),
                           info={"mimetype": mime, "size": len(data)})
        return await who.send(room, content)

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        assert self.bot is not None
        rooms = [chat] if chat else [self.group_chat, self.dm_chat]
        out: list[PlatformMessage] = []
        for room in rooms:
            out.extend(await self._messages_in(room))
        return out

    async def _messages_in(self, room: str) -> list[PlatformMessage]:
        assert self.bot is not None
        reader = self.people["u1"]
        messages: dict[str, PlatformMessage] = {}
        for event in await reader.timeline(room):
            content = event.get("content", {})
            if event.get("sender") != self.bot.user_id or event.get("type") != "m.room.message":
                continue
            relation = content.get("m.relates_to") or {}
            if relation.get("rel_type") == "m.replace":
                if relation.get("event_id") in messages:
                    messages[relation["event_id"]].edits.append(_text(content.get("m.new_content", {})))
                continue
            msg = PlatformMessage(id=event["event_id"], chat=room, text=_text(content), raw=content)
            if content.get("msgtype") in ("m.file", "m.image", "m.audio", "m.video"):
                msg.file_name = content.get("filename") or content.get("body")
                msg.file_data = await reader.download(content["url"])
            messages[msg.id] = msg
        return list(messages.values())

    async def reactions_on(self, message_id: str) -> list[str]:
        assert self.bot is not None
        found: list[str] = []
        for room in (self.group_chat, self.dm_chat):
            for event in await self.people["u1"].timeline(room):
                relation = event.get("content", {}).get("m.relates_to") or {}
                if (event.get("type") == "m.reaction" and event.get("sender") == self.bot.user_id
                        and relation.get("event_id") == message_id):
                    found.append(relation.get("key"))
        return found

    async def typing_seen(self, chat: str) -> bool:
        assert self.bot is not None
        return self.bot.user_id in await self.people["u1"].typing(chat)

    async def send_malformed(self) -> None:
        """Events of shapes any Matrix user can send and Synapse accepts, that are not messages for the agent."""
        await self.bot_joined(self.group_chat)
        alice = self.people["u1"]
        for content, event_type in [
            ({"msgtype": "m.file", "body": "no url"}, "m.room.message"),
            ({"msgtype": "m.text", "body": "x", "formatted_body": 5}, "m.room.message"),
            ({"msgtype": "m.image", "body": "pic", "url": "https://attacker.example/x.png"}, "m.room.message"),
            ({"msgtype": "m.text", "body": "* x", "m.relates_to": {"rel_type": "m.replace"}}, "m.room.message"),
            ({"m.relates_to": "nonsense"}, "m.reaction"),
            ({"junk": [1, 2, 3]}, "com.example.garbage"),
        ]:
            await alice.send(self.group_chat, content, event_type)

    async def drop_connections(self) -> None:
        assert self.proxy is not None
        self.proxy.drop()

    async def set_down(self, down: bool) -> None:
        assert self.proxy is not None
        await self.proxy.set_down(down)

    def bold(self, text: str) -> str:
        return f"<strong>{text}</strong>"


def _text(content: dict[str, Any]) -> str:
    """What a reader sees: the HTML form when there is one."""
    return str(content.get("formatted_body") or content.get("body") or "")


PLATFORM = MatrixPlatform
