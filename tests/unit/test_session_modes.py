"""Which session a message lands in: shared, per-thread, agent-shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanoclaw import db
from nanoclaw.db import messaging_groups
from nanoclaw.host.bootstrap import first_run
from nanoclaw.host.folders import Folders, group_owners
from nanoclaw.host.sessions import SessionManager
from tests.conftest import make_settings


@pytest.fixture
def manager(tmp_path: Path) -> SessionManager:
    settings = make_settings(tmp_path / "home")
    conn = db.connect(settings.db_path)
    first_run(conn, settings)
    return SessionManager(settings, conn, Folders(settings, group_owners(conn, settings)))


def test_shared_ignores_threads(manager: SessionManager) -> None:
    chat = messaging_groups.upsert(manager.conn, "fake", "c1").id
    a = manager.resolve("main", chat, "t1", "shared")
    b = manager.resolve("main", chat, "t2", "shared")
    assert a.id == b.id and a.thread_id is None


def test_per_thread_gives_each_thread_a_session(manager: SessionManager) -> None:
    chat = messaging_groups.upsert(manager.conn, "fake", "c1").id
    a = manager.resolve("main", chat, "t1", "per-thread")
    b = manager.resolve("main", chat, "t2", "per-thread")
    again = manager.resolve("main", chat, "t1", "per-thread")
    top = manager.resolve("main", chat, None, "per-thread")
    assert len({a.id, b.id, top.id}) == 3 and again.id == a.id


def test_agent_shared_is_one_session_across_chats(manager: SessionManager) -> None:
    c1 = messaging_groups.upsert(manager.conn, "fake", "c1").id
    c2 = messaging_groups.upsert(manager.conn, "other", "c2").id
    a = manager.resolve("main", c1, "t1", "agent-shared")
    b = manager.resolve("main", c2, None, "agent-shared")
    assert a.id == b.id and a.messaging_group_id is None


def test_sessions_get_their_own_folder_with_both_databases(manager: SessionManager) -> None:
    session = manager.resolve("main", None, None, "agent-shared")
    folder = manager.folder(session)
    assert folder.root == manager.settings.sessions_dir / "main" / session.id
    assert folder.inbound_db.is_file() and folder.outbound_db.is_file()
    assert folder.bell_in.is_fifo() and folder.bell_out.is_fifo()


def test_recency_stamps_are_written_at_most_once_a_minute(manager: SessionManager,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """last_seen / last_active: not a write to the central DB on every message's path."""
    from nanoclaw.db import sessions

    clock = [1_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    chat = messaging_groups.upsert(manager.conn, "fake", "c1", name="Chat")
    session = manager.resolve("main", chat.id, None, "shared")
    writes = manager.conn.total_changes
    clock[0] += messaging_groups.LAST_SEEN_RESOLUTION - 1
    messaging_groups.upsert(manager.conn, "fake", "c1")
    sessions.touch(manager.conn, session)
    assert manager.conn.total_changes == writes
    messaging_groups.upsert(manager.conn, "fake", "c1", name="Renamed")  # a new name is written at once
    assert messaging_groups.get(manager.conn, chat.id).name == "Renamed"
    clock[0] += messaging_groups.LAST_SEEN_RESOLUTION  # (the rename stamped last_seen too)
    messaging_groups.upsert(manager.conn, "fake", "c1")
    seen = manager.conn.execute("SELECT last_seen FROM messaging_groups WHERE id = ?", (chat.id,)).fetchone()[0]
    assert seen == clock[0]
    sessions.touch(manager.conn, session)
    assert sessions.get(manager.conn, session.id).last_active == clock[0]
