"""Rows that cross the session folder, as typed records."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

INBOUND_KINDS = frozenset({"chat", "task", "answer", "system"})
OUTBOUND_KINDS = frozenset({"chat", "file", "edit", "reaction", "card", "question", "system"})


@dataclass(frozen=True)
class Route:
    """Where a message goes: one chat on one platform, optionally one thread."""

    channel_type: str
    platform_id: str
    thread_id: str | None = None


def inbound_id(channel_type: str, platform_id: str, message_id: str) -> str:
    """Row id of a platform message: unique per chat, so a redelivered message is stored once."""
    return f"{channel_type}:{platform_id}:{message_id}"


def outbound_id(turn: int, run: int, position: int) -> str:
    """Id of the `position`-th row the `run`-th run of a turn wrote; `turn` is the seq of the turn's first row.

    A turn interrupted by a crash runs again with the same first row (nothing after the last finished
    turn has moved), so its rows are recognisable across runs: see `turn_of`.
    """
    return f"t{turn}.{run}.{position}"


def delivery_id(session_id: str, out_id: str) -> str:
    """The id a channel (or another agent's session) sees for an outbound row, stable across retries.

    Row ids are unique within their session only (and chosen by the runner): channels use this id as
    an idempotency key (Matrix transaction ids, the web chat's store, lookups after a crash), so the
    session is part of it.
    """
    return f"{session_id}.{out_id}"


_OUTBOUND_ID = re.compile(r"t(\d{1,18})\.(\d{1,9})\.(\d{1,9})")


def turn_of(out_id: str) -> tuple[int, int] | None:
    """(turn, run) of an outbound id made by `outbound_id`; None for other ids (written outside a turn)."""
    match = _OUTBOUND_ID.fullmatch(out_id)
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class InboundMessage:
    seq: int
    id: str
    kind: str
    trigger: bool
    text: str
    sender_id: str | None = None
    sender_name: str | None = None
    route: Route | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    attempts: int = 0
    status: str = "pending"

    @property
    def platform_message_id(self) -> str:
        """The id the platform gave the message (inverse of `inbound_id`)."""
        if self.route is not None:
            prefix = f"{self.route.channel_type}:{self.route.platform_id}:"
            if self.id.startswith(prefix):
                return self.id[len(prefix):]
        return self.id

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> InboundMessage:
        route = Route(row["channel_type"], row["platform_id"], row["thread_id"]) if row["channel_type"] else None
        return cls(
            seq=row["seq"], id=row["id"], kind=row["kind"], trigger=bool(row["trigger"]), text=row["text"],
            sender_id=row["sender_id"], sender_name=row["sender_name"], route=route,
            payload=json.loads(row["payload"]) if row["payload"] else {},
            created_at=row["created_at"], attempts=row["attempts"], status=row["status"],
        )


@dataclass(frozen=True)
class OutboundMessage:
    seq: int
    id: str
    kind: str
    text: str | None
    route: Route | None = None
    to_name: str | None = None
    in_reply_to: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboundMessage:
        route = Route(row["channel_type"], row["platform_id"], row["thread_id"]) if row["channel_type"] else None
        try:
            payload = json.loads(row["payload"]) if row["payload"] else {}
        except ValueError:
            payload = {"_invalid": True}
        return cls(
            seq=row["seq"], id=row["id"], kind=row["kind"], text=row["text"], route=route,
            to_name=row["to_name"], in_reply_to=row["in_reply_to"],
            payload=payload if isinstance(payload, dict) else {"_invalid": True}, created_at=row["created_at"],
        )


@dataclass(frozen=True)
class Ack:
    id: int
    in_seq: int
    status: str  # taken | done | failed
    error: str | None = None


@dataclass(frozen=True)
class Partial:
    """An answer while it is being written: its whole text so far (best effort, never delivered as such)."""

    stream_id: str
    in_reply_to: int | None
    text: str
