"""Agent groups: an agent identity with its folder, provider and admin flag."""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass

from nanoclaw.errors import ConfigError

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class AgentGroup:
    id: str
    name: str
    is_admin: bool
    provider: str | None
    model: str | None
    base_url: str | None = None
    uid_offset: int | None = None  # its sandboxes' uid on a root host is the base + this (sandbox/identity.py)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AgentGroup:
        return cls(row["id"], row["name"], bool(row["is_admin"]), row["provider"], row["model"], row["base_url"],
                   row["uid_offset"])


def validate_id(group_id: str) -> str:
    if group_id == "global":
        raise ConfigError("'global' is reserved for the global memory folder; choose another agent group id")
    if not _ID.fullmatch(group_id):
        raise ConfigError(
            f"agent group id {group_id!r} must be lowercase letters, digits, - or _ (it names a folder)"
        )
    return group_id


def create(
    conn: sqlite3.Connection, group_id: str, name: str | None = None, *, is_admin: bool = False,
    provider: str | None = None, model: str | None = None,
) -> AgentGroup:
    validate_id(group_id)
    if get(conn, group_id) is not None:
        raise ConfigError(f"agent group {group_id!r} already exists; choose another id")
    # Offsets are never reused while a row holds one: a new group never inherits another's files.
    offset = int(conn.execute("SELECT coalesce(max(uid_offset), 0) + 1 FROM agent_groups").fetchone()[0])
    conn.execute(
        "INSERT INTO agent_groups (id, name, is_admin, provider, model, created_at, uid_offset)"
        " VALUES (?,?,?,?,?,?,?)",
        (group_id, name or group_id, int(is_admin), provider, model, time.time(), offset),
    )
    return AgentGroup(group_id, name or group_id, is_admin, provider, model, uid_offset=offset)


def get(conn: sqlite3.Connection, group_id: str) -> AgentGroup | None:
    row = conn.execute("SELECT * FROM agent_groups WHERE id = ?", (group_id,)).fetchone()
    return AgentGroup.from_row(row) if row else None


def list_all(conn: sqlite3.Connection) -> list[AgentGroup]:
    return [AgentGroup.from_row(r) for r in conn.execute("SELECT * FROM agent_groups ORDER BY id")]


def set_model(
    conn: sqlite3.Connection, group_id: str, provider: str | None, model: str | None, base_url: str | None
) -> None:
    conn.execute("UPDATE agent_groups SET provider = ?, model = ?, base_url = ? WHERE id = ?",
                 (provider, model, base_url, group_id))
