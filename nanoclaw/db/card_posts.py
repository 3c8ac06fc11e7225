"""Where each card was posted (card_posts): the copies whose final state the host shows."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from nanoclaw.protocol.messages import Route


@dataclass(frozen=True)
class CardPost:
    card_id: str
    route: Route
    platform_message_id: str
    text: str


def add(conn: sqlite3.Connection, card_id: str, route: Route, platform_message_id: str, text: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO card_posts (card_id, channel_type, platform_id, thread_id, platform_message_id, text,"
        " created_at) VALUES (?,?,?,?,?,?,?)",
        (card_id, route.channel_type, route.platform_id, route.thread_id, platform_message_id, text, time.time()),
    )


def take(conn: sqlite3.Connection, card_id: str) -> list[CardPost]:
    """The copies of a card, forgotten as they are returned (a card closes once)."""
    rows = conn.execute("DELETE FROM card_posts WHERE card_id = ? RETURNING *", (card_id,)).fetchall()
    return [CardPost(r["card_id"], Route(r["channel_type"], r["platform_id"], r["thread_id"]),
                     r["platform_message_id"], r["text"]) for r in rows]
