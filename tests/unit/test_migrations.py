"""Numbered SQL migrations, applied once, in order, each in one transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import nanoclaw.db as central


def test_fresh_database_reaches_the_newest_version(tmp_path: Path) -> None:
    conn = central.connect(tmp_path / "n.db")
    newest = max(number for number, _name, _sql in central.migrations())
    assert conn.execute("PRAGMA user_version").fetchone()[0] == newest
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"agent_groups", "messaging_groups", "wirings", "sessions", "users", "destinations",
            "pending_questions", "tasks", "approvals"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_numbers_are_unique_and_consecutive() -> None:
    numbers = [number for number, _name, _sql in central.migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


def test_running_again_changes_nothing(tmp_path: Path) -> None:
    conn = central.connect(tmp_path / "n.db")
    conn.execute("INSERT INTO agent_groups (id, name, created_at) VALUES ('x', 'x', 0)")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert central.migrate(conn) == version
    assert conn.execute("SELECT count(*) FROM agent_groups").fetchone()[0] == 1


def test_a_failing_migration_rolls_back_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = central.connect(tmp_path / "n.db")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    broken = (version + 1, f"{version + 1:03d}_broken.sql",
              "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);")
    real = central.migrations
    monkeypatch.setattr(central, "migrations", lambda: [*real(), broken])
    with pytest.raises(sqlite3.OperationalError):
        central.migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
