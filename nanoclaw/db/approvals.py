"""Approvals: decisions the owner makes from a card in the admin chat."""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import time
from dataclasses import dataclass
from typing import Any

_B36 = string.digits + string.ascii_lowercase


@dataclass(frozen=True)
class Approval:
    id: str
    kind: str
    subject: str
    payload: dict[str, Any]
    status: str
    expires_at: float
    sent_to: str | None = None  # the channel type its card was shown in
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Approval:
        return cls(row["id"], row["kind"], row["subject"], json.loads(row["payload"]), row["status"], row["expires_at"],
                   row["sent_to"], row["created_at"])


def new_id() -> str:
    return "oa-" + "".join(secrets.choice(_B36) for _ in range(8))


def create(conn: sqlite3.Connection, kind: str, subject: str, payload: dict[str, Any], ttl: float) -> Approval:
    now = time.time()
    row = conn.execute(
        "INSERT INTO approvals (id, kind, subject, payload, created_at, expires_at) VALUES (?,?,?,?,?,?) RETURNING *",
        (new_id(), kind, subject, json.dumps(payload), now, now + ttl),
    ).fetchone()
    return Approval.from_row(row)


def open_for(conn: sqlite3.Connection, kind: str, subject: str) -> Approval | None:
    row = conn.execute(
        "SELECT * FROM approvals WHERE kind = ? AND subject = ? AND status = 'open' AND expires_at > ?",
        (kind, subject, time.time()),
    ).fetchone()
    return Approval.from_row(row) if row else None


def all_open_for(conn: sqlite3.Connection, kind: str, subject: str) -> list[Approval]:
    rows = conn.execute(
        "SELECT * FROM approvals WHERE kind = ? AND subject = ? AND status = 'open' AND expires_at > ? ORDER BY created_at",
        (kind, subject, time.time()),
    )
    return [Approval.from_row(r) for r in rows]


def get(conn: sqlite3.Connection, approval_id: str) -> Approval | None:
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return Approval.from_row(row) if row else None


def set_payload(conn: sqlite3.Connection, approval_id: str, payload: dict[str, Any]) -> None:
    conn.execute("UPDATE approvals SET payload = ? WHERE id = ?", (json.dumps(payload), approval_id))


def decide(conn: sqlite3.Connection, approval_id: str, status: str, by: str) -> Approval | None:
    """Close an open, unexpired approval; None if it was not open (decided, expired or unknown)."""
    row = conn.execute(
        "UPDATE approvals SET status = ?, decided_by = ? WHERE id = ? AND status = 'open' AND expires_at > ?"
        " RETURNING *",
        (status, by, approval_id, time.time()),
    ).fetchone()
    return Approval.from_row(row) if row else None


def mark_expired(conn: sqlite3.Connection, approval_id: str, by: str = "timeout") -> bool:
    """Close one approval that ran out of time (whatever its clock says); False if it was decided first."""
    return conn.execute("UPDATE approvals SET status = 'expired', decided_by = ? WHERE id = ? AND status = 'open'",
                        (by, approval_id)).rowcount > 0


def expire(conn: sqlite3.Connection, all_open: bool = False) -> list[str]:
    """Close approvals past their expiry (or every open one); returns their ids."""
    where = "status = 'open'" + ("" if all_open else " AND expires_at <= ?")
    params: tuple[float, ...] = () if all_open else (time.time(),)
    return [r[0] for r in conn.execute(f"UPDATE approvals SET status = 'expired' WHERE {where} RETURNING id", params)]


def open_of_kind(conn: sqlite3.Connection, kind: str) -> list[Approval]:
    rows = conn.execute("SELECT * FROM approvals WHERE kind = ? AND status = 'open' AND expires_at > ? ORDER BY created_at",
                        (kind, time.time()))
    return [Approval.from_row(r) for r in rows]


def set_sent_to(conn: sqlite3.Connection, approval_id: str, channel_type: str) -> None:
    conn.execute("UPDATE approvals SET sent_to = ? WHERE id = ?", (channel_type, approval_id))


def reopen(conn: sqlite3.Connection, approval_id: str) -> None:
    """Undo a decision that could not be carried out (e.g. an agent group that does not exist)."""
    conn.execute("UPDATE approvals SET status = 'open', decided_by = NULL WHERE id = ?", (approval_id,))
