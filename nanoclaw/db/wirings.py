"""Wirings: which agent group answers which chat, on what trigger, in which session mode."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from nanoclaw.errors import ConfigError

TRIGGERS = ("mention", "prefix", "always", "dm")
SESSION_MODES = ("shared", "per-thread", "agent-shared")
RESPONSE_SCOPES = ("thread", "chat")


@dataclass(frozen=True)
class Wiring:
    id: int
    messaging_group_id: int
    agent_group_id: str
    trigger: str
    trigger_value: str | None
    response_scope: str
    session_mode: str
    priority: int
    allow_bots: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Wiring:
        return cls(
            row["id"], row["messaging_group_id"], row["agent_group_id"], row["trigger"], row["trigger_value"],
            row["response_scope"], row["session_mode"], row["priority"], bool(row["allow_bots"]),
        )


def wire(
    conn: sqlite3.Connection, messaging_group_id: int, agent_group_id: str, *, trigger: str = "mention",
    trigger_value: str | None = None, response_scope: str = "thread", session_mode: str = "per-thread",
    priority: int = 0, allow_bots: bool = False,
) -> Wiring:
    if trigger not in TRIGGERS:
        raise ConfigError(f"trigger must be one of {', '.join(TRIGGERS)}, not {trigger!r}")
    if trigger == "prefix" and not trigger_value:
        raise ConfigError("a prefix trigger needs the prefix text, e.g. --trigger-value '!ask'")
    if session_mode not in SESSION_MODES:
        raise ConfigError(f"session mode must be one of {', '.join(SESSION_MODES)}, not {session_mode!r}")
    if response_scope not in RESPONSE_SCOPES:
        raise ConfigError(f"response scope must be one of {', '.join(RESPONSE_SCOPES)}, not {response_scope!r}")
    row = conn.execute(
        "INSERT INTO wirings (messaging_group_id, agent_group_id, trigger, trigger_value, response_scope,"
        " session_mode, priority, allow_bots) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(messaging_group_id, agent_group_id)"
        " DO UPDATE SET trigger=excluded.trigger, trigger_value=excluded.trigger_value,"
        " response_scope=excluded.response_scope, session_mode=excluded.session_mode, priority=excluded.priority,"
        " allow_bots=excluded.allow_bots RETURNING *",
        (messaging_group_id, agent_group_id, trigger, trigger_value, response_scope, session_mode, priority,
         int(allow_bots)),
    ).fetchone()
    return Wiring.from_row(row)


def unwire(conn: sqlite3.Connection, wiring_id: int) -> bool:
    return conn.execute("DELETE FROM wirings WHERE id = ?", (wiring_id,)).rowcount > 0


def for_messaging_group(conn: sqlite3.Connection, messaging_group_id: int) -> list[Wiring]:
    rows = conn.execute(
        "SELECT * FROM wirings WHERE messaging_group_id = ? ORDER BY priority DESC, id", (messaging_group_id,)
    )
    return [Wiring.from_row(r) for r in rows]


def for_agent_group(conn: sqlite3.Connection, agent_group_id: str) -> list[Wiring]:
    rows = conn.execute("SELECT * FROM wirings WHERE agent_group_id = ? ORDER BY id", (agent_group_id,))
    return [Wiring.from_row(r) for r in rows]


def list_all(conn: sqlite3.Connection) -> list[Wiring]:
    return [Wiring.from_row(r) for r in conn.execute("SELECT * FROM wirings ORDER BY messaging_group_id, priority DESC")]
