"""Microsoft Teams for the channel contract suite: the fake Bot Connector and identity endpoints, and people's
activities posted to the bot with a JWT signed by the fake's "Bot Framework" key."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from nanoclaw.channels.adaptive_cards import VALUE_INPUT
from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.teams_server import APP_ID, APP_PASSWORD, TENANT, FakeTeams, post_activity, shared_key

CHANNEL = "19:general0123456789abcdef@thread.tacv2"
DM = "a:1personalChatWithAliceXYZ"
BOT = {"id": f"28:{APP_ID}", "name": "Andy"}


class TeamsPlatform(Platform):
    channel_type = "teams"
    group_chat = CHANNEL
    dm_chat = DM
    thread_root = "1700000000001"
    inbound = "webhook"  # the Bot Framework posts activities to the host

    def __init__(self) -> None:
        self.fake = FakeTeams()

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        return {"TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": APP_PASSWORD, "TEAMS_TENANT_ID": TENANT,
                "TEAMS_TOKEN_URL": f"{self.fake.base_url}/token", "TEAMS_OPENID_URL": f"{self.fake.base_url}/openid",
                "TEAMS_SERVICE_URL": self.fake.service_url}

    async def stop(self) -> None:
        await self.fake.stop()

    @property
    def hook_url(self) -> str:
        return self.webhook_base + "/teams"

    async def deliver(self, activity: Any, token: str | None = "valid") -> tuple[int, Any]:
        return await post_activity(self.hook_url, activity, self.fake.token() if token == "valid" else token)

    def activity(self, text: str, *, chat: str = CHANNEL, sender: str = "u1", sender_name: str = "Alice",
                 thread: str | None = None, mention: bool = False, bot: bool = False,
                 **extra: Any) -> dict[str, Any]:
        message_id = self.fake.next_id()
        if chat == DM:
            conversation = {"conversationType": "personal", "tenantId": TENANT, "id": DM}
        elif chat.startswith("19:") and chat.endswith("@thread.tacv2"):  # a channel: each post is a thread
            conversation = {"isGroup": True, "conversationType": "channel", "tenantId": TENANT,
                            "id": f"{chat};messageid={thread or message_id}", "name": "General"}
        else:
            conversation = {"isGroup": True, "conversationType": "groupChat", "tenantId": TENANT, "id": chat}
        sender_account = {"id": f"28:{sender}" if bot else f"29:{sender}", "name": sender_name,
                          "aadObjectId": f"aad-{sender}"}
        if bot:
            sender_account["role"] = "bot"
        entities: list[dict[str, Any]] = [{"type": "clientInfo", "locale": "en-US", "platform": "Web"}]
        if mention:
            text = f"<at>Andy</at> {text}"
            entities.append({"type": "mention", "mentioned": BOT, "text": "<at>Andy</at>"})
        return {"type": "message", "id": message_id, "timestamp": "2025-01-01T00:00:00.000Z",
                "serviceUrl": self.fake.service_url, "channelId": "msteams", "from": sender_account,
                "conversation": conversation, "recipient": BOT, "textFormat": "plain", "text": text,
                "entities": entities, "channelData": {"tenant": {"id": TENANT}}, **extra}

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        extra: dict[str, Any] = {}
        if file is not None:
            file_id = secrets.token_hex(8)
            self.fake.files[file_id] = file[1]
            extra["attachments"] = [{"contentType": "application/vnd.microsoft.teams.file.download.info",
                                     "contentUrl": f"https://contoso.sharepoint.com/Shared/{file[0]}", "name": file[0],
                                     "content": {"downloadUrl": f"{self.fake.base_url}/files/{file_id}",
                                                 "uniqueId": file_id, "fileType": file[0].rsplit(".", 1)[-1]}}]
        activity = self.activity(text, chat=chat or (DM if dm else CHANNEL), sender=sender, sender_name=sender_name,
                                 thread=thread, mention=mention, bot=from_bot, **extra)
        status, _ = await self.deliver(activity)
        assert status == 202, status
        return str(activity["id"])

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [self.fake.as_platform(s) for s in self.fake.sent if chat is None or s.conversation.split(";")[0] == chat]

    def _actions(self, message: PlatformMessage) -> list[dict[str, Any]]:
        return [a for att in message.raw.get("attachments") or [] for a in att["content"].get("actions", [])]

    def _conversation(self, message: PlatformMessage) -> str:
        return next(s.conversation for s in self.fake.sent if s.id == message.id)

    def _card_press(self, message: PlatformMessage, data: dict[str, Any], sender: str) -> dict[str, Any]:
        """The message activity Teams sends when a person presses an Action.Submit of the card."""
        activity = self.activity("", sender=sender, replyToId=message.id, value=data)
        activity["conversation"]["id"] = self._conversation(message)
        return activity

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        action = next(a for a in self._actions(message) if a["title"] == label)
        status, _ = await self.deliver(self._card_press(message, dict(action["data"]), sender))
        assert status == 202, status

    async def invoke(self, message: PlatformMessage, name: str, data: dict[str, Any], sender: str = "u1") -> Any:
        activity = self._card_press(message, {}, sender)
        activity.update(type="invoke", name=name, value={"data": data, "context": {"theme": "default"}})
        activity.pop("text")
        status, answer = await self.deliver(activity)
        assert status == 200, status
        return answer

    async def submit_modal(self, message: PlatformMessage, value: str | None, sender: str = "u1") -> None:
        if value is None:
            await self.press(message, "Refuse", sender)
            return
        enter = next(a for a in self._actions(message) if a["title"] == "Enter credential")
        assert enter["data"]["msteams"] == {"type": "task/fetch"}
        task = await self.invoke(message, "task/fetch", dict(enter["data"]), sender)
        form = task["task"]["value"]["card"]["content"]
        assert any(b.get("style") == "Password" for b in form["body"] if b.get("type") == "Input.Text")
        save = form["actions"][0]["data"]
        answer = await self.invoke(message, "task/submit", {**save, VALUE_INPUT: value}, sender)
        assert answer["task"]["type"] == "message", answer

    async def typing_seen(self, chat: str) -> bool:
        return any(c.split(";")[0] == chat for c in self.fake.typing)

    async def send_malformed(self) -> None:
        good = self.activity("forged")
        tokens = (None, "", "not.a.jwt", self.fake.token(key=shared_key("forger")), self.fake.token(audience="other-app"),
                  self.fake.token(issuer="https://evil.example"), self.fake.token(age=7200),
                  self.fake.token(service_url="https://evil.example/"))
        for token in tokens:
            status, _ = await self.deliver(good, token=token)
            assert status == 401, (token, status)
        for shape in (b"{not json", [1, 2], {"type": "message"}, {"type": "message", "conversation": "x"},
                      {"conversation": {"id": CHANNEL}}):
            status, _ = await self.deliver(shape)
            assert status == 400, (shape, status)

    async def drop_connections(self) -> None:
        await self.fake.restart()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"**{text}**"


PLATFORM = TeamsPlatform
