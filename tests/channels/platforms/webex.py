"""Webex for the channel contract suite: the fake REST API, and people writing through signed webhooks.

The channel registers its webhooks with the fake at start (WEBEX_WEBHOOK_URL), so every
notification the fake sends is signed with the secret the channel chose.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from nanoclaw.channels.adaptive_cards import VALUE_INPUT
from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.webex_server import FakeWebex, now_iso, post, sign

SECRET = "webex-webhook-secret-for-tests"
GROUP = "Y2lzY29zcGFyazovL3VzL1JPT00vZ3JvdXAtcm9vbQ"
DM = "Y2lzY29zcGFyazovL3VzL1JPT00vZGlyZWN0LXJvb20"
ROOT = "Y2lzY29zcGFyazovL3VzL01FU1NBR0UvdGhyZWFkLXJvb3Q"


class WebexPlatform(Platform):
    channel_type = "webex"
    group_chat = GROUP
    dm_chat = DM
    thread_root = ROOT
    inbound = "webhook"

    def __init__(self) -> None:
        self.fake = FakeWebex()

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        self.fake.room(GROUP, "Project Unicorn")
        self.fake.room(DM, "Alice", direct=True)
        if ROOT not in self.fake.messages:
            self.fake.add(GROUP, self.fake.person("u1", "Alice"), "a thread starts here", message_id=ROOT)
        return {"WEBEX_BOT_TOKEN": self.fake.token, "WEBEX_WEBHOOK_SECRET": SECRET,
                "WEBEX_API_URL": self.fake.base_url, "WEBEX_WEBHOOK_URL": self.hook_url}

    async def stop(self) -> None:
        await self.fake.stop()

    @property
    def hook_url(self) -> str:
        return self.webhook_base + "/webex"

    async def deliver(self, payload: Any, *, secret: str | None = SECRET, signature: str | None = None) -> int:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        header = signature if signature is not None else (sign(secret, body) if secret is not None else None)
        return await post(self.hook_url, body, header)

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        room = chat or (DM if dm else GROUP)
        author = self.fake.person(sender, sender_name, bot=from_bot)
        attached = None
        if file is not None:
            attached = (file[0], file[1], mimetypes.guess_type(file[0])[0] or "application/octet-stream")
        if mention:  # Webex puts the bot's display name in the text and its id in mentionedPeople
            text = f"{self.fake.bot.name} {text}"
        message = self.fake.add(room, author, text, parent=thread, mention=mention, file=attached)
        data = {k: message.data[k] for k in ("id", "roomId", "roomType", "personId", "personEmail", "created")}
        assert await self.fake.notify("messages", data) == [200]
        return str(message.data["id"])

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [m for m in self.fake.sent() if chat is None or m.chat == chat]

    def _actions(self, message: PlatformMessage) -> list[dict[str, Any]]:
        return [a for att in message.raw.get("attachments") or [] for a in att["content"].get("actions", [])]

    async def _submit(self, message: PlatformMessage, inputs: dict[str, Any], sender: str) -> None:
        person = self.fake.person(sender, "Alice")
        action_id = self.fake.submit(message.id, person, inputs)
        data = {"id": action_id, "type": "submit", "messageId": message.id, "personId": person.id,
                "roomId": message.chat, "created": now_iso()}
        assert await self.fake.notify("attachmentActions", data) == [200]

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        action = next(a for a in self._actions(message) if a["title"] == label)
        await self._submit(message, dict(action["data"]), sender)

    async def submit_modal(self, message: PlatformMessage, value: str | None, sender: str = "u1") -> None:
        title = "Save" if value is not None else "Refuse"
        action = next(a for a in self._actions(message) if a["title"] == title)
        inputs = dict(action["data"])
        if value is not None:
            inputs[VALUE_INPUT] = value
        await self._submit(message, inputs, sender)

    async def send_malformed(self) -> None:
        person = self.fake.person("mallory", "Mallory")
        forged = self.fake.add(GROUP, person, "forged").data
        good = self.fake.notification("messages", {"id": forged["id"], "roomId": GROUP, "personId": person.id,
                                                   "created": forged["created"]})
        stale = self.fake.notification("messages", {**good["data"], "created": now_iso(-3600)})
        assert await self.deliver(good, secret=None) == 401
        assert await self.deliver(good, secret="wrong secret") == 401
        assert await self.deliver(good, signature="sha256=" + "0" * 64) == 401
        assert await self.deliver(stale) == 401  # signed, but about a message an hour old: a replay
        for shape in (b"{not json", [1, 2], {"resource": "messages"}, {"resource": "messages", "data": "x"},
                      {"resource": "messages", "data": {"created": now_iso()}}):
            assert await self.deliver(shape) == 400, shape
        del self.fake.messages[forged["id"]]

    async def drop_connections(self) -> None:
        await self.fake.restart()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"**{text}**"


PLATFORM = WebexPlatform
