"""Slack for the channel contract suite: the fake Slack in Socket Mode (SlackEventsPlatform: the Events API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes import slack_server
from tests.fakes.slack_server import EMOJI, FakeSlack, Message


class SlackPlatform(Platform):
    channel_type = "slack"
    group_chat = "C0A1B2C3D4"
    dm_chat = "D0A1B2C3D4"
    thread_root = "1700000000.000100"
    socket_mode: ClassVar[bool] = True

    async def start(self, tmp: Path) -> dict[str, str]:
        self.server = FakeSlack(socket_mode=self.socket_mode, events_url=lambda: f"{self.webhook_base}/slack",
                                channels={self.group_chat: "general", self.dm_chat: "alice"})
        await self.server.start()
        self.server.add_message(self.group_chat, "a thread starts here", "U0ALICE001", ts=self.thread_root)
        env = {"SLACK_BOT_TOKEN": slack_server.BOT_TOKEN, "SLACK_API_URL": self.server.api_url}
        if self.socket_mode:
            env["SLACK_APP_TOKEN"] = slack_server.APP_TOKEN
        else:
            env["SLACK_SIGNING_SECRET"] = slack_server.SIGNING_SECRET
        return env

    async def stop(self) -> None:
        await self.server.stop()

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        channel = chat or (self.dm_chat if dm else self.group_chat)
        user = ("B" if from_bot else "U") + sender.upper().rjust(8, "0")  # Slack's id form: U0000000U1
        return await self.server.person_says(text, channel=channel, user=user, user_name=sender_name,
                                             thread_ts=thread, mention=mention, file=file, bot=from_bot)

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [_record(m) for m in self.server.bot_messages(chat)]

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        msg = self.server.find(message.id, message.chat)
        assert msg is not None, message
        await self.server.press(msg, label, "U" + sender.upper().rjust(8, "0"))

    async def submit_modal(self, message: PlatformMessage, value: str | None, sender: str = "u1") -> None:
        """Press "Enter credential", fill the modal the bot opened (views.open) with `value` and submit it
        (a view_submission, as Slack sends it); None presses "Refuse" instead."""
        msg = self.server.find(message.id, message.chat)
        assert msg is not None, message
        user = "U" + sender.upper().rjust(8, "0")
        if value is None:
            await self.server.press(msg, "Refuse", user)
            return
        opened = await self.server.press_for_view(msg, "Enter credential", user)
        [field] = opened.inputs()
        await self.server.submit_view(opened, {field: value})

    async def reactions_on(self, message_id: str) -> list[str]:
        msg = self.server.find(message_id)
        return [EMOJI.get(name, f":{name}:") for name in (msg.reactions if msg else [])]

    async def send_malformed(self) -> None:
        if self.socket_mode:
            for raw in malformed_frames(self.server, self.group_chat):
                await self.server.send_raw(raw)
        else:
            await malformed_posts(self.server, self.group_chat)

    async def drop_connections(self) -> None:
        await self.server.drop_connections()

    async def set_down(self, down: bool) -> None:
        self.server.down = down

    def bold(self, text: str) -> str:
        return f"*{text}*"


class SlackEventsPlatform(SlackPlatform):
    """The same fake Slack, delivering over the Events API to the host's /hooks/slack."""

    variant = "events"
    socket_mode = False
    inbound = "webhook"


def _record(m: Message) -> PlatformMessage:
    buttons = tuple(e["text"]["text"] for b in m.blocks if b.get("type") == "actions" for e in b.get("elements", []))
    return PlatformMessage(id=m.ts, chat=m.channel, text=m.text, thread=m.thread_ts, buttons=buttons,
                           file_name=m.file_name, file_data=m.file_data, edits=list(m.edits),
                           reactions=list(m.reactions), raw=m.raw)


def malformed_frames(server: FakeSlack, channel: str) -> list[str]:
    """Socket Mode frames that are garbage or have the wrong shape."""
    def envelope(kind: str, payload: object) -> str:
        return json.dumps({"envelope_id": "e-bad", "type": kind, "payload": payload})

    return [
        "this is not json",
        "{broken json",
        json.dumps({"type": "events_api", "envelope_id": "e-nopayload"}),
        envelope("events_api", "a string, not an object"),
        envelope("events_api", {"type": "event_callback", "event": "not an object"}),
        envelope("events_api", server.event_callback({"type": "message", "text": "no channel, no ts"})),
        envelope("events_api", server.event_callback({"type": "message", "channel": {"id": channel}, "ts": 5,
                                                      "user": "U0MALLORY1", "text": ["x"]})),
        envelope("interactive", {"type": "block_actions", "user": {"id": "U0MALLORY1"},
                                 "actions": [{"type": "button", "action_id": "nanoclaw_answer_0", "value": "{nope"}]}),
        envelope("interactive", {"type": "block_actions", "user": {"id": "U0MALLORY1"}, "trigger_id": "1.2.3",
                                 "actions": [{"type": "button", "action_id": "nanoclaw_credential_enter",
                                              "value": "[]"}]}),
        envelope("interactive", {"type": "view_submission", "user": {"id": "U0MALLORY1"},
                                 "view": {"type": "modal", "callback_id": "nanoclaw_credential",
                                          "private_metadata": "{nope", "state": "garbage"}}),
    ]


async def malformed_posts(server: FakeSlack, channel: str) -> list[int]:
    """Events API requests that are unsigned, badly signed, stale, or signed garbage; their statuses."""
    good = json.dumps(server.event_callback({"type": "message", "channel": channel, "user": "U0MALLORY1",
                                             "text": "forged", "ts": "1710009999.000001"}))
    return [
        await server.post_signed(good, signed=False),
        await server.post_signed(good, signature="v0=" + "0" * 64),
        await server.post_signed(good, timestamp="1000000000"),
        await server.post_signed("{broken json"),
        await server.post_signed(json.dumps({"type": "event_callback", "event": "not an object"})),
    ]


PLATFORMS = [SlackPlatform, SlackEventsPlatform]  # Socket Mode and the Events API both run the contract
