"""The runner's end of a session folder: reads inbound.db, writes outbound.db."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from typing import Any

from nanoclaw.protocol.doorbell import Doorbell
from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.messages import InboundMessage, Route
from nanoclaw.protocol.schema import OUTBOUND_SCHEMA, next_seq, tune


class RunnerEnd:
    def __init__(self, folder: SessionFolder, doorbell: bool = True) -> None:
        self.folder = folder
        self.inbound = sqlite3.connect(f"file:{folder.inbound_db}?mode=ro", uri=True, isolation_level=None)
        self.inbound.row_factory = sqlite3.Row
        self.inbound.execute("PRAGMA busy_timeout = 5000")
        self.out = sqlite3.connect(folder.outbound_db, isolation_level=None)
        self.out.row_factory = sqlite3.Row
        tune(self.out)
        self.out.executescript(OUTBOUND_SCHEMA)
        self.bell_in = Doorbell(folder.bell_in) if doorbell else None
        self.bell_out = Doorbell(folder.bell_out) if doorbell else None
        self._last_seq = max(self._max_in_seq(), self._max_out_seq())
        self._control_cursor = self._max_control_id()
        self._interrupt_cursor = self._control_cursor
        # What an earlier runner was writing is gone with it. `rev` counts microseconds (at least +1 a write),
        # so it keeps growing across runners for the host's cursor even though rows are deleted.
        self._partial_rev = int(self.out.execute("SELECT coalesce(max(rev), 0) FROM partials").fetchone()[0])
        self.out.execute("DELETE FROM partials")

    def _max_control_id(self) -> int:
        return int(self.inbound.execute("SELECT coalesce(max(id), 0) FROM control").fetchone()[0])

    def stop_requested(self) -> bool:
        """Whether the host asked this runner (started before the request) to exit when idle."""
        row = self.inbound.execute(
            "SELECT 1 FROM control WHERE action = 'stop' AND id > ? LIMIT 1", (self._control_cursor,)
        ).fetchone()
        return row is not None

    def take_interrupt(self) -> bool:
        """Whether the host asked to end the running turn since the last call (True once per request)."""
        row = self.inbound.execute(
            "SELECT max(id) FROM control WHERE action = 'interrupt' AND id > ?", (self._interrupt_cursor,)
        ).fetchone()
        if row is None or row[0] is None:
            return False
        self._interrupt_cursor = int(row[0])
        return True

    def _max_in_seq(self) -> int:
        return int(self.inbound.execute("SELECT coalesce(max(seq), 0) FROM messages_in").fetchone()[0])

    def _max_out_seq(self) -> int:
        return int(self.out.execute("SELECT coalesce(max(seq), 0) FROM messages_out").fetchone()[0])

    def close(self) -> None:
        for bell in (self.bell_in, self.bell_out):
            if bell:
                bell.close()
        self.inbound.close()
        self.out.close()

    # -- reading inbound ---------------------------------------------------

    def finished_cursor(self) -> int:
        return int(
            self.out.execute(
                "SELECT coalesce(max(in_seq), 0) FROM processing_ack WHERE status IN ('done','failed')"
            ).fetchone()[0]
        )

    def pending(self) -> list[InboundMessage]:
        """Rows after the last finished one that the host has not given up on, context included.

        Answers taken by a waiting tool are acked 'consumed', which does not move the
        cursor: the turn that asked (lower seqs) is still running and must be retried
        if the runner dies.
        """
        cursor = self.finished_cursor()
        consumed = {
            r[0] for r in self.out.execute(
                "SELECT in_seq FROM processing_ack WHERE status = 'consumed' AND in_seq > ?", (cursor,)
            )
        }
        rows = self.inbound.execute(
            "SELECT * FROM messages_in WHERE seq > ? AND status = 'pending' ORDER BY seq", (cursor,)
        ).fetchall()
        return [InboundMessage.from_row(r) for r in rows if r["seq"] not in consumed]

    def routing(self) -> Route | None:
        row = self.inbound.execute("SELECT * FROM session_routing WHERE id = 1").fetchone()
        return Route(row["channel_type"], row["platform_id"], row["thread_id"]) if row else None

    def destinations(self) -> dict[str, Route]:
        rows = self.inbound.execute("SELECT * FROM destinations").fetchall()
        return {r["name"]: Route(r["channel_type"], r["platform_id"], r["thread_id"]) for r in rows}

    # -- writing outbound --------------------------------------------------

    def ack(self, seqs: list[int], status: str, error: str | None = None) -> None:
        now = time.time()
        self.out.executemany(
            "INSERT INTO processing_ack (in_seq, status, error, at) VALUES (?,?,?,?)",
            [(s, status, error, now) for s in seqs],
        )

    def transaction(self) -> sqlite3.Connection:
        """`with end.transaction(): ...` commits the block at once (replies and acks together)."""
        self.out.execute("BEGIN IMMEDIATE")
        return self.out

    def write(
        self,
        *,
        kind: str,
        text: str | None,
        route: Route | None = None,
        to_name: str | None = None,
        in_reply_to: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        self._last_seq = max(self._last_seq, self._max_in_seq())
        seq = next_seq(self._last_seq, 1)
        self.out.execute(
            "INSERT INTO messages_out (seq, id, kind, in_reply_to, to_name, channel_type, platform_id, thread_id,"
            " text, payload, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                seq, uuid.uuid4().hex, kind, in_reply_to, to_name,
                route.channel_type if route else None, route.platform_id if route else None,
                route.thread_id if route else None, text, json.dumps(payload) if payload else None, time.time(),
            ),
        )
        self._last_seq = seq
        return seq

    def message_id(self, seq: int) -> str:
        """The id of the outbound row `seq` (the handle a tool returns for edits)."""
        row = self.out.execute("SELECT id FROM messages_out WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise KeyError(f"no outbound row {seq}")
        return str(row[0])

    def write_partial(self, stream_id: str, in_reply_to: int | None, text: str) -> None:
        """The answer `stream_id` so far (commits at once: partials are outside any turn's transaction)."""
        self._partial_rev = max(self._partial_rev + 1, time.time_ns() // 1000)
        self.out.execute(
            "INSERT INTO partials (stream_id, in_reply_to, text, rev, at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(stream_id) DO UPDATE SET text = excluded.text, rev = excluded.rev, at = excluded.at",
            (stream_id, in_reply_to, text, self._partial_rev, time.time()),
        )

    def drop_partials(self) -> None:
        """The turn is over: its answers are final rows now."""
        self.out.execute("DELETE FROM partials")

    def get_state(self, key: str) -> str | None:
        row = self.out.execute("SELECT value FROM session_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str | None) -> None:
        self.out.execute("INSERT OR REPLACE INTO session_state (key, value) VALUES (?, ?)", (key, value))

    def ring(self) -> None:
        if self.bell_out:
            self.bell_out.ring()

    def beat(self) -> None:
        """Touch the heartbeat file the host watches."""
        try:
            os.utime(self.folder.heartbeat)
        except FileNotFoundError:
            self.folder.heartbeat.touch()
