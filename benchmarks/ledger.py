"""A pretend chat platform kept in its own SQLite file, outside NANOCLAW_HOME: what chaos runs talk to.

People's messages wait in `inbox` until the host has accepted them; everything the
person receives (answers, progress messages, cards, files) is appended to `outbox`
and never removed, so duplicates and losses stay visible.
`already_sent` looks a reply up by its row id, as a platform with client ids would.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from nanoclaw.channels.base import Capabilities, Channel, InboundEvent, OutgoingMessage, SendResult
from nanoclaw.protocol.messages import Route

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (msg_id TEXT PRIMARY KEY, chat TEXT NOT NULL, text TEXT NOT NULL,
                                  ingested INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, out_id TEXT NOT NULL, chat TEXT NOT NULL,
                                   kind TEXT NOT NULL, text TEXT NOT NULL, file_name TEXT, at REAL NOT NULL);
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(SCHEMA)
    return conn


class LedgerChannel(Channel):
    type = "ledger"
    capabilities = Capabilities(cards=True, files=True)
    path: Path = Path("ledger.db")

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.db = connect(self.path)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _poll(self) -> None:
        while True:
            rows = self.db.execute("SELECT msg_id, chat, text FROM inbox WHERE ingested = 0 LIMIT 50").fetchall()
            for msg_id, chat, text in rows:
                result = await self.host.receive(InboundEvent("ledger", chat, msg_id, text, "person", "Person"))
                if result.accepted:
                    self.db.execute("UPDATE inbox SET ingested = 1 WHERE msg_id = ?", (msg_id,))
            await asyncio.sleep(0.02)

    async def send(self, message: OutgoingMessage) -> SendResult:
        cur = self.db.execute(
            "INSERT INTO outbox (out_id, chat, kind, text, file_name, at) VALUES (?,?,?,?,?,?)",
            (message.id, message.route.platform_id, message.kind, message.text or "",
             message.file.name if message.file else None, time.time()))
        return SendResult(str(cur.lastrowid))

    async def already_sent(self, route: Route, message_id: str) -> str | None:
        row = self.db.execute("SELECT id FROM outbox WHERE out_id = ?", (message_id,)).fetchone()
        return str(row[0]) if row else None
