"""The central DB's read cache returns what the query would return now."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nanoclaw.db.readcache import ReadCache


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


def test_a_cached_read_follows_this_and_other_connections_writes(tmp_path: Path) -> None:
    host, other = _open(tmp_path / "c.db"), _open(tmp_path / "c.db")
    host.execute("CREATE TABLE t (v INTEGER)")
    host.execute("INSERT INTO t VALUES (1)")
    cache = ReadCache(host)
    reads = []

    def total() -> int:
        reads.append(1)
        return int(host.execute("SELECT sum(v) FROM t").fetchone()[0])

    cache.look()
    assert cache.get("sum", total) == 1 and cache.get("sum", total) == 1 and len(reads) == 1
    host.execute("INSERT INTO t VALUES (2)")  # this connection: seen at once
    assert cache.get("sum", total) == 3
    other.execute("INSERT INTO t VALUES (4)")  # another process: seen at the next look
    cache.look()
    assert cache.get("sum", total) == 7 and len(reads) == 3
    cache.look()
    assert cache.get("sum", total) == 7 and len(reads) == 3


def test_a_read_that_writes_is_not_kept(tmp_path: Path) -> None:
    conn = _open(tmp_path / "c.db")
    conn.execute("CREATE TABLE t (v INTEGER)")
    cache = ReadCache(conn)
    cache.look()

    def upsert() -> int:
        conn.execute("INSERT INTO t VALUES (1)")
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

    assert cache.get("n", upsert) == 1
    assert cache.get("n", upsert) == 2  # asked again: the first call wrote, so nothing was kept
