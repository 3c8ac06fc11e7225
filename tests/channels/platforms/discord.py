"""Discord for the channel contract suite: the fake REST API and gateway, and people writing through it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.discord_server import (
    BOT_ID, DM_CHANNEL, TEXT_CHANNEL, THREAD, TOKEN, DiscordFake, Posted, text_inputs,
)


class DiscordPlatform(Platform):
    channel_type = "discord"
    group_chat = TEXT_CHANNEL
    dm_chat = DM_CHANNEL
    thread_root = THREAD

    def __init__(self) -> None:
        self.fake = DiscordFake()

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        return {"DISCORD_BOT_TOKEN": TOKEN, "DISCORD_API_BASE": self.fake.api_base}

    async def stop(self) -> None:
        await self.fake.stop()

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        channel = DM_CHANNEL if dm else (thread or chat or self.group_chat)
        user = self.fake.user_json(self.fake.user_id(sender), sender_name, bot=from_bot)
        mentions = [self.fake.bot_user()] if mention else []
        content = f"<@{BOT_ID}> {text}" if mention else text
        files = [(file[0], file[1], None)] if file else []
        return await self.fake.say(channel, content, user=user, mentions=mentions, files=files)

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        found = [self._as_platform_message(m) for m in self.fake.messages]
        return [m for m in found if chat is None or m.chat == chat]

    def _as_platform_message(self, posted: Posted) -> PlatformMessage:
        channel = self.fake.channels.get(posted.channel_id, {})
        in_thread = channel.get("type") == 11
        name, data = posted.files[0] if posted.files else (None, None)
        return PlatformMessage(
            id=posted.id, chat=channel["parent_id"] if in_thread else posted.channel_id,
            text=posted.content, thread=posted.channel_id if in_thread else None,
            buttons=tuple(c["label"] for row in posted.components for c in row.get("components", [])),
            file_name=name, file_data=data, edits=list(posted.edits), reactions=list(posted.reactions),
            raw=posted.raw,
        )

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        posted = next(m for m in self.fake.messages if m.id == message.id)
        await self.fake.press(posted, label, self.fake.user_json(self.fake.user_id(sender), "Alice"))

    async def submit_modal(self, message: PlatformMessage, value: str | None, sender: str = "u1") -> None:
        """Press "Enter credential", get the bot's modal (callback type 9), submit it with `value`
        (MODAL_SUBMIT, as Discord sends it); None presses "Refuse" instead."""
        posted = next(m for m in self.fake.messages if m.id == message.id)
        user = self.fake.user_json(self.fake.user_id(sender), "Alice")
        if value is None:
            await self.fake.press(posted, "Refuse", user)
            return
        pressed = await self.fake.press(posted, "Enter credential", user)
        response = await self.fake.wait_response(pressed)
        assert response["type"] == 9, response  # MODAL
        modal = response["data"]
        [field] = text_inputs(modal)
        await self.fake.submit_modal(posted, modal, {field["custom_id"]: value}, user)

    async def reactions_on(self, message_id: str) -> list[str]:
        return list(self.fake.reactions.get(message_id, []))

    async def typing_seen(self, chat: str) -> bool:
        return chat in self.fake.typing

    async def send_malformed(self) -> None:
        good = {"id": self.fake.next_id(), "channel_id": TEXT_CHANNEL, "guild_id": "1000000000000000001",
                "content": "forged", "timestamp": "2025-01-01T12:00:00+00:00", "attachments": [], "embeds": [],
                "mentions": [], "mention_roles": [], "pinned": False, "tts": False, "type": 0}
        alice = self.fake.user_json(self.fake.user_id("u1"), "Alice")
        await self.fake.dispatch("MESSAGE_CREATE", good)  # no author
        await self.fake.dispatch("MESSAGE_CREATE", {**good, "author": "mallory"})  # author of the wrong shape
        await self.fake.dispatch("MESSAGE_CREATE", {**good, "author": alice, "id": "not-a-snowflake"})
        await self.fake.dispatch("MESSAGE_CREATE", "garbage")
        await self.fake.dispatch("MESSAGE_CREATE", {**good, "author": alice, "type": 7})  # a "joined" notice
        await self.fake.dispatch("NOT_A_REAL_EVENT", {"x": 1})
        await self.fake.dispatch("INTERACTION_CREATE", {"id": "1", "type": 3})  # no token, no application
        await self.fake.dispatch("INTERACTION_CREATE", {  # a button that is not ours
            "id": self.fake.next_id(), "application_id": "1", "type": 3, "token": "t", "version": 1,
            "channel_id": TEXT_CHANNEL, "guild_id": "1000000000000000001", "attachment_size_limit": 1,
            "data": {"custom_id": "someone-else:button", "component_type": 2},
            "member": {"user": alice, "roles": [], "joined_at": "2025-01-01T12:00:00+00:00", "deaf": False,
                       "mute": False, "flags": 0, "permissions": "0"},
        })
        await self.fake.dispatch("INTERACTION_CREATE", {  # a modal submission that is not ours
            "id": self.fake.next_id(), "application_id": "1", "type": 5, "token": "t", "version": 1,
            "channel_id": TEXT_CHANNEL, "guild_id": "1000000000000000001", "attachment_size_limit": 1,
            "data": {"custom_id": "someone-else:modal", "components": "garbage"},
            "member": {"user": alice, "roles": [], "joined_at": "2025-01-01T12:00:00+00:00", "deaf": False,
                       "mute": False, "flags": 0, "permissions": "0"},
        })
        await self.fake.send_raw(json.dumps({"op": 42, "d": None, "s": None, "t": None}))  # an unknown opcode

    async def drop_connections(self) -> None:
        await self.fake.drop()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"**{text}**"  # Discord's own Markdown: bold stays as the agent wrote it


PLATFORM = DiscordPlatform
