"""Extra folders mounted for an agent group (the allow-list decides; this only remembers the owner's choice)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupMount:
    agent_group_id: str
    name: str
    host_path: str
    writable: bool


def add(conn: sqlite3.Connection, agent_group_id: str, name: str, host_path: str, writable: bool) -> GroupMount:
    conn.execute(
        "INSERT OR REPLACE INTO group_mounts (agent_group_id, name, host_path, writable, created_at) VALUES (?,?,?,?,?)",
        (agent_group_id, name, host_path, int(writable), time.time()),
    )
    return GroupMount(agent_group_id, name, host_path, writable)


def remove(conn: sqlite3.Connection, agent_group_id: str, name: str) -> bool:
    return conn.execute("DELETE FROM group_mounts WHERE agent_group_id = ? AND name = ?",
                        (agent_group_id, name)).rowcount > 0


def for_group(conn: sqlite3.Connection, agent_group_id: str) -> list[GroupMount]:
    rows = conn.execute("SELECT * FROM group_mounts WHERE agent_group_id = ? ORDER BY name", (agent_group_id,))
    return [GroupMount(r["agent_group_id"], r["name"], r["host_path"], bool(r["writable"])) for r in rows]
