"""Reads of the central DB kept until it changes, for lookups on every message's path."""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")


class ReadCache:
    """Values read from `conn`, dropped as soon as the database may have changed.

    Another process's commit changes `PRAGMA data_version` (asked once per `look()`,
    at the start of handling a message); a change made through this connection
    changes `total_changes` (checked on every `get`). A cached value is what the
    same query would return now, so callers see no difference but the cost.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._stamp: tuple[int, int] = (-1, -1)
        self._values: dict[Hashable, Any] = {}

    def look(self) -> None:
        """Ask whether another process committed (once per message, not per lookup)."""
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        self._check(version)

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        self._check(self._stamp[0])
        try:
            return self._values[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._values[key] = read()
            self._check(self._stamp[0])  # read() itself wrote (an upsert): keep nothing
            return value

    def _check(self, version: int) -> None:
        stamp = (version, self.conn.total_changes)
        if stamp != self._stamp:
            self._values.clear()
            self._stamp = stamp
