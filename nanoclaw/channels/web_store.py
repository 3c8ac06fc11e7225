"""The web chat's own SQLite file (`state/web-chat.db`): messages, conversations and files.

A conversation is a thread of the web chat (its own agent session); the main
conversation has no thread id. A reply sent while no page is open is simply
here later: sending never waits for a browser.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any


SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    outgoing_id TEXT UNIQUE,              -- the host's id of what it sent (exactly-once after a crash)
    client_id   TEXT UNIQUE,              -- the page's id of what the owner sent (a resend is the same message)
    thread_id   TEXT,                     -- the conversation (NULL: the main one)
    author      TEXT NOT NULL,            -- owner | assistant
    kind        TEXT NOT NULL,            -- chat | system | card | question | file
    text        TEXT NOT NULL DEFAULT '',
    title       TEXT,
    buttons     TEXT,                     -- JSON list of labels
    card_id     TEXT,
    answer      TEXT,                     -- the button pressed here
    closed      TEXT,                     -- a card's final state, wherever it was decided
    form_url    TEXT,                     -- credential form, opened in a modal
    file_id     TEXT,
    file_name   TEXT,
    stream_id   TEXT,                     -- the answer shown while written that this message completes
    reactions   TEXT NOT NULL DEFAULT '[]',
    edited      INTEGER NOT NULL DEFAULT 0,
    status      TEXT,                     -- owner messages: stored → working → done | failed | rejected
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread_id, seq);
CREATE TABLE IF NOT EXISTS files (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    mime_type  TEXT,
    data       BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    id         TEXT PRIMARY KEY,          -- the thread id
    title      TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""
# Columns added after the first release, for files made by it.
_ADDED = {"client_id": "TEXT", "closed": "TEXT", "stream_id": "TEXT"}
PAGE_SIZE = 200
MAIN = "main"  # the main conversation's id in the page's API (its messages have no thread id)
MAIN_TITLE = "Main chat"
PREVIEW_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})  # shown inline; never SVG
STATUS_RANK = {None: 0, "stored": 1, "working": 2, "done": 3, "failed": 3, "rejected": 3}


class WebChatStore:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # as the other databases: a crash loses nothing committed
        existing = {r["name"] for r in self.conn.execute("PRAGMA table_info(messages)")}
        if existing:
            for column, kind in _ADDED.items():
                if column not in existing:
                    self.conn.execute(f"ALTER TABLE messages ADD COLUMN {column} {kind}")
        self.conn.executescript(SCHEMA)
        self.conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS messages_client ON messages (client_id)")
        self._adopt_old_threads()

    def _adopt_old_threads(self) -> None:
        """Threads of the first release (replies under a message) become conversations named after it."""
        rows = self.conn.execute(
            "SELECT DISTINCT m.thread_id FROM messages m WHERE m.thread_id IS NOT NULL"
            " AND m.thread_id NOT IN (SELECT id FROM conversations)").fetchall()
        for row in rows:
            root = self.conn.execute("SELECT text FROM messages WHERE id = ?", (row[0],)).fetchone()
            self.add_conversation(_title(root[0] if root else "") or "Thread", row[0])

    # -- messages ------------------------------------------------------------------

    def add(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("id", f"w{uuid.uuid4().hex[:16]}")
        fields["created_at"] = time.time()
        if "buttons" in fields:
            fields["buttons"] = json.dumps(list(fields["buttons"])) if fields["buttons"] else None
        names = ", ".join(fields)
        self.conn.execute(f"INSERT INTO messages ({names}) VALUES ({', '.join('?' * len(fields))})",
                          tuple(fields.values()))
        if fields.get("thread_id"):
            self.touch(fields["thread_id"])
        return self.get(fields["id"])  # type: ignore[return-value]

    def get(self, message_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(f"{_SELECT} WHERE m.id = ?", (message_id,)).fetchone()
        return _public(row) if row else None

    def by_outgoing(self, outgoing_id: str) -> str | None:
        row = self.conn.execute("SELECT id FROM messages WHERE outgoing_id = ?", (outgoing_id,)).fetchone()
        return row["id"] if row else None

    def by_client(self, client_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(f"{_SELECT} WHERE m.client_id = ?", (client_id,)).fetchone()
        return _public(row) if row else None

    def history(self, thread_id: str | None, before: int | None = None) -> list[dict[str, Any]]:
        where = "m.thread_id IS NULL" if thread_id is None else "m.thread_id = ?"
        args: list[Any] = [] if thread_id is None else [thread_id]
        if before is not None:
            where += " AND m.seq < ?"
            args.append(before)
        rows = self.conn.execute(f"{_SELECT} WHERE {where} ORDER BY m.seq DESC LIMIT {PAGE_SIZE}", args)
        return [_public(r) for r in rows][::-1]

    def update(self, message_id: str, **fields: Any) -> dict[str, Any] | None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*fields.values(), message_id))
        return self.get(message_id)

    def advance(self, message_id: str, status: str) -> dict[str, Any] | None:
        """Move an owner message's state forward only (a late 'working' never undoes 'done')."""
        row = self.conn.execute("SELECT status FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None or STATUS_RANK.get(row["status"], 0) >= STATUS_RANK.get(status, 0):
            return None
        return self.update(message_id, status=status)

    def waiting(self, thread_id: str | None) -> list[str]:
        """Owner messages of a conversation the agent has not taken yet."""
        where = "thread_id IS NULL" if thread_id is None else "thread_id = ?"
        rows = self.conn.execute(f"SELECT id FROM messages WHERE {where} AND author = 'owner' AND status = 'stored'",
                                 () if thread_id is None else (thread_id,))
        return [r["id"] for r in rows]

    def card(self, card_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT id, buttons, answer, closed FROM messages WHERE card_id = ?",  # type: ignore[no-any-return]
                                 (card_id,)).fetchone()

    # -- conversations ---------------------------------------------------------------

    def add_conversation(self, title: str, conversation_id: str | None = None) -> dict[str, Any]:
        now = time.time()
        conversation_id = conversation_id or f"c{uuid.uuid4().hex[:12]}"
        self.conn.execute("INSERT OR IGNORE INTO conversations (id, title, created_at, updated_at) VALUES (?,?,?,?)",
                          (conversation_id, title[:120] or "New chat", now, now))
        return self.conversation(conversation_id)  # type: ignore[return-value]

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        if conversation_id == MAIN:
            return self._main()
        row = self.conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        return dict(row) if row else None

    def conversations(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM conversations WHERE id != ? ORDER BY updated_at DESC", (MAIN,))
        return [self._main(), *(dict(r) for r in rows)]

    def _main(self) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM conversations WHERE id = ?", (MAIN,)).fetchone()
        last = self.conn.execute("SELECT max(created_at) FROM messages WHERE thread_id IS NULL").fetchone()[0]
        return {"id": MAIN, "title": row["title"] if row else MAIN_TITLE, "created_at": 0,
                "updated_at": last or 0, "main": True}

    def rename(self, conversation_id: str, title: str) -> dict[str, Any] | None:
        if conversation_id == MAIN:  # the main conversation's name is kept as a row of its own
            self.add_conversation(title, MAIN)
        self.conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title[:120], conversation_id))
        return self.conversation(conversation_id)

    def touch(self, conversation_id: str) -> None:
        self.conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conversation_id))

    def delete_conversation(self, conversation_id: str) -> bool:
        """Its messages and files go too (the agent's own session folder stays with the host)."""
        files = [r[0] for r in self.conn.execute(
            "SELECT file_id FROM messages WHERE thread_id = ? AND file_id IS NOT NULL", (conversation_id,))]
        self.conn.executemany("DELETE FROM files WHERE id = ?", [(f,) for f in files])
        self.conn.execute("DELETE FROM messages WHERE thread_id = ?", (conversation_id,))
        return self.conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

    def search(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Messages whose text holds `query` (any case), newest first, with their conversation."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.conn.execute(
            "SELECT m.id, m.seq, m.thread_id, m.author, m.text, m.created_at, c.title FROM messages m"
            " LEFT JOIN conversations c ON c.id = m.thread_id"
            " WHERE m.text LIKE ? ESCAPE '\\' ORDER BY m.seq DESC LIMIT ?", (pattern, limit)).fetchall()
        found = []
        for r in rows:
            at = r["text"].lower().find(query.lower())
            start = max(0, at - 40)
            found.append({"id": r["id"], "seq": r["seq"], "conversation": r["thread_id"] or MAIN,
                          "title": r["title"] or (self._main()["title"] if r["thread_id"] is None else "Thread"),
                          "author": r["author"], "created_at": r["created_at"],
                          "snippet": ("…" if start else "") + r["text"][start:start + 160]})
        return found

    # -- files -----------------------------------------------------------------------

    def add_file(self, name: str, data: bytes, mime_type: str | None) -> str:
        file_id = f"f{uuid.uuid4().hex[:16]}"
        self.conn.execute("INSERT INTO files (id, name, mime_type, data, created_at) VALUES (?,?,?,?,?)",
                          (file_id, name, mime_type, data, time.time()))
        return file_id

    def file(self, file_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.conn.close()


_SELECT = "SELECT m.*, f.mime_type AS file_mime FROM messages m LEFT JOIN files f ON f.id = m.file_id"


def _title(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:60] + ("…" if len(line) > 60 else "")


def title_for(text: str) -> str:
    """A new conversation's name, from its first message."""
    return _title(text) or "New chat"


def _public(row: sqlite3.Row) -> dict[str, Any]:
    from nanoclaw.channels.web_html import render  # Markdown and Pygments: loaded with the first page

    m = dict(row)
    m["buttons"] = json.loads(m["buttons"]) if m["buttons"] else []
    m["reactions"] = json.loads(m["reactions"])
    m["html"] = render(m["text"]) if m["text"] else ""
    m["preview"] = m.pop("file_mime", None) in PREVIEW_TYPES
    m.pop("outgoing_id", None)
    return m
