"""MCP servers the owner approved for an agent group: one row per group and server name."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GroupMcpServer:
    agent_group_id: str
    name: str
    config: dict[str, Any]  # {"type": "stdio", "command", "args", "env"} or {"type": "http"|"sse", "url"}
    approved_at: float


def put(conn: sqlite3.Connection, agent_group_id: str, name: str, config: dict[str, Any]) -> GroupMcpServer:
    """Add the server, or replace the group's server of that name."""
    now = time.time()
    conn.execute("INSERT OR REPLACE INTO group_mcp_servers (agent_group_id, name, config, approved_at) VALUES (?,?,?,?)",
                 (agent_group_id, name, json.dumps(config, sort_keys=True), now))
    return GroupMcpServer(agent_group_id, name, config, now)


def remove(conn: sqlite3.Connection, agent_group_id: str, name: str) -> bool:
    return conn.execute("DELETE FROM group_mcp_servers WHERE agent_group_id = ? AND name = ?",
                        (agent_group_id, name)).rowcount > 0


def for_group(conn: sqlite3.Connection, agent_group_id: str) -> list[GroupMcpServer]:
    rows = conn.execute("SELECT * FROM group_mcp_servers WHERE agent_group_id = ? ORDER BY name", (agent_group_id,))
    return [GroupMcpServer(r["agent_group_id"], r["name"], json.loads(r["config"]), r["approved_at"]) for r in rows]


def runner_json(conn: sqlite3.Connection, agent_group_id: str) -> str:
    """The group's servers as the runner gets them (RunnerConfig.mcp_servers): {name: config}, or "" for none."""
    servers = {s.name: s.config for s in for_group(conn, agent_group_id)}
    return json.dumps(servers, sort_keys=True) if servers else ""
