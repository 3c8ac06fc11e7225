"""Messaging groups: one chat on one platform, recorded the first time it is seen."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class MessagingGroup:
    id: int
    channel_type: str
    platform_id: str
    name: str | None
    is_dm: bool
    sender_policy: str = "open"
    admission: str | None = None  # the owner's answer while unwired: ignored | blocked (None: not decided)
    dm_user_id: int | None = None  # who a direct chat is with
    last_seen: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MessagingGroup:
        return cls(
            row["id"], row["channel_type"], row["platform_id"], row["name"], bool(row["is_dm"]), row["sender_policy"],
            row["admission"], row["dm_user_id"], row["last_seen"],
        )


# last_seen is kept to this resolution: refreshing it on every message would make each one a
# write to the central DB (a commit on the path of every reply).
LAST_SEEN_RESOLUTION = 60.0


def upsert(
    conn: sqlite3.Connection, channel_type: str, platform_id: str, *, name: str | None = None, is_dm: bool = False
) -> MessagingGroup:
    now = time.time()
    row = conn.execute(
        "SELECT * FROM messaging_groups WHERE channel_type = ? AND platform_id = ?", (channel_type, platform_id)
    ).fetchone()
    if row is not None and (name is None or name == row["name"]) and now - row["last_seen"] < LAST_SEEN_RESOLUTION:
        return MessagingGroup.from_row(row)
    row = conn.execute(
        "INSERT INTO messaging_groups (channel_type, platform_id, name, is_dm, first_seen, last_seen)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT(channel_type, platform_id) DO UPDATE SET"
        " last_seen = excluded.last_seen, name = coalesce(excluded.name, messaging_groups.name)"
        " RETURNING *",
        (channel_type, platform_id, name, int(is_dm), now, now),
    ).fetchone()
    return MessagingGroup.from_row(row)


def get(conn: sqlite3.Connection, group_id: int) -> MessagingGroup | None:
    row = conn.execute("SELECT * FROM messaging_groups WHERE id = ?", (group_id,)).fetchone()
    return MessagingGroup.from_row(row) if row else None


def find(conn: sqlite3.Connection, channel_type: str, platform_id: str) -> MessagingGroup | None:
    row = conn.execute(
        "SELECT * FROM messaging_groups WHERE channel_type = ? AND platform_id = ?", (channel_type, platform_id)
    ).fetchone()
    return MessagingGroup.from_row(row) if row else None


def list_all(conn: sqlite3.Connection) -> list[MessagingGroup]:
    return [MessagingGroup.from_row(r) for r in conn.execute("SELECT * FROM messaging_groups ORDER BY id")]


def unwired(conn: sqlite3.Connection) -> list[MessagingGroup]:
    """Chats that wrote to us but are not wired to any agent group."""
    rows = conn.execute(
        "SELECT * FROM messaging_groups m WHERE NOT EXISTS (SELECT 1 FROM wirings w WHERE w.messaging_group_id = m.id)"
        " ORDER BY last_seen DESC"
    )
    return [MessagingGroup.from_row(r) for r in rows]


POLICIES = ("open", "allowlist", "ask")


def set_policy(conn: sqlite3.Connection, group_id: int, policy: str) -> None:
    conn.execute("UPDATE messaging_groups SET sender_policy = ? WHERE id = ?", (policy, group_id))


def set_admission(conn: sqlite3.Connection, group_id: int, admission: str | None) -> None:
    conn.execute("UPDATE messaging_groups SET admission = ? WHERE id = ?", (admission, group_id))


def set_dm_user(conn: sqlite3.Connection, group_id: int, user_id: int) -> None:
    """Remember who a direct chat is with: the first person who wrote there (a DM has one other side)."""
    conn.execute("UPDATE messaging_groups SET dm_user_id = ? WHERE id = ? AND dm_user_id IS NULL", (user_id, group_id))
