"""Host commands typed in a chat (`/clear`, `/compact`). Unknown `/words` go to the agent unchanged."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from nanoclaw.db import users
from nanoclaw.db.messaging_groups import MessagingGroup

_COMMAND = re.compile(r"^/([a-z][a-z0-9_-]*)(?:@\S+)?(?:\s+(.*))?$", re.DOTALL | re.IGNORECASE)

# name → what it does; all of these change the shared conversation, so owner/admin only outside DMs.
PROVIDER_COMMANDS = {
    "clear": "start a fresh conversation (the agent forgets this session's history)",
    "compact": "compact the conversation history to save context",
}


@dataclass(frozen=True)
class Command:
    name: str
    args: str


def parse(text: str) -> Command | None:
    """A host command in `text`, or None (unknown commands are not ours: they pass through)."""
    match = _COMMAND.match(text.strip())
    if not match or match.group(1).lower() not in PROVIDER_COMMANDS:
        return None
    return Command(match.group(1).lower(), (match.group(2) or "").strip())


def may_use(conn: sqlite3.Connection, chat: MessagingGroup, sender_id: str) -> bool:
    if chat.is_dm:
        return True
    user = users.find(conn, chat.channel_type, sender_id)
    return user is not None and user.role in ("owner", "admin")
