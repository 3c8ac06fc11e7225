"""The runner's end of a session folder: reads inbound.db, writes outbound.db."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple, TypeVar

from nanoclaw.protocol.doorbell import Doorbell
from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.messages import InboundMessage, OutboundMessage, Route
from nanoclaw.protocol.schema import OUTBOUND_SCHEMA, checkpoint, next_seq, tune

T = TypeVar("T")

_SNAPSHOT = (
    "SELECT (SELECT coalesce(max(seq), 0) FROM messages_in),"
    " (SELECT coalesce(max(id), 0) FROM control WHERE action = 'interrupt'),"
    " (SELECT coalesce(max(id), 0) FROM control WHERE action = 'stop'),"
    " r.channel_type, r.platform_id, r.thread_id, r.id FROM (SELECT 1) LEFT JOIN session_routing r ON r.id = 1"
)


class _Snapshot(NamedTuple):
    max_in_seq: int
    newest_interrupt: int
    newest_stop: int
    route: Route | None


class RunnerEnd:
    """The runner's two connections: inbound.db read-only, outbound.db its own.

    The runner looks at inbound.db after every bell and every turn, mostly to find
    nothing new. Reads of it are kept until `PRAGMA data_version` says another
    connection committed, and what the runner itself wrote (its acks) is followed
    in memory (the finished cursor, consumed answers, runs per turn), so a quiet look
    costs one statement. The small facts a turn needs (newest row, stop and interrupt
    requests, the reply route) are one statement too. `pending()` and `routing()`
    ask for the version; `stop_requested()` and a turn's first `take_interrupt()` reuse
    the one pending() asked just before, and `write()` the one routing() asked.
    """

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
        self._read_cache: dict[str, tuple[int, Any]] = {}
        self._version = -1
        self._route_looked = False  # routing() just asked the version: write() may reuse it
        self._load_acks()
        self._last_seq = max(self._max_in_seq(), self._max_out_seq())
        self._control_cursor = self._max_control_id()
        self._interrupt_cursor = self._control_cursor
        # What an earlier runner was writing is gone with it. `rev` counts microseconds (at least +1 a write),
        # so it keeps growing across runners for the host's cursor even though rows are deleted.
        self._partial_rev = int(self.out.execute("SELECT coalesce(max(rev), 0) FROM partials").fetchone()[0])
        if self._partial_rev:  # every row has a rev above 0: none, no write at start
            self.out.execute("DELETE FROM partials")
        self._partials_written = False  # drop_partials has nothing to delete (no statement on a quick turn)

    def _load_acks(self) -> None:
        """The finished cursor and the consumed answers, from outbound.db (at start, or after a rollback)."""
        self._finished = int(self.out.execute(
            "SELECT coalesce(max(in_seq), 0) FROM processing_ack WHERE status IN ('done','failed')"
        ).fetchone()[0])
        self._consumed = {r[0] for r in self.out.execute(
            "SELECT in_seq FROM processing_ack WHERE status = 'consumed' AND in_seq > ?", (self._finished,))}
        # How many runs took each unfinished row: a turn's run number, asked at every turn's start.
        self._taken: dict[int, int] = {r[0]: r[1] for r in self.out.execute(
            "SELECT in_seq, count(*) FROM processing_ack WHERE status = 'taken' AND in_seq > ? GROUP BY in_seq",
            (self._finished,))}

    def _cached(self, name: str, read: Callable[[], T], *, fresh: bool = True) -> T:
        """`read()` from inbound.db again only when another connection committed to it since the last one.

        fresh=False trusts the version asked by the previous call (one statement less on a turn's path).
        """
        if fresh or self._version < 0:
            self._version = int(self.inbound.execute("PRAGMA data_version").fetchone()[0])
        version = self._version
        hit = self._read_cache.get(name)
        if hit is not None and hit[0] == version:
            return hit[1]  # type: ignore[no-any-return]
        value = read()
        self._read_cache[name] = (version, value)
        return value

    def _max_control_id(self) -> int:
        return int(self.inbound.execute("SELECT coalesce(max(id), 0) FROM control").fetchone()[0])

    def _snapshot(self, fresh: bool) -> _Snapshot:
        """The small facts of inbound.db a turn asks about, in one statement per change of the database."""
        def read() -> _Snapshot:
            row = self.inbound.execute(_SNAPSHOT).fetchone()
            route = Route(row[3], row[4], row[5]) if row[6] is not None else None
            return _Snapshot(int(row[0]), int(row[1]), int(row[2]), route)

        return self._cached("snapshot", read, fresh=fresh)

    def stop_requested(self) -> bool:
        """Whether the host asked this runner (started before the request) to exit when idle."""
        return self._snapshot(fresh=False).newest_stop > self._control_cursor

    def take_interrupt(self, fresh: bool = True) -> bool:
        """Whether the host asked to end the running turn since the last call (True once per request).

        fresh=False reuses the version pending() just asked (at the start of a turn).
        """
        newest = self._snapshot(fresh).newest_interrupt
        if newest <= self._interrupt_cursor:
            return False
        self._interrupt_cursor = newest
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
        """The highest inbound seq this runner acked done or failed."""
        return self._finished

    def pending(self) -> list[InboundMessage]:
        """Rows after the last finished one that the host has not given up on, context included.

        Answers taken by a waiting tool are acked 'consumed', which does not move the
        cursor: the turn that asked (lower seqs) is still running and must be retried
        if the runner dies.
        """
        floor, rows = self._cached("pending", self._pending_rows)
        if floor > self._finished:  # read with a later cursor than now (after a rollback): read again
            self._read_cache.pop("pending", None)
            floor, rows = self._cached("pending", self._pending_rows)
        return [m for m in rows if m.seq > self._finished and m.seq not in self._consumed]

    def _pending_rows(self) -> tuple[int, list[InboundMessage]]:
        floor = self._finished
        rows = self.inbound.execute(
            "SELECT * FROM messages_in WHERE seq > ? AND status = 'pending' ORDER BY seq", (floor,)
        ).fetchall()
        return floor, [InboundMessage.from_row(r) for r in rows]

    def routing(self) -> Route | None:
        route = self._snapshot(fresh=True).route
        self._route_looked = True
        return route

    def destinations(self) -> dict[str, Route]:
        rows = self.inbound.execute("SELECT * FROM destinations").fetchall()
        return {r["name"]: Route(r["channel_type"], r["platform_id"], r["thread_id"]) for r in rows}

    # -- a turn that runs again ---------------------------------------------

    def runs_of(self, turn: int) -> int:
        """How many runs took the turn starting at inbound row `turn` before (0: this is its first run)."""
        return self._taken.get(turn, 0)  # this end is outbound.db's only writer: memory is the table

    def said_before(self, turn: int, seqs: list[int]) -> list[OutboundMessage]:
        """What earlier, interrupted runs of this turn already sent (the host delivers every row it wrote).

        Theirs are the rows with this turn's id prefix, and rows answering one of its messages (a turn split
        after a crash: its later messages run as turns of their own).
        """
        marks = ",".join("?" * len(seqs))
        rows = self.out.execute(
            f"SELECT * FROM messages_out WHERE seq > ? AND kind IN ('chat', 'file', 'card')"
            f" AND (id LIKE ? OR in_reply_to IN ({marks})) ORDER BY seq",
            (turn, f"t{turn}.%", *seqs),
        ).fetchall()
        return [OutboundMessage.from_row(r) for r in rows]

    # -- writing outbound --------------------------------------------------

    def ack(self, seqs: list[int], status: str, error: str | None = None) -> None:
        now = time.time()
        self.out.executemany(
            "INSERT INTO processing_ack (in_seq, status, error, at) VALUES (?,?,?,?)",
            [(s, status, error, now) for s in seqs],
        )
        if status in ("done", "failed"):
            self._finished = max(self._finished, *seqs)
            self._consumed = {s for s in self._consumed if s > self._finished}
            self._taken = {s: n for s, n in self._taken.items() if s > self._finished}
        elif status == "taken":
            for s in seqs:
                self._taken[s] = self._taken.get(s, 0) + 1
        elif status == "consumed":
            self._consumed.update(s for s in seqs if s > self._finished)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`with end.transaction(): ...` commits the block at once (replies and acks together)."""
        self.begin()
        try:
            yield self.out
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin(self) -> None:
        self.out.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.out.in_transaction:
            self.out.execute("COMMIT")

    def rollback(self) -> None:
        if self.out.in_transaction:
            self.out.execute("ROLLBACK")
            self._load_acks()  # what ack() noted in memory did not happen

    def write(
        self,
        *,
        kind: str,
        text: str | None,
        route: Route | None = None,
        to_name: str | None = None,
        in_reply_to: int | None = None,
        payload: dict[str, Any] | None = None,
        id: str | None = None,
    ) -> int:
        """One outbound row; `id` is `messages.outbound_id(...)` within a turn, a random one outside."""
        self._last_seq = max(self._last_seq, self._snapshot(fresh=not self._route_looked).max_in_seq)
        self._route_looked = False
        seq = next_seq(self._last_seq, 1)
        self.out.execute(
            "INSERT INTO messages_out (seq, id, kind, in_reply_to, to_name, channel_type, platform_id, thread_id,"
            " text, payload, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                seq, id or uuid.uuid4().hex, kind, in_reply_to, to_name,
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
        self._partials_written = True
        self.out.execute(
            "INSERT INTO partials (stream_id, in_reply_to, text, rev, at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(stream_id) DO UPDATE SET text = excluded.text, rev = excluded.rev, at = excluded.at",
            (stream_id, in_reply_to, text, self._partial_rev, time.time()),
        )

    def drop_partials(self) -> None:
        """The turn is over: its answers are final rows now."""
        if self._partials_written:
            self.out.execute("DELETE FROM partials")
            self._partials_written = False

    def get_state(self, key: str) -> str | None:
        row = self.out.execute("SELECT value FROM session_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str | None) -> None:
        self.out.execute("INSERT OR REPLACE INTO session_state (key, value) VALUES (?, ?)", (key, value))

    def ring(self) -> None:
        if self.bell_out:
            self.bell_out.ring()

    def checkpoint(self) -> None:
        """Fold outbound.db's WAL into the file (from the heartbeat timer, not on a reply's path)."""
        checkpoint(self.out)

    def beat(self) -> None:
        """Touch the heartbeat file the host watches."""
        try:
            os.utime(self.folder.heartbeat)
        except FileNotFoundError:
            self.folder.heartbeat.touch()
