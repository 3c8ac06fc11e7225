"""iMessage for the channel contract suite: a generated chat.db with Messages' schema that people's messages
are written into, and the stand-in osascript that records what the channel sent (tests/fakes/messages_db.py).

Nothing here runs on a Mac: the channel reads the same tables and columns, and runs the same command lines,
as it does there. Messages has no bot accounts; the only messages not from a person are our own account's
(is_from_me), which the channel drops.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.messages_db import FakeMessages

GROUP = "iMessage;+;chat493827161"
DM = "iMessage;-;+15551234567"


def handle_of(sender: str) -> str:
    return sender if sender.startswith("+") or "@" in sender else f"{sender}@icloud.example"


class IMessagePlatform(Platform):
    channel_type = "imessage"
    group_chat = GROUP
    dm_chat = DM
    mention_markup = False  # Messages has no mention markup: people write the name

    def __init__(self) -> None:
        self.fake: FakeMessages | None = None

    @property
    def messages(self) -> FakeMessages:
        assert self.fake is not None, "start() first"
        return self.fake

    async def start(self, tmp: Path) -> dict[str, str]:
        if self.fake is None:
            self.fake = FakeMessages(tmp / "mac")
            self.fake.create()
            self.fake.add_chat(GROUP, group=True, name="Family")
            self.fake.add_chat(DM, group=False)
        return {"IMESSAGE_DB": str(self.messages.db), "IMESSAGE_OSASCRIPT": str(self.messages.osascript),
                "IMESSAGE_POLL_SECONDS": "0.05"}

    async def stop(self) -> None:
        pass  # files under the test's tmp_path: nothing runs

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        target = DM if dm else chat or GROUP
        if mention:  # no mention markup in Messages: people write the name
            text = f"@{self.bot_name} {text}"
        attachment = (file[0], file[1], mimetypes.guess_type(file[0])[0] or "application/octet-stream") if file else None
        # As on current macOS: the text only in attributedBody (test_imessage covers rows with `text`).
        return self.messages.write(target, None if from_bot else handle_of(sender), text, from_me=from_bot,
                                   attributed_only=True, file=attachment)

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        return [PlatformMessage(
            id=c["guid"], chat=c["chat"], text=c.get("text", ""), file_name=c.get("file_name"),
            file_data=base64.b64decode(c["file_data"]) if "file_data" in c else None, raw=c,
        ) for c in self.messages.calls() if chat is None or c["chat"] == chat]

    async def send_malformed(self) -> None:
        m = self.messages
        m.write(GROUP, "u2@icloud.example", "", associated_message_type=2001,
                associated_message_guid="p:0/1234")  # a tapback (a heart on a message)
        m.write(GROUP, "u2@icloud.example", "", item_type=2, group_title="Renamed")  # a group rename
        m.execute("INSERT INTO message (guid, text, attributedBody, handle_id, date, is_from_me)"
                  " VALUES ('JUNK-1', NULL, X'040b73747265616d7479706564ff', 1, 1, 0)")  # undecodable, no chat
        m.execute("INSERT INTO message (guid, text, handle_id, date, is_from_me) VALUES ('ORPHAN', 'x', 1, 1, 0)")
        guid = m.write(GROUP, "u2@icloud.example", "", attributed_only=True)  # nothing in it
        assert guid
        secret = m.root / "secret.txt"
        secret.write_text("not for the agent")
        link = m.attachments / "zz" / "link.txt"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(secret)
        for path in (str(secret), "~/Library/Messages/Attachments/zz/link.txt",
                     "~/Library/Messages/Attachments/../../../secret.txt"):
            guid = m.write(GROUP, "u2@icloud.example", "", file=("x.txt", b"x", "text/plain"))
            m.execute("UPDATE attachment SET filename = ? WHERE ROWID = (SELECT attachment_id FROM"
                      " message_attachment_join JOIN message ON message.ROWID = message_id WHERE guid = ?)", path, guid)

    async def drop_connections(self) -> None:
        self.messages.replace_db()

    async def set_down(self, down: bool) -> None:
        self.messages.set_down(down)

    def bold(self, text: str) -> str:
        return text  # plain text: the Markdown marks are removed


PLATFORM = IMessagePlatform
