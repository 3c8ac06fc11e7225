"""Signal for the channel contract suite: a fake signal-cli HTTP daemon and people writing to it."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.signal_server import FakeSignalDaemon

BOT_NUMBER = "+15550009999"
BOT_UUID = "2f1c3b8e-7d4a-4c1e-9b7a-0a1b2c3d4e5f"
OTHER_BOT = "+15550007777"  # listed in SIGNAL_BOT_NUMBERS
GROUP_ID = "Pmpi+EfPWmsxiomLe9Nx2XF9HOE483p6iKiFj65iMwI="


class SignalPlatform(Platform):
    channel_type = "signal"
    group_chat = f"group:{GROUP_ID}"
    dm_chat = "+15550100001"  # the number of person "u1"

    def __init__(self) -> None:
        self.daemon = FakeSignalDaemon(BOT_NUMBER, BOT_UUID)
        self.daemon.groups[GROUP_ID] = "Family"
        self._numbers: dict[str, str] = {"u1": self.dm_chat}
        self._attachment_ids = itertools.count(1)

    async def start(self, tmp: Path) -> dict[str, str]:
        await self.daemon.start()
        return {"SIGNAL_ACCOUNT": BOT_NUMBER, "SIGNAL_RPC_URL": self.daemon.url, "SIGNAL_BOT_NUMBERS": OTHER_BOT}

    async def stop(self) -> None:
        await self.daemon.stop()

    def number(self, sender: str) -> str:
        """A stable phone number for a test's person name."""
        return self._numbers.setdefault(sender, f"+1555010{len(self._numbers) + 1:04d}")

    def envelope(
        self, text: str, *, source: str, name: str, group: str | None, mention: bool = False,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An envelope in signal-cli's JSON shape (JsonMessageEnvelope / JsonDataMessage)."""
        ts = self.daemon.timestamp()
        data: dict[str, Any] = {"timestamp": ts, "message": text, "expiresInSeconds": 0, "viewOnce": False}
        if mention:
            data["message"] = "\ufffc " + text
            data["mentions"] = [{"name": BOT_NUMBER, "number": BOT_NUMBER, "uuid": BOT_UUID, "start": 0, "length": 1}]
        if attachments:
            data["attachments"] = attachments
        if group:
            data["groupInfo"] = {"groupId": group, "groupName": self.daemon.groups.get(group), "revision": 2,
                                 "type": "DELIVER"}
        return {
            "source": source, "sourceNumber": source, "sourceUuid": f"uuid-{source[1:]}", "sourceName": name,
            "sourceDevice": 1, "timestamp": ts, "serverReceivedTimestamp": ts + 5, "serverDeliveredTimestamp": ts + 9,
            "dataMessage": data,
        }

    def attachment(self, name: str, data: bytes, mime: str = "text/csv", size: int | None = None) -> dict[str, Any]:
        """Store a file signal-cli downloaded; its JsonAttachment."""
        att_id = f"att{next(self._attachment_ids)}.bin"
        self.daemon.attachments[att_id] = data
        return {"contentType": mime, "filename": name, "id": att_id, "size": len(data) if size is None else size,
                "width": None, "height": None, "caption": None, "uploadTimestamp": self.daemon.timestamp()}

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        source = OTHER_BOT if from_bot else self.number(sender)
        chat = chat or (None if dm else self.group_chat)
        group = chat.removeprefix("group:") if chat and chat.startswith("group:") else None
        attachments = [self.attachment(*file)] if file else None
        envelope = self.envelope(text, source=source, name=sender_name, group=group, mention=mention,
                                 attachments=attachments)
        await self.daemon.wait_streams()
        self.daemon.incoming(envelope)
        return f"{source}:{envelope['timestamp']}"

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [
            PlatformMessage(
                id=f"{BOT_NUMBER}:{m.timestamp}", chat=m.chat, text=m.text,
                file_name=m.attachments[0][0] if m.attachments else None,
                file_data=m.attachments[0][2] if m.attachments else None,
                edits=list(m.edits), reactions=list(self.daemon.reactions.get(f"{BOT_NUMBER}:{m.timestamp}", [])),
                raw=m.raw,
            )
            for m in self.daemon.sent if chat is None or m.chat == chat
        ]

    async def reactions_on(self, message_id: str) -> list[str]:
        return list(self.daemon.reactions.get(message_id, []))

    async def typing_seen(self, chat: str) -> bool:
        return any(c == chat and not stop for c, stop in self.daemon.typing)

    async def send_malformed(self) -> None:
        await self.daemon.wait_streams()
        good = self.envelope("should never arrive", source="+15550100042", name="Mallory", group=GROUP_ID)
        data = good["dataMessage"]
        for raw in [
            "not json at all",
            "[1, 2, 3]",
            '{"envelope": "a string", "account": "%s"}' % BOT_NUMBER,
            '{"account": "%s"}' % BOT_NUMBER,
        ]:
            self.daemon.emit(raw)
        for bad in [
            {**good, "timestamp": "yesterday"},
            {**good, "dataMessage": "text"},
            {**good, "dataMessage": {**data, "message": 42}},
            {**good, "dataMessage": {**data, "groupInfo": "Family"}},
            {**good, "dataMessage": {**data, "mentions": [{"start": "zero"}]}},
            {**good, "dataMessage": {**data, "mentions": "everyone"}},
            {**good, "dataMessage": {**data, "attachments": [{"filename": "no-id.txt"}]}},
            {**good, "source": None, "sourceNumber": None, "sourceUuid": None},
        ]:
            self.daemon.incoming(bad)

    async def drop_connections(self) -> None:
        self.daemon.drop_streams()

    async def set_down(self, down: bool) -> None:
        self.daemon.down = down

    def bold(self, text: str) -> str:
        return f"⟦b⟧{text}⟦/b⟧"


PLATFORM = SignalPlatform
