"""Pending questions: cards waiting for a person's answer."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    id: str
    session_id: str
    messaging_group_id: int | None
    thread_id: str | None
    question: str
    options: list[str]
    platform_message_id: str | None
    status: str
    expires_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Question:
        return cls(
            row["id"], row["session_id"], row["messaging_group_id"], row["thread_id"], row["question"],
            json.loads(row["options"]), row["platform_message_id"], row["status"], row["expires_at"],
        )


def create(
    conn: sqlite3.Connection, question_id: str, session_id: str, messaging_group_id: int | None,
    thread_id: str | None, question: str, options: list[str], expires_in: float,
) -> Question:
    now = time.time()
    row = conn.execute(
        "INSERT INTO pending_questions (id, session_id, messaging_group_id, thread_id, question, options, created_at,"
        " expires_at) VALUES (?,?,?,?,?,?,?,?) RETURNING *",
        (question_id, session_id, messaging_group_id, thread_id, question, json.dumps(options), now, now + expires_in),
    ).fetchone()
    return Question.from_row(row)


def get(conn: sqlite3.Connection, question_id: str) -> Question | None:
    row = conn.execute("SELECT * FROM pending_questions WHERE id = ?", (question_id,)).fetchone()
    return Question.from_row(row) if row else None


def set_platform_message(conn: sqlite3.Connection, question_id: str, platform_message_id: str | None) -> None:
    conn.execute("UPDATE pending_questions SET platform_message_id = ? WHERE id = ?", (platform_message_id, question_id))


def open_for_chat(conn: sqlite3.Connection, messaging_group_id: int, now: float | None = None) -> list[Question]:
    rows = conn.execute(
        "SELECT * FROM pending_questions WHERE messaging_group_id = ? AND status = 'open' AND expires_at > ?"
        " ORDER BY created_at DESC",
        (messaging_group_id, now or time.time()),
    )
    return [Question.from_row(r) for r in rows]


def mark_answered(conn: sqlite3.Connection, question_id: str, answer: str, by: str) -> bool:
    """True if this call answered it (an open, unexpired question); False if it was closed already."""
    cur = conn.execute(
        "UPDATE pending_questions SET status = 'answered', answer = ?, answered_by = ?"
        " WHERE id = ? AND status = 'open' AND expires_at > ?",
        (answer, by, question_id, time.time()),
    )
    return cur.rowcount == 1


def expire(conn: sqlite3.Connection, now: float | None = None, all_open: bool = False) -> list[Question]:
    """Close questions past their expiry (or every open one: at startup, nobody waits for them any more)."""
    where = "status = 'open'" + ("" if all_open else " AND expires_at <= ?")
    params: tuple[float, ...] = () if all_open else (now or time.time(),)
    rows = conn.execute(f"UPDATE pending_questions SET status = 'expired' WHERE {where} RETURNING *", params)
    return [Question.from_row(r) for r in rows]
