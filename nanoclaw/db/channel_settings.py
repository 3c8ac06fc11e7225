"""Per channel: how a chat nobody wired is met (the owner's default for new chats)."""

from __future__ import annotations

import sqlite3

# ask: a card to the owner · main: direct chats are answered by main (group chats are asked about) ·
# pairing: a stranger in a direct chat gets a code the owner approves (group chats are asked about) · ignore
NEW_CHATS = ("ask", "main", "pairing", "ignore")


def new_chats(conn: sqlite3.Connection, channel_type: str) -> str:
    row = conn.execute("SELECT new_chats FROM channel_settings WHERE channel_type = ?", (channel_type,)).fetchone()
    return str(row[0]) if row else "ask"


def set_new_chats(conn: sqlite3.Connection, channel_type: str, policy: str) -> None:
    if policy not in NEW_CHATS:
        from nanoclaw.errors import ConfigError

        raise ConfigError(f"new chats on {channel_type} are met with one of {', '.join(NEW_CHATS)}, not {policy!r}")
    conn.execute("INSERT INTO channel_settings (channel_type, new_chats) VALUES (?, ?)"
                 " ON CONFLICT(channel_type) DO UPDATE SET new_chats = excluded.new_chats", (channel_type, policy))


def all_set(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT channel_type, new_chats FROM channel_settings ORDER BY 1")}
