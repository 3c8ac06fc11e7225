"""Host messages (cards, notices) whose channel could not take them yet; sent when it can, even after a restart."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.protocol.messages import Route


def keep(conn: sqlite3.Connection, message: OutgoingMessage) -> None:
    data = {k: v for k, v in asdict(message).items() if k != "file"}
    conn.execute("INSERT OR IGNORE INTO host_outbox (id, channel_type, message, created_at) VALUES (?,?,?,?)",
                 (message.id, message.route.channel_type, json.dumps(data), time.time()))


def waiting(conn: sqlite3.Connection, channel_type: str) -> list[OutgoingMessage]:
    rows = conn.execute("SELECT message FROM host_outbox WHERE channel_type = ? ORDER BY created_at", (channel_type,))
    out = []
    for (raw,) in rows:
        data = json.loads(raw)
        data["route"] = Route(**data["route"])
        data["buttons"] = tuple(data.get("buttons") or ())
        out.append(OutgoingMessage(**data))
    return out


def sent(conn: sqlite3.Connection, message_id: str) -> None:
    conn.execute("DELETE FROM host_outbox WHERE id = ?", (message_id,))


def channels(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT channel_type FROM host_outbox")]
