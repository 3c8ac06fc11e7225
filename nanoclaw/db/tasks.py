"""Scheduled tasks: prompt + schedule, owned by an agent group; and their run log."""

from __future__ import annotations

import secrets
import sqlite3
import string
import time
from dataclasses import dataclass

KINDS = ("cron", "interval", "once")
_B36 = string.digits + string.ascii_lowercase


@dataclass(frozen=True)
class Task:
    id: str
    agent_group_id: str
    session_id: str | None
    messaging_group_id: int | None
    thread_id: str | None
    prompt: str
    kind: str
    spec: str
    timezone: str
    status: str
    next_run: float | None
    last_run: float | None
    last_result: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Task:
        return cls(
            row["id"], row["agent_group_id"], row["session_id"], row["messaging_group_id"], row["thread_id"],
            row["prompt"], row["kind"], row["spec"], row["timezone"], row["status"], row["next_run"],
            row["last_run"], row["last_result"],
        )


def create(
    conn: sqlite3.Connection, *, agent_group_id: str, prompt: str, kind: str, spec: str, timezone: str,
    next_run: float | None, messaging_group_id: int | None = None, thread_id: str | None = None,
    session_id: str | None = None,
) -> Task:
    task_id = "t-" + "".join(secrets.choice(_B36) for _ in range(8))
    row = conn.execute(
        "INSERT INTO tasks (id, agent_group_id, session_id, messaging_group_id, thread_id, prompt, kind, spec,"
        " timezone, next_run, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING *",
        (task_id, agent_group_id, session_id, messaging_group_id, thread_id, prompt, kind, spec, timezone,
         next_run, time.time()),
    ).fetchone()
    return Task.from_row(row)


def get(conn: sqlite3.Connection, task_id: str) -> Task | None:
    row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return Task.from_row(row) if row else None


def list_for(conn: sqlite3.Connection, agent_group_id: str | None = None, include_ended: bool = False) -> list[Task]:
    where, params = [], []
    if agent_group_id is not None:
        where.append("agent_group_id = ?")
        params.append(agent_group_id)
    if not include_ended:
        where.append("status IN ('active', 'paused')")
    sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY next_run IS NULL, next_run"
    return [Task.from_row(r) for r in conn.execute(sql, params)]


def due(conn: sqlite3.Connection, now: float) -> list[Task]:
    rows = conn.execute(
        "SELECT * FROM tasks WHERE status = 'active' AND next_run IS NOT NULL AND next_run <= ? ORDER BY next_run",
        (now,),
    )
    return [Task.from_row(r) for r in rows]


def next_due_time(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT min(next_run) FROM tasks WHERE status = 'active'").fetchone()
    return row[0]


def update(conn: sqlite3.Connection, task_id: str, **fields: object) -> None:
    allowed = {"prompt", "kind", "spec", "timezone", "status", "next_run", "last_run", "last_result", "session_id"}
    bad = set(fields) - allowed
    if bad:
        raise ValueError(f"cannot update {', '.join(sorted(bad))}")
    if fields:
        sets = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(f"UPDATE tasks SET {sets} WHERE id = ?", (*fields.values(), task_id))


def log_run(conn: sqlite3.Connection, task_id: str, session_id: str, in_seq: int | None, status: str) -> int:
    row = conn.execute(
        "INSERT INTO task_runs (task_id, session_id, in_seq, started_at, status) VALUES (?,?,?,?,?) RETURNING id",
        (task_id, session_id, in_seq, time.time(), status),
    ).fetchone()
    return int(row[0])


def finish_run(conn: sqlite3.Connection, session_id: str, in_seq: int, status: str, error: str | None = None) -> str | None:
    """Close the run of the task message `in_seq` in `session_id`; returns its task id."""
    row = conn.execute(
        "UPDATE task_runs SET finished_at = ?, status = ?, error = ? WHERE session_id = ? AND in_seq = ?"
        " AND finished_at IS NULL RETURNING task_id",
        (time.time(), status, error, session_id, in_seq),
    ).fetchone()
    return row[0] if row else None


def runs(conn: sqlite3.Connection, task_id: str) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM task_runs WHERE task_id = ? ORDER BY id", (task_id,)).fetchall()
