"""Users and roles: platform identities; owner and admins."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

ROLES = ("owner", "admin", "member", "blocked")


@dataclass(frozen=True)
class User:
    id: int
    channel_type: str
    platform_user_id: str
    display_name: str | None
    role: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> User:
        return cls(row["id"], row["channel_type"], row["platform_user_id"], row["display_name"], row["role"])


def upsert(
    conn: sqlite3.Connection, channel_type: str, platform_user_id: str, display_name: str | None = None,
    role: str | None = None,
) -> User:
    row = conn.execute(
        "INSERT INTO users (channel_type, platform_user_id, display_name, role) VALUES (?,?,?,coalesce(?, 'member'))"
        " ON CONFLICT(channel_type, platform_user_id) DO UPDATE SET"
        " display_name = coalesce(excluded.display_name, users.display_name),"
        " role = coalesce(?, users.role) RETURNING *",
        (channel_type, platform_user_id, display_name, role, role),
    ).fetchone()
    return User.from_row(row)


def find(conn: sqlite3.Connection, channel_type: str, platform_user_id: str) -> User | None:
    row = conn.execute(
        "SELECT * FROM users WHERE channel_type = ? AND platform_user_id = ?", (channel_type, platform_user_id)
    ).fetchone()
    return User.from_row(row) if row else None


def get(conn: sqlite3.Connection, user_id: int) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    return User.from_row(row) if row else None


def set_role(conn: sqlite3.Connection, user_id: int, role: str) -> None:
    conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))


def may_decide(user: User | None) -> bool:
    """Owners and admins answer approval cards and use /approve."""
    return user is not None and user.role in ("owner", "admin")


def with_role(conn: sqlite3.Connection, role: str) -> list[User]:
    return [User.from_row(r) for r in conn.execute("SELECT * FROM users WHERE role = ? ORDER BY id", (role,))]


def allow(conn: sqlite3.Connection, messaging_group_id: int, user_id: int) -> None:
    conn.execute("DELETE FROM sender_denylist WHERE messaging_group_id = ? AND user_id = ?", (messaging_group_id, user_id))
    conn.execute("INSERT OR IGNORE INTO sender_allowlist VALUES (?, ?)", (messaging_group_id, user_id))


def deny(conn: sqlite3.Connection, messaging_group_id: int, user_id: int) -> None:
    conn.execute("DELETE FROM sender_allowlist WHERE messaging_group_id = ? AND user_id = ?", (messaging_group_id, user_id))
    conn.execute("INSERT OR IGNORE INTO sender_denylist VALUES (?, ?)", (messaging_group_id, user_id))


def standing(conn: sqlite3.Connection, messaging_group_id: int, user: User) -> str:
    """'trusted' (owner/admin), 'allowed', 'denied' or 'unknown' in this chat."""
    if user.role in ("owner", "admin"):
        return "trusted"
    if user.role == "blocked":
        return "denied"
    for table, verdict in (("sender_allowlist", "allowed"), ("sender_denylist", "denied")):
        row = conn.execute(
            f"SELECT 1 FROM {table} WHERE messaging_group_id = ? AND user_id = ?", (messaging_group_id, user.id)
        ).fetchone()
        if row:
            return verdict
    return "unknown"
