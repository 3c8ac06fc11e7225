"""WhatsApp Cloud API for the channel contract suite: the fake Graph API plus signed webhooks to the channel.

Every WhatsApp chat is a 1:1 conversation with a phone number, so the
"group" and the DM are the same wa_id and the sender is always that number.
The Cloud API carries no bot flag; the only messages by a bot the webhook
delivers are echoes of our own number's messages (`smb_message_echoes`),
which the channel drops.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.whatsapp_server import VERSION, FakeWhatsApp, SentMessage, wamid


class WhatsAppPlatform(Platform):
    channel_type = "whatsapp"
    group_chat = "15551234567"
    dm_chat = "15551234567"
    has_groups = False
    inbound = "webhook"
    mention_markup = False  # no mention markup in a 1:1 chat

    def __init__(self) -> None:
        self.fake = FakeWhatsApp()

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        return {
            "WHATSAPP_ACCESS_TOKEN": self.fake.access_token,
            "WHATSAPP_PHONE_NUMBER_ID": self.fake.phone_number_id,
            "WHATSAPP_APP_SECRET": self.fake.app_secret,
            "WHATSAPP_VERIFY_TOKEN": self.fake.verify_token,
            "WHATSAPP_API_BASE": self.fake.base_url,
            "WHATSAPP_API_VERSION": VERSION,
        }

    async def stop(self) -> None:
        await self.fake.stop()

    @property
    def hook(self) -> str:
        return self.webhook_base + "/whatsapp"

    async def post(self, payload: dict | bytes, signature: str | None = "sign") -> int:  # type: ignore[type-arg]
        return await self.fake.post_webhook(self.hook, payload, signature)

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        wa_id = chat or self.group_chat  # on WhatsApp the chat is the sender's number
        if mention:  # no mention markup in a 1:1 chat: people address the bot by name
            text = f"@{self.bot_name} {text}"
        if from_bot:
            return await self._echo(wa_id, text)
        if file is None:
            message_id, payload = self.fake.message(wa_id, sender_name, "text", {"body": text})
        else:
            name, data = file
            mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
            media_id = self.fake.upload_from_person(name, data, mime)
            content = {"id": media_id, "filename": name, "mime_type": mime, "caption": text,
                       "sha256": ""}
            message_id, payload = self.fake.message(wa_id, sender_name, "document", content)
        status = await self.post(payload)
        assert status == 200, status
        return message_id

    async def _echo(self, wa_id: str, text: str) -> str:
        """A message our own business number sent, echoed by Meta: never a person's message."""
        message_id = wamid()
        echo = {"from": self.fake.display_number, "to": wa_id, "id": message_id, "timestamp": "1700000000",
                "type": "text", "text": {"body": text}}
        assert await self.post(self.fake.webhook({"message_echoes": [echo]}, "smb_message_echoes")) == 200
        return message_id

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [self._as_platform(m) for m in self.fake.sent if chat is None or m.to == chat]

    def _as_platform(self, m: SentMessage) -> PlatformMessage:
        return PlatformMessage(id=m.id, chat=m.to, text=m.text, buttons=m.buttons, file_name=m.file_name,
                               file_data=m.file_data, reactions=list(self.fake.reactions.get(m.id, [])), raw=m.body)

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        interactive = message.raw["interactive"]
        if interactive["type"] == "button":
            choices = [b["reply"] for b in interactive["action"]["buttons"]]
        else:
            choices = [row for section in interactive["action"]["sections"] for row in section["rows"]]
        choice = next(c for c in choices if c["title"] == label)
        reply_kind = "button_reply" if interactive["type"] == "button" else "list_reply"
        _, payload = self.fake.message(message.chat, "Alice", "interactive", {
            "type": reply_kind, reply_kind: {"id": choice["id"], "title": choice["title"]},
        }, context={"from": self.fake.display_number, "id": message.id})
        assert await self.post(payload) == 200

    async def reactions_on(self, message_id: str) -> list[str]:
        return list(self.fake.reactions.get(message_id, []))

    async def typing_seen(self, chat: str) -> bool:
        return any(self.fake.inbound.get(mid) == chat for mid in self.fake.typing)

    async def send_malformed(self) -> None:
        _, good = self.fake.message(self.group_chat, "Mallory", "text", {"body": "forged"})
        statuses = [
            await self.post(good, signature=None),  # unsigned
            await self.post(good, signature="sha256=" + "0" * 64),  # signed with the wrong secret
            await self.post(good, signature="sha1=abc"),  # wrong scheme
            await self.post(b"{not json", signature="sign"),  # correctly signed, not JSON
        ]
        assert statuses[0] == 401 and statuses[1] == 403 and statuses[2] == 403 and statuses[3] == 400, statuses
        # Correctly signed JSON in wrong shapes: accepted (Meta would retry otherwise), then ignored.
        for shape in ({"entry": "x"}, {"object": "whatsapp_business_account"}, [1, 2],
                      self.fake.webhook({"messages": [{"from": self.group_chat, "type": "text"}]}),
                      self.fake.webhook({"messages": "nope"}), {"entry": [{"changes": [{"value": None}]}]}):
            assert await self.post(shape) == 200

    async def drop_connections(self) -> None:
        await self.fake.restart()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"*{text}*"


PLATFORM = WhatsAppPlatform
