"""Sessions: one conversation context of one agent group, keyed by chat and thread."""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Session:
    id: str
    key: str
    agent_group_id: str
    messaging_group_id: int | None
    thread_id: str | None
    mode: str
    status: str
    last_active: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Session:
        return cls(
            row["id"], row["key"], row["agent_group_id"], row["messaging_group_id"], row["thread_id"],
            row["mode"], row["status"], row["last_active"],
        )


def session_key(agent_group_id: str, messaging_group_id: int | None, thread_id: str | None) -> str:
    return f"{agent_group_id}|{messaging_group_id if messaging_group_id is not None else '*'}|{thread_id or ''}"


def get_or_create(
    conn: sqlite3.Connection, agent_group_id: str, messaging_group_id: int | None, thread_id: str | None, mode: str
) -> tuple[Session, bool]:
    """The session for this key; the flag says whether it was just created."""
    key = session_key(agent_group_id, messaging_group_id, thread_id)
    row = conn.execute("SELECT * FROM sessions WHERE key = ?", (key,)).fetchone()
    if row:
        return Session.from_row(row), False
    now = time.time()
    row = conn.execute(
        "INSERT INTO sessions (id, key, agent_group_id, messaging_group_id, thread_id, mode, created_at, last_active)"
        " VALUES (?,?,?,?,?,?,?,?) RETURNING *",
        ("s-" + secrets.token_hex(6), key, agent_group_id, messaging_group_id, thread_id, mode, now, now),
    ).fetchone()
    return Session.from_row(row), True


def get(conn: sqlite3.Connection, session_id: str) -> Session | None:
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return Session.from_row(row) if row else None


def list_all(conn: sqlite3.Connection) -> list[Session]:
    return [Session.from_row(r) for r in conn.execute("SELECT * FROM sessions ORDER BY last_active DESC")]


# last_active is kept to this resolution (not a write to the central DB per message).
LAST_ACTIVE_RESOLUTION = 60.0


def touch(conn: sqlite3.Connection, session: Session) -> None:
    """Record activity, at most once per LAST_ACTIVE_RESOLUTION."""
    now = time.time()
    if now - session.last_active >= LAST_ACTIVE_RESOLUTION:
        conn.execute("UPDATE sessions SET last_active = ? WHERE id = ?", (now, session.id))


def set_status(conn: sqlite3.Connection, session_id: str, status: str) -> None:
    conn.execute("UPDATE sessions SET status = ? WHERE id = ?", (status, session_id))


def chat_kinds(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(agent group, channel type) pairs that have sessions or wirings, most recently active first.

    What the sandbox pool keeps warm: a runner depends on its group and the kind of chat only.
    """
    rows = conn.execute(
        "SELECT agent_group_id, channel_type, max(at) FROM ("
        " SELECT s.agent_group_id, coalesce(m.channel_type, '') AS channel_type, s.last_active AS at"
        " FROM sessions s LEFT JOIN messaging_groups m ON m.id = s.messaging_group_id"
        " UNION ALL SELECT w.agent_group_id, m.channel_type, 0 FROM wirings w"
        " JOIN messaging_groups m ON m.id = w.messaging_group_id"
        ") GROUP BY agent_group_id, channel_type ORDER BY max(at) DESC, agent_group_id, channel_type"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]
