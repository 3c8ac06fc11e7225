"""The host's end of a session folder: writes inbound.db, reads outbound.db."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from nanoclaw.protocol.doorbell import Doorbell
from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.messages import Ack, InboundMessage, OutboundMessage, Partial, Route
from nanoclaw.protocol.schema import INBOUND_SCHEMA, OUTBOUND_SCHEMA, checkpoint, next_seq, tune
from nanoclaw.safefs import Tree, UnsafePath


class HostEnd:
    """One connection to inbound.db with outbound.db attached read-only.

    The folder is opened once as a `Tree` (a directory descriptor) and every file in it
    is checked — a plain file or FIFO, never a link — before anything opens it; SQLite
    opens the files through that descriptor (`/proc/self/fd/N/…`), and the connection
    is kept, so the host never re-opens a path a runner could have swapped. This runs
    before a runner exists for the session (at start, after orphans were stopped).
    """

    def __init__(self, folder: SessionFolder, doorbell: bool = True, owner: int | None = None) -> None:
        folder.root.parent.mkdir(parents=True, exist_ok=True)
        self.tree = Tree.open(folder.root, owner=owner, create=True, mode=0o755)
        self._writer: sqlite3.Connection | None = None  # outbound.db's first writer, while it is made
        try:
            self._prepare()
            self.folder = folder
            self.conn = sqlite3.connect(
                f"file:{self.tree.proc_path('inbound.db')}?mode=rw", uri=True, isolation_level=None,
                check_same_thread=False,
            )
            self.conn.row_factory = sqlite3.Row
            tune(self.conn)
            self.conn.executescript(INBOUND_SCHEMA)  # folders of older versions get new tables
            self.conn.execute("ATTACH DATABASE ? AS o", (f"file:{self.tree.proc_path('outbound.db')}?mode=ro",))
            # First reads open the -wal/-shm files now, while no runner can touch them.
            self.conn.execute("SELECT count(*) FROM o.messages_out").fetchone()
            if self._writer is not None:
                # Closed only now, while this connection holds the database: its write-ahead log stays, so the
                # runner's first write (its first reply) does not pay to make and sync a new one.
                self._writer.close()
                self._writer = None
            self.tree.give(*HOST_FILES, uid=0)  # the host's files stay the host's (read-only inside, too)
            self.bell_in = Doorbell.from_fd(self.tree.open_fifo("bell.in"), folder.bell_in) if doorbell else None
            self.bell_out = Doorbell.from_fd(self.tree.open_fifo("bell.out"), folder.bell_out) if doorbell else None
        except UnsafePath as exc:
            self.tree.close()
            raise PermissionError(str(exc)) from exc
        except BaseException:
            if self._writer is not None:
                self._writer.close()
            self.tree.close()
            raise
        self.ack_cursor = 0
        self.out_cursor = 0
        self._routing: Route | None = self.routing()
        self._last_seq = self._max_seq()
        # Partials written before this host opened the folder belong to an earlier life: never shown again.
        self.partial_cursor = self._max_partial_rev()

    def moved_to(self, folder: SessionFolder) -> None:
        """The folder was renamed (a blank one taken by a new session); its descriptors stay what they were."""
        self.folder = folder
        self.tree.path = folder.root
        for bell, path in ((self.bell_in, folder.bell_in), (self.bell_out, folder.bell_out)):
            if bell is not None:
                bell.path = path

    def _prepare(self) -> None:
        """Create what is missing (as the sandbox user), refuse whatever is not what it should be."""
        tree = self.tree
        for name in ("inbox", "outbox"):
            tree.mkdir(name)
        for bell in ("bell.in", "bell.out"):
            if tree.kind(bell) is None:
                tree.mkfifo(bell)
        for base in ("inbound.db", "outbound.db"):
            if tree.lstat(base) is None:
                tree.write_bytes(base, b"", replace=False)
                if base == "outbound.db":
                    self._writer = _init_outbound(tree)
        self.check_files()
        if self._writer is None and (st := tree.lstat("outbound.db")) is not None and (
                st.st_size == 0 or _without_schema(tree)):
            # made empty, or half made (WAL set, no tables), by an earlier start killed here
            self._writer = _init_outbound(tree)

    def check_files(self) -> None:
        """Each database file (and its -wal/-shm) is a plain file with one name, or absent (the journals)."""
        for base in ("inbound.db", "outbound.db"):
            for suffix in ("", "-wal", "-shm"):
                name = base + suffix
                st = self.tree.lstat(name)
                if st is None and suffix:
                    continue
                if st is None or not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    raise UnsafePath(f"{self.tree.path / name} is not a plain file (link or special file); "
                                     "refusing to open it")

    def pinned(self) -> SessionFolder:
        """The folder under a path that names this very directory (/proc/self/fd/N), for code that opens by path."""
        return SessionFolder(Path(self.tree.proc_path()))

    def _max_seq(self) -> int:
        row = self.conn.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM messages_in), 0), coalesce((SELECT max(seq) FROM o.messages_out), 0))"
        ).fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        for bell in (self.bell_in, self.bell_out):
            if bell:
                bell.close()
        self.conn.close()
        self.tree.close()

    def checkpoint(self) -> None:
        """Fold inbound.db's WAL into the file (from the host's slow timer, not on a message's path)."""
        checkpoint(self.conn)

    def heartbeat_mtime(self) -> float | None:
        """When the runner last touched .heartbeat (None if it is missing)."""
        st = self.tree.lstat(".heartbeat")
        return st.st_mtime if st is not None else None

    # -- writing inbound -------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`with end.transaction(): ...` commits the block at once (one WAL commit for several rows)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._routing = self.routing()  # what set_routing noted did not happen
            raise

    def append(
        self,
        *,
        id: str,
        kind: str,
        text: str,
        trigger: bool = True,
        route: Route | None = None,
        sender_id: str | None = None,
        sender_name: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int | None:
        """Commit one inbound row; returns its seq, or None if `id` was already stored."""
        self._last_seq = max(self._last_seq, self._max_out_seq())
        seq = next_seq(self._last_seq, 0)
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO messages_in (seq, id, kind, trigger, channel_type, platform_id, thread_id,"
            " sender_id, sender_name, text, payload, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                seq, id, kind, int(trigger),
                route.channel_type if route else None, route.platform_id if route else None,
                route.thread_id if route else None, sender_id, sender_name, text,
                json.dumps(payload) if payload else None, time.time(),
            ),
        )
        if cur.rowcount == 0:
            return None
        self._last_seq = seq
        return seq

    def _max_out_seq(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM o.messages_out").fetchone()[0])

    def set_routing(self, route: Route) -> None:
        """Where replies go; written only when it changed (this is inbound.db's only writer)."""
        if self._routing == route:
            return
        self.conn.execute(
            "INSERT INTO session_routing (id, channel_type, platform_id, thread_id, updated_at) VALUES (1,?,?,?,?)"
            " ON CONFLICT(id) DO UPDATE SET channel_type=excluded.channel_type, platform_id=excluded.platform_id,"
            " thread_id=excluded.thread_id, updated_at=excluded.updated_at",
            (route.channel_type, route.platform_id, route.thread_id, time.time()),
        )
        self._routing = route

    def routing(self) -> Route | None:
        row = self.conn.execute("SELECT * FROM session_routing WHERE id = 1").fetchone()
        return Route(row["channel_type"], row["platform_id"], row["thread_id"]) if row else None

    def set_destinations(self, destinations: dict[str, Route]) -> None:
        """The runner's copy of its destinations (for tools); the ACL is checked on the central DB."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM destinations")
            self.conn.executemany(
                "INSERT INTO destinations (name, channel_type, platform_id, thread_id) VALUES (?,?,?,?)",
                [(n, r.channel_type, r.platform_id, r.thread_id) for n, r in destinations.items()],
            )

    def request_stop(self) -> None:
        """Ask the runner to exit once it is idle."""
        self.conn.execute("INSERT INTO control (action, at) VALUES ('stop', ?)", (time.time(),))
        self.ring()

    def request_interrupt(self) -> None:
        """Ask the runner to end the turn it is running now (a stop button, `/stop`)."""
        self.conn.execute("INSERT INTO control (action, at) VALUES ('interrupt', ?)", (time.time(),))
        self.ring()

    def ring(self) -> None:
        if self.bell_in:
            self.bell_in.ring()

    # -- retries -----------------------------------------------------------

    def unfinished(self) -> list[InboundMessage]:
        """Triggering rows the runner has not finished (no done/failed ack) and the host has not given up."""
        rows = self.conn.execute(
            "SELECT m.* FROM messages_in m WHERE m.trigger = 1 AND m.status = 'pending' AND m.seq > ?"
            " AND NOT EXISTS (SELECT 1 FROM o.processing_ack a WHERE a.in_seq = m.seq"
            " AND a.status IN ('done','failed','consumed'))"
            " ORDER BY m.seq",
            (self.finished_cursor(),),
        ).fetchall()
        return [InboundMessage.from_row(r) for r in rows]

    def finished_cursor(self) -> int:
        return int(
            self.conn.execute(
                "SELECT coalesce(max(in_seq), 0) FROM o.processing_ack WHERE status IN ('done','failed')"
            ).fetchone()[0]
        )

    def bump_attempts(self, seqs: list[int]) -> None:
        self.conn.executemany("UPDATE messages_in SET attempts = attempts + 1 WHERE seq = ?", [(s,) for s in seqs])

    def give_up(self, seqs: list[int]) -> None:
        self.conn.executemany("UPDATE messages_in SET status = 'failed' WHERE seq = ?", [(s,) for s in seqs])

    # -- reading outbound --------------------------------------------------

    def undelivered(self) -> list[OutboundMessage]:
        """Outbound rows past the cursor with no final `delivered` record ('sending' is not final), in order."""
        rows = self.conn.execute(
            "SELECT m.* FROM o.messages_out m WHERE m.seq > ?"
            " AND NOT EXISTS (SELECT 1 FROM delivered d WHERE d.out_seq = m.seq AND d.status != 'sending')"
            " ORDER BY m.seq",
            (self.out_cursor,),
        ).fetchall()
        return [OutboundMessage.from_row(r) for r in rows]

    def record_delivery(
        self, out_seq: int, status: str, platform_message_id: str | None = None, error: str | None = None
    ) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO delivered (out_seq, status, platform_message_id, error, at) VALUES (?,?,?,?,?)",
            (out_seq, status, platform_message_id, error, time.time()),
        )

    def forget_intent(self, out_seq: int) -> None:
        """The send did not happen (the channel said so): drop the 'sending' mark."""
        self.conn.execute("DELETE FROM delivered WHERE out_seq = ? AND status = 'sending'", (out_seq,))

    def delivery(self, out_seq: int) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM delivered WHERE out_seq = ?", (out_seq,)).fetchone()

    def sent_earlier_in_turn(self, row: OutboundMessage, turn: int) -> list[tuple[OutboundMessage, str | None]]:
        """Rows of `row`'s kind that went out before it from the turn starting at inbound row `turn`.

        The turn's rows carry its id prefix; rows answering the same message count too (after a crash
        a turn's later messages may run as turns of their own). With the platform id each went out as.
        Only the last REPEAT_WINDOW rows are looked at: the ids are the runner's to choose, and no
        row may make the host scan the whole session.
        """
        rows = self.conn.execute(
            "SELECT m.*, d.platform_message_id AS sent_as FROM o.messages_out m JOIN delivered d ON d.out_seq = m.seq"
            " WHERE m.seq > ? AND m.seq < ? AND m.kind = ? AND d.status IN ('sent', 'repeat')"
            " AND (m.id LIKE ? OR m.in_reply_to = ?) ORDER BY m.seq",
            (max(turn, row.seq - 2 * REPEAT_WINDOW), row.seq, row.kind, f"t{turn}.%", row.in_reply_to),
        ).fetchall()
        return [(OutboundMessage.from_row(r), r["sent_as"]) for r in rows]

    def platform_id_of(self, out_id: str) -> str | None:
        """The platform's id for an outbound row, by the row id the agent knows."""
        row = self.conn.execute(
            "SELECT d.platform_message_id FROM o.messages_out m JOIN delivered d ON d.out_seq = m.seq"
            " WHERE m.id = ? AND d.status IN ('sent', 'repeat')",
            (out_id,),
        ).fetchone()
        return row[0] if row else None

    def reply_text(self, in_seq: int) -> str | None:
        """The first chat text the runner wrote in answer to an inbound row."""
        row = self.conn.execute(
            "SELECT text FROM o.messages_out WHERE in_reply_to = ? AND kind = 'chat' ORDER BY seq LIMIT 1", (in_seq,)
        ).fetchone()
        return row[0] if row else None

    def new_partials(self, max_chars: int) -> list[Partial]:
        """Answers being written, changed since the last call (each at most `max_chars`: the runner is untrusted)."""
        try:
            rows = self.conn.execute(
                "SELECT stream_id, in_reply_to, substr(text, 1, ?) AS text, rev FROM o.partials WHERE rev > ?"
                " ORDER BY rev LIMIT 100", (max_chars, self.partial_cursor),
            ).fetchall()
        except sqlite3.OperationalError:  # a folder from before streaming: no table until its runner starts
            return []
        if rows:
            self.partial_cursor = int(rows[-1]["rev"])
        return [Partial(str(r["stream_id"])[:64], r["in_reply_to"] if isinstance(r["in_reply_to"], int) else None,
                        r["text"] if isinstance(r["text"], str) else "") for r in rows]

    def _max_partial_rev(self) -> int:
        try:
            return int(self.conn.execute("SELECT coalesce(max(rev), 0) FROM o.partials").fetchone()[0] or 0)
        except (sqlite3.OperationalError, TypeError, ValueError):
            return 0

    def transcript(self, limit: int, max_chars: int) -> list[dict[str, Any]]:
        """The latest `limit` rows of both sides in conversation order, texts cut at `max_chars` (for the owner)."""
        rows = self.conn.execute(
            "SELECT * FROM (SELECT seq, 'in' AS side, kind, sender_name AS who, substr(text, 1, ?) AS text,"
            " created_at FROM messages_in UNION ALL SELECT seq, 'out', kind, to_name, substr(coalesce(text, ''), 1, ?),"
            " created_at FROM o.messages_out) ORDER BY seq DESC LIMIT ?", (max_chars, max_chars, limit),
        ).fetchall()
        return [{"seq": r["seq"], "side": r["side"], "kind": str(r["kind"])[:20],
                 "who": r["who"] if isinstance(r["who"], str) else None,
                 "text": r["text"] if isinstance(r["text"], str) else "",
                 "at": r["created_at"] if isinstance(r["created_at"], (int, float)) else None} for r in rows][::-1]

    def new_acks(self) -> list[Ack]:
        rows = self.conn.execute(
            "SELECT id, in_seq, status, error FROM o.processing_ack WHERE id > ? ORDER BY id", (self.ack_cursor,)
        ).fetchall()
        if rows:
            self.ack_cursor = rows[-1]["id"]
        return [Ack(r["id"], r["in_seq"], r["status"], r["error"]) for r in rows]

    def messages(self, seqs: list[int]) -> list[InboundMessage]:
        if not seqs:
            return []
        marks = ",".join("?" * len(seqs))
        rows = self.conn.execute(f"SELECT * FROM messages_in WHERE seq IN ({marks}) ORDER BY seq", seqs).fetchall()
        return [InboundMessage.from_row(r) for r in rows]

    def skip_old_acks(self) -> None:
        """Start following acks from now (at startup: old acks were handled by an earlier host)."""
        self.ack_cursor = int(self.conn.execute("SELECT coalesce(max(id), 0) FROM o.processing_ack").fetchone()[0])


def open_host_end(root: Path, doorbell: bool = True) -> HostEnd:
    return HostEnd(SessionFolder(root), doorbell=doorbell)


HOST_FILES = ("inbound.db", "inbound.db-wal", "inbound.db-shm")
OUTBOUND_FILES = ("outbound.db", "outbound.db-wal", "outbound.db-shm")  # the runner's, or the link's
REPEAT_WINDOW = 500  # outbound rows back that a re-run turn's repeat is looked for in (seqs step by 2 at least)


def _without_schema(tree: Tree) -> bool:
    """Whether outbound.db lacks its tables: a host SIGKILLed between setting WAL and creating them left it so,
    and every later start failed on it (found by the chaos run). No runner exists yet (see __init__)."""
    try:
        conn = sqlite3.connect(f"file:{tree.proc_path('outbound.db')}?mode=rw", uri=True)
        try:
            row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'processing_ack'")
            return int(row.fetchone()[0]) == 0
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False  # not a database: left as it is, refused where it is used


def _init_outbound(tree: Tree) -> sqlite3.Connection:
    """The runner's database, made by the host before any runner exists (checked above to be a plain file)."""
    conn = sqlite3.connect(f"file:{tree.proc_path('outbound.db')}?mode=rw", uri=True, check_same_thread=False)
    try:
        tune(conn)
        conn.executescript(OUTBOUND_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn
