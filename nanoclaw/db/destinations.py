"""Destinations: the names an agent group may send to — the outbound ACL."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from nanoclaw.protocol.messages import Route


@dataclass(frozen=True)
class Destination:
    name: str
    route: Route | None  # a chat, or None for an agent target
    target_agent_group_id: str | None


def add_chat(
    conn: sqlite3.Connection, agent_group_id: str, name: str, messaging_group_id: int, thread_id: str | None = None
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO destinations (agent_group_id, name, messaging_group_id, thread_id) VALUES (?,?,?,?)",
        (agent_group_id, name, messaging_group_id, thread_id),
    )


def for_agent_group(conn: sqlite3.Connection, agent_group_id: str) -> dict[str, Destination]:
    rows = conn.execute(
        "SELECT d.name, d.thread_id, d.target_agent_group_id, m.channel_type, m.platform_id FROM destinations d"
        " LEFT JOIN messaging_groups m ON m.id = d.messaging_group_id WHERE d.agent_group_id = ?",
        (agent_group_id,),
    )
    out = {}
    for r in rows:
        route = Route(r["channel_type"], r["platform_id"], r["thread_id"]) if r["channel_type"] else None
        out[r["name"]] = Destination(r["name"], route, r["target_agent_group_id"])
    return out


def add_agent(conn: sqlite3.Connection, agent_group_id: str, name: str, target_agent_group_id: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO destinations (agent_group_id, name, target_agent_group_id) VALUES (?,?,?)",
        (agent_group_id, name, target_agent_group_id),
    )
