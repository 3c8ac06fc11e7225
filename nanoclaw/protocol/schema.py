"""SQL schema of the two session databases and the pragmas both sides use.

inbound.db is written only by the host, outbound.db only by the runner. The
host creates both (empty) when it creates the folder, so it can open them
before any sandbox exists and never has to open a file a runner could have
replaced by a symlink.
"""

import sqlite3

INBOUND_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages_in (
    seq          INTEGER PRIMARY KEY,            -- even numbers
    id           TEXT NOT NULL UNIQUE,           -- platform message id: dedupes redelivery
    kind         TEXT NOT NULL,                  -- chat | task | answer | system
    trigger      INTEGER NOT NULL DEFAULT 1,     -- 0 = context only
    channel_type TEXT,
    platform_id  TEXT,
    thread_id    TEXT,
    sender_id    TEXT,
    sender_name  TEXT,
    text         TEXT NOT NULL,
    payload      TEXT,                           -- JSON extras (attachments, answers)
    created_at   REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,     -- runner starts that died holding it
    status       TEXT NOT NULL DEFAULT 'pending' -- pending | failed (given up by the host)
);
CREATE TABLE IF NOT EXISTS delivered (
    out_seq             INTEGER PRIMARY KEY,
    status              TEXT NOT NULL,           -- sending (intent, before the platform call) | sent | refused | failed
                                                 -- | repeat (a re-run of an interrupted turn said it again: not sent)
    platform_message_id TEXT,
    error               TEXT,
    at                  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS destinations (
    name         TEXT PRIMARY KEY,
    channel_type TEXT,
    platform_id  TEXT,
    thread_id    TEXT
);
-- Requests from the host to the runner; 'stop' = exit when idle (frees a sandbox slot),
-- 'interrupt' = end the running turn now (the person pressed stop or typed /stop).
CREATE TABLE IF NOT EXISTS control (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS session_routing (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    channel_type TEXT,
    platform_id  TEXT,
    thread_id    TEXT,
    updated_at   REAL NOT NULL
);
"""

OUTBOUND_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages_out (
    seq          INTEGER PRIMARY KEY,            -- odd numbers
    id           TEXT NOT NULL UNIQUE,           -- t<turn>.<run>.<position> (messages.outbound_id) within a turn
    kind         TEXT NOT NULL,                  -- chat | file | edit | reaction | card | question | system
    in_reply_to  INTEGER,                        -- inbound seq that caused it
    to_name      TEXT,                           -- a destination name; NULL = the session's route
    channel_type TEXT,
    platform_id  TEXT,
    thread_id    TEXT,
    text         TEXT,
    payload      TEXT,
    created_at   REAL NOT NULL
);
-- Append-only: the latest row per in_seq is its state. Append-only lets the
-- host follow acks with a cursor instead of rescanning. No AUTOINCREMENT: rows are
-- never deleted, so the rowid grows anyway, without a sqlite_sequence page in every commit.
CREATE TABLE IF NOT EXISTS processing_ack (
    id      INTEGER PRIMARY KEY,
    in_seq  INTEGER NOT NULL,
    status  TEXT NOT NULL,                       -- taken | done | failed | consumed (an answer a tool took)
    error   TEXT,
    at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS processing_ack_seq ON processing_ack(in_seq);
CREATE TABLE IF NOT EXISTS session_state (
    key   TEXT PRIMARY KEY,
    value TEXT
);
-- Streaming: the text of an answer while it is being written, best effort. The host shows it live and
-- never delivers from it; the final `chat` row (payload.stream = stream_id) is the answer, delivered
-- exactly once. A runner empties it when it starts and the host follows `rev` only from when it opened
-- the folder, so nothing here is shown again after a crash of either side.
CREATE TABLE IF NOT EXISTS partials (
    stream_id   TEXT PRIMARY KEY,
    in_reply_to INTEGER,
    text        TEXT NOT NULL,                   -- the whole answer so far (an update missed loses nothing)
    rev         INTEGER NOT NULL,                -- grows with every write
    at          REAL NOT NULL
);
"""


WAL_SAFETY_PAGES = 4096  # 16 MB of 4 KiB pages: far above what the timers let a WAL reach


def tune(conn: sqlite3.Connection) -> None:
    """WAL with synchronous=NORMAL: a process crash loses nothing committed.

    Automatic checkpoints only as a safety net: one runs inside whichever commit
    crosses the WAL's size limit and fsyncs the database, a pause of milliseconds
    on the path of a reply. Each writer calls `checkpoint` from its slow timer
    (host: live sessions; runner: heartbeat); the high limit only catches a WAL
    nobody checkpoints, e.g. a chat's context rows while it has no runner.
    """
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_SAFETY_PAGES}")


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the database file of the connection's own (main) database, without waiting."""
    conn.execute("PRAGMA main.wal_checkpoint(PASSIVE)").fetchone()


def next_seq(last: int, parity: int) -> int:
    """The next sequence number above `last` with the given parity (0 inbound, 1 outbound)."""
    n = last + 1
    return n if n % 2 == parity else n + 1
