"""Google Chat for the channel contract suite: the fake Chat API, and people's interaction events posted to the
app's endpoint with a bearer token signed by the fake's "Google" key."""

from __future__ import annotations

import mimetypes
import uuid
from pathlib import Path
from typing import Any

from nanoclaw.channels.googlechat_cards import VALUE_INPUT
from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.googlechat_server import PROJECT_NUMBER, FakeGoogleChat, now, post_event, shared_key

GROUP, DM = "spaces/AAAAgroup01", "spaces/AAAAdirect1"
APP = {"name": "users/app", "displayName": "Andy", "type": "BOT"}


class GoogleChatPlatform(Platform):
    channel_type = "googlechat"
    group_chat = GROUP
    dm_chat = DM
    thread_root = f"{GROUP}/threads/root1"
    inbound = "webhook"

    def __init__(self) -> None:
        self.fake = FakeGoogleChat()

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.fake.start()
        tmp.mkdir(parents=True, exist_ok=True)
        return {"GOOGLECHAT_SERVICE_ACCOUNT_FILE": str(self.fake.key_file(tmp)),
                "GOOGLECHAT_PROJECT_NUMBER": PROJECT_NUMBER, "GOOGLECHAT_API_URL": self.fake.base_url,
                "GOOGLECHAT_CERTS_URL": f"{self.fake.base_url}/certs"}

    async def stop(self) -> None:
        await self.fake.stop()

    @property
    def hook_url(self) -> str:
        return self.webhook_base + "/googlechat"

    async def deliver(self, event: Any, token: str | None = "valid") -> tuple[int, Any]:
        return await post_event(self.hook_url, event, self.fake.token() if token == "valid" else token)

    @staticmethod
    def space(name: str) -> dict[str, Any]:
        if name == DM:
            return {"name": DM, "type": "DM", "spaceType": "DIRECT_MESSAGE", "singleUserBotDm": True,
                    "spaceThreadingState": "UNTHREADED_MESSAGES"}
        return {"name": name, "type": "ROOM", "spaceType": "SPACE", "displayName": "Project Unicorn",
                "spaceThreadingState": "THREADED_MESSAGES"}

    def message_event(self, text: str, *, space: str = GROUP, sender: str = "u1", sender_name: str = "Alice",
                      mention: bool = False, thread: str | None = None, bot: bool = False,
                      file: tuple[str, bytes] | None = None) -> dict[str, Any]:
        user = {"name": f"users/{sender}", "displayName": sender_name, "type": "BOT" if bot else "HUMAN",
                "email": f"{sender}@example.com"}
        message = self.fake.add(space, f"@Andy {text}" if mention else text, user, thread=thread).data
        if mention:
            message["annotations"] = [{"type": "USER_MENTION", "startIndex": 0, "length": 5,
                                       "userMention": {"user": APP, "type": "MENTION"}}]
            message["argumentText"] = f" {text}"
        if file is not None:
            resource = f"ref-{uuid.uuid4().hex}"
            mime = mimetypes.guess_type(file[0])[0] or "application/octet-stream"
            self.fake.media[resource] = (file[1], mime)
            message["attachment"] = [{"name": f"{message['name']}/attachments/a1", "contentName": file[0],
                                      "contentType": mime, "attachmentDataRef": {"resourceName": resource},
                                      "source": "UPLOADED_CONTENT"}]
        return {"type": "MESSAGE", "eventTime": now(), "space": self.space(space), "message": message, "user": user}

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        event = self.message_event(text, space=chat or (DM if dm else GROUP), sender=sender, sender_name=sender_name,
                                   mention=mention, thread=thread, bot=from_bot, file=file)
        status, _ = await self.deliver(event)
        assert status == 200, status
        return str(event["message"]["name"])

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [m for m in self.fake.sent() if chat is None or m.chat == chat]

    def _buttons(self, message: PlatformMessage) -> list[dict[str, Any]]:
        return [b for c in message.raw.get("cardsV2") or [] for s in c["card"]["sections"] for w in s["widgets"]
                for b in (w.get("buttonList") or {}).get("buttons", [])]

    async def click(self, message: PlatformMessage, button: dict[str, Any], sender: str = "u1",
                    dialog: str | None = None, inputs: dict[str, Any] | None = None) -> Any:
        """A person clicks `button`; the app's synchronous answer (applied to the card when it updates it)."""
        action = button["onClick"]["action"]
        params = {p["key"]: p["value"] for p in action.get("parameters", [])}
        event: dict[str, Any] = {
            "type": "CARD_CLICKED", "eventTime": now(), "space": self.space(message.chat), "message": message.raw,
            "user": {"name": f"users/{sender}", "displayName": "Alice", "type": "HUMAN"},
            "action": {"actionMethodName": action["function"], "parameters": action.get("parameters", [])},
            "common": {"invokedFunction": action["function"], "parameters": params, "hostApp": "CHAT"},
        }
        if dialog:
            event.update(isDialogEvent=True, dialogEventType=dialog)
        if inputs:
            event["common"]["formInputs"] = inputs
        status, answer = await self.deliver(event)
        assert status == 200, status
        if isinstance(answer, dict) and (answer.get("actionResponse") or {}).get("type") == "UPDATE_MESSAGE":
            stored = self.fake.messages[message.id]
            stored.data.update({k: v for k, v in answer.items() if k in ("text", "cardsV2")})
        return answer

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        await self.click(message, next(b for b in self._buttons(message) if b["text"] == label), sender)

    async def submit_modal(self, message: PlatformMessage, value: str | None, sender: str = "u1") -> None:
        if value is None:
            await self.press(message, "Refuse", sender)
            return
        enter = next(b for b in self._buttons(message) if b["text"] == "Enter credential")
        # The REST transport sends enums as numbers ($alt=json;enum-encoding=int): 1 is OPEN_DIALOG.
        assert enter["onClick"]["action"].get("interaction") in ("OPEN_DIALOG", 1)
        dialog = await self.click(message, enter, sender, dialog="REQUEST_DIALOG")
        body = dialog["actionResponse"]["dialogAction"]["dialog"]["body"]
        assert any("textInput" in w for s in body["sections"] for w in s["widgets"])
        save = body["fixedFooter"]["primaryButton"]
        status = await self.click(message, save, sender, dialog="SUBMIT_DIALOG",
                                  inputs={VALUE_INPUT: {"stringInputs": {"value": [value]}}})
        assert status["actionResponse"]["dialogAction"]["actionStatus"]["statusCode"] == "OK", status

    async def send_malformed(self) -> None:
        good = self.message_event("forged")
        other = shared_key("forger")
        for token in (None, "", "not.a.jwt", self.fake.token(key=other), self.fake.token(audience="999999999999"),
                      self.fake.token(issuer="someone@evil.example"), self.fake.token(age=7200)):
            status, _ = await self.deliver(good, token=token)
            assert status == 401, (token, status)
        for shape in (b"{not json", [1, 2], {"type": "MESSAGE"}, {"type": "MESSAGE", "message": "x", "space": {}},
                      {"type": "MESSAGE", "space": {"name": GROUP}, "message": {"name": 5, "sender": {"name": "u"}}}):
            status, _ = await self.deliver(shape)
            assert status == 400, (shape, status)

    async def drop_connections(self) -> None:
        await self.fake.restart()

    async def set_down(self, down: bool) -> None:
        self.fake.down = down

    def bold(self, text: str) -> str:
        return f"*{text}*"


PLATFORM = GoogleChatPlatform
