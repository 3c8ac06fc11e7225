"""Telegram for the channel contract suite: the fake Bot API, a supergroup and a private chat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.telegram_server import BOT_USER, TOKEN, FakeTelegram


class TelegramPlatform(Platform):
    channel_type = "telegram"
    bot_name = "Andy"
    group_chat = "-1001234567890"  # a supergroup
    dm_chat = "123456789"  # a private chat's id is the person's user id

    def __init__(self) -> None:
        self.fake = FakeTelegram()
        self._users: dict[str, int] = {"u1": int(self.dm_chat)}

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        self.fake.add_chat(int(self.group_chat), "supergroup", "Family")
        self.fake.add_chat(int(self.dm_chat), "private", "Alice")
        return {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": self.fake.api_base,
                "TELEGRAM_FILE_BASE": self.fake.file_base}

    async def stop(self) -> None:
        await self.fake.stop()

    def user(self, sender: str = "u1", name: str = "Alice", is_bot: bool = False) -> dict[str, Any]:
        """The Telegram User object of the test person `sender`."""
        uid = self._users.setdefault(sender, 200_000_000 + len(self._users))
        first, _, last = name.partition(" ")
        user: dict[str, Any] = {"id": uid, "is_bot": is_bot, "first_name": first, "username": f"{sender}_{first}".lower()}
        return {**user, "last_name": last} if last else user

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        chat_id = int(self.dm_chat if dm else (chat or self.group_chat))
        entities = None
        if mention:
            handle = f"@{BOT_USER['username']}"
            text = f"{handle} {text}"
            entities = [{"type": "mention", "offset": 0, "length": len(handle)}]
        mid = await self.fake.user_message(chat_id, self.user(sender, sender_name, from_bot), text,
                                           entities=entities, document=file)
        return str(mid)

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [
            PlatformMessage(id=s.id, chat=s.chat, text=s.text, buttons=s.buttons, file_name=s.file_name,
                            file_data=s.file_data, edits=list(s.edits), reactions=self.fake.reactions.get(s.id, []),
                            raw=s.params)
            for s in self.fake.sent if chat is None or s.chat == chat
        ]

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        [sent] = [s for s in self.fake.sent if s.id == message.id]
        await self.fake.press(sent, label, self.user(sender))

    async def reactions_on(self, message_id: str) -> list[str]:
        return list(self.fake.reactions.get(message_id, []))

    async def typing_seen(self, chat: str) -> bool:
        return (chat, "typing") in self.fake.actions

    async def send_malformed(self) -> None:
        """Updates python-telegram-bot cannot parse, each with a valid update_id (as Telegram always sends)."""
        chat = self.fake.chats[int(self.group_chat)]
        for body in (
            {"message": "garbage"},
            {"message": {"message_id": 9, "chat": chat, "text": "no date"}},
            {"message": {"message_id": 9, "date": 0, "chat": chat, "from": 5, "text": "from is no object"}},
            {"callback_query": {"id": "1", "data": "q-abc12345|0"}},
            {"message": {"message_id": 9, "date": 0, "chat": chat, "text": "bad entities", "entities": "x"}},
            {"message": {"message_id": 9, "date": 0, "chat": chat, "from": self.user("u9"), "entities": [{}]}},
            {"edited_message": {"no": "thing"}},
        ):
            await self.fake.push(body)

    async def drop_connections(self) -> None:
        self.fake.drop_connections()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"<b>{text}</b>"


PLATFORM = TelegramPlatform
