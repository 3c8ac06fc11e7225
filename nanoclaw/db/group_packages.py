"""Packages the owner approved for an agent group's sandbox image."""

from __future__ import annotations

import sqlite3
import time


def add(conn: sqlite3.Connection, agent_group_id: str, packages: list[str]) -> None:
    now = time.time()
    conn.executemany("INSERT OR IGNORE INTO group_packages (agent_group_id, package, approved_at) VALUES (?,?,?)",
                     [(agent_group_id, p, now) for p in packages])


def for_group(conn: sqlite3.Connection, agent_group_id: str) -> list[str]:
    rows = conn.execute("SELECT package FROM group_packages WHERE agent_group_id = ? ORDER BY package",
                        (agent_group_id,))
    return [r[0] for r in rows]
