"""Messages held while the owner decides about their chat (a new chat, a pairing request, a new sender)."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from dataclasses import asdict
from typing import Any

from nanoclaw.channels.base import FileAttachment, InboundEvent

MAX_PER_CHAT = 200  # a chat nobody answers cannot fill the database; the owner is told how many were dropped


def encode(event: InboundEvent) -> dict[str, Any]:
    """The event as JSON-safe data (files' bytes as base64)."""
    data = asdict(event)
    data["files"] = [{"name": f.name, "data": base64.b64encode(f.data).decode(), "mime_type": f.mime_type}
                     for f in event.files]
    return data


def decode(data: dict[str, Any]) -> InboundEvent:
    files = tuple(FileAttachment(f["name"], base64.b64decode(f["data"]), f.get("mime_type"))
                  for f in data.get("files") or () if isinstance(f, dict) and "data" in f)
    fields = {k: v for k, v in data.items() if k in InboundEvent.__dataclass_fields__ and k != "files"}
    return InboundEvent(**fields, files=files)


def hold(conn: sqlite3.Connection, messaging_group_id: int, event: InboundEvent) -> bool:
    """Keep `event` for later; False when the chat already has MAX_PER_CHAT waiting (then it is dropped)."""
    if count(conn, messaging_group_id) >= MAX_PER_CHAT:
        return False
    conn.execute("INSERT INTO held_messages (messaging_group_id, event, created_at) VALUES (?,?,?)",
                 (messaging_group_id, json.dumps(encode(event)), time.time()))
    return True


def count(conn: sqlite3.Connection, messaging_group_id: int) -> int:
    return int(conn.execute("SELECT count(*) FROM held_messages WHERE messaging_group_id = ?",
                            (messaging_group_id,)).fetchone()[0])


def waiting(conn: sqlite3.Connection, messaging_group_id: int) -> list[tuple[int, InboundEvent]]:
    """(row id, event) of the chat's held messages, oldest first."""
    rows = conn.execute("SELECT id, event FROM held_messages WHERE messaging_group_id = ? ORDER BY id",
                        (messaging_group_id,))
    return [(r["id"], decode(json.loads(r["event"]))) for r in rows]


def release(conn: sqlite3.Connection, row_id: int) -> None:
    conn.execute("DELETE FROM held_messages WHERE id = ?", (row_id,))


def drop(conn: sqlite3.Connection, messaging_group_id: int) -> int:
    return conn.execute("DELETE FROM held_messages WHERE messaging_group_id = ?", (messaging_group_id,)).rowcount


def chats(conn: sqlite3.Connection) -> list[int]:
    """Chats with held messages."""
    return [r[0] for r in conn.execute("SELECT DISTINCT messaging_group_id FROM held_messages ORDER BY 1")]
