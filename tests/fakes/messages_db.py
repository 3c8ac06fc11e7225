"""A stand-in for Messages on macOS: a `chat.db` with the schema Messages writes, people's messages written
into it, and a stand-in `osascript` that does what Messages does for our send scripts.

The database has the tables and columns the channel reads (message, handle, chat, chat_message_join,
chat_handle_join, attachment, message_attachment_join) with their real names and types, in WAL mode as
Messages keeps it; dates are nanoseconds since 2001-01-01; newer rows carry the text only in
`attributedBody` (an NSAttributedString archived by NSArchiver), written here byte for byte in that format.

The stand-in osascript (tests/fakes/osascript_standin.py behind a small shell wrapper) parses its command
line as osascript does, reads which `item N of argv` the script sends to which chat, refuses unknown chats
and scripts as Messages would, writes the sent message's row into chat.db (as Messages does) and records
every call in a log.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

APPLE_EPOCH = 978307200
SCHEMA = """
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, country TEXT,
  service TEXT NOT NULL, uncanonicalized_id TEXT, person_centric_id TEXT, UNIQUE (id, service));
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER,
  state INTEGER, account_id TEXT, properties BLOB, chat_identifier TEXT, service_name TEXT, room_name TEXT,
  account_login TEXT, is_archived INTEGER DEFAULT 0, last_addressed_handle TEXT, display_name TEXT,
  group_id TEXT, is_filtered INTEGER DEFAULT 0, successful_query INTEGER, engram_id TEXT, server_change_token TEXT,
  ck_sync_state INTEGER DEFAULT 0, original_group_id TEXT, last_read_message_timestamp INTEGER DEFAULT 0,
  cloudkit_record_id TEXT, last_addressed_sim_id TEXT, is_blackholed INTEGER DEFAULT 0,
  syndication_date INTEGER DEFAULT 0, syndication_type INTEGER DEFAULT 0);
CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT,
  replace INTEGER DEFAULT 0, service_center TEXT, handle_id INTEGER DEFAULT 0, subject TEXT, country TEXT,
  attributedBody BLOB, version INTEGER DEFAULT 0, type INTEGER DEFAULT 0, service TEXT, account TEXT,
  account_guid TEXT, error INTEGER DEFAULT 0, date INTEGER, date_read INTEGER, date_delivered INTEGER,
  is_delivered INTEGER DEFAULT 0, is_finished INTEGER DEFAULT 0, is_emote INTEGER DEFAULT 0,
  is_from_me INTEGER DEFAULT 0, is_empty INTEGER DEFAULT 0, is_delayed INTEGER DEFAULT 0,
  is_auto_reply INTEGER DEFAULT 0, is_prepared INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0,
  is_system_message INTEGER DEFAULT 0, is_sent INTEGER DEFAULT 0, has_dd_results INTEGER DEFAULT 0,
  is_service_message INTEGER DEFAULT 0, is_forward INTEGER DEFAULT 0, was_downgraded INTEGER DEFAULT 0,
  is_archive INTEGER DEFAULT 0, cache_has_attachments INTEGER DEFAULT 0, cache_roomnames TEXT,
  was_data_detected INTEGER DEFAULT 0, was_deduplicated INTEGER DEFAULT 0, is_audio_message INTEGER DEFAULT 0,
  is_played INTEGER DEFAULT 0, date_played INTEGER, item_type INTEGER DEFAULT 0, other_handle INTEGER DEFAULT 0,
  group_title TEXT, group_action_type INTEGER DEFAULT 0, share_status INTEGER DEFAULT 0,
  share_direction INTEGER DEFAULT 0, is_expirable INTEGER DEFAULT 0, expire_state INTEGER DEFAULT 0,
  message_action_type INTEGER DEFAULT 0, message_source INTEGER DEFAULT 0, associated_message_guid TEXT,
  associated_message_type INTEGER DEFAULT 0, balloon_bundle_id TEXT, payload_data BLOB,
  expressive_send_style_id TEXT, associated_message_range_location INTEGER DEFAULT 0,
  associated_message_range_length INTEGER DEFAULT 0, time_expressive_send_played INTEGER,
  message_summary_info BLOB, ck_sync_state INTEGER DEFAULT 0, ck_record_id TEXT, ck_record_change_tag TEXT,
  destination_caller_id TEXT, is_corrupt INTEGER DEFAULT 0, reply_to_guid TEXT, sort_id INTEGER,
  is_spam INTEGER DEFAULT 0, has_unseen_mention INTEGER DEFAULT 0, thread_originator_guid TEXT,
  thread_originator_part TEXT, syndication_ranges TEXT, synced_syndication_ranges TEXT,
  was_delivered_quietly INTEGER DEFAULT 0, did_notify_recipient INTEGER DEFAULT 0,
  date_retracted INTEGER DEFAULT 0, date_edited INTEGER DEFAULT 0, was_detonated INTEGER DEFAULT 0,
  part_count INTEGER, is_stewie INTEGER DEFAULT 0, is_kt_verified INTEGER DEFAULT 0);
CREATE TABLE chat_message_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
  message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE, message_date INTEGER DEFAULT 0,
  PRIMARY KEY (chat_id, message_id));
CREATE TABLE chat_handle_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
  handle_id INTEGER REFERENCES handle (ROWID) ON DELETE CASCADE, UNIQUE(chat_id, handle_id));
CREATE TABLE attachment (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
  created_date INTEGER DEFAULT 0, start_date INTEGER DEFAULT 0, filename TEXT, uti TEXT, mime_type TEXT,
  transfer_state INTEGER DEFAULT 0, is_outgoing INTEGER DEFAULT 0, user_info BLOB, transfer_name TEXT,
  total_bytes INTEGER DEFAULT 0, is_sticker INTEGER DEFAULT 0, sticker_user_info BLOB, attribution_info BLOB,
  hide_attachment INTEGER DEFAULT 0, ck_sync_state INTEGER DEFAULT 0, ck_server_change_token_blob BLOB,
  ck_record_id TEXT, original_guid TEXT UNIQUE NOT NULL, is_commsafety_sensitive INTEGER DEFAULT 0);
CREATE TABLE message_attachment_join (message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE,
  attachment_id INTEGER REFERENCES attachment (ROWID) ON DELETE CASCADE, UNIQUE(message_id, attachment_id));
CREATE INDEX chat_message_join_idx_message_id_only ON chat_message_join(message_id);
CREATE INDEX message_idx_handle ON message(handle_id, date);
"""


def apple_now() -> int:
    """Messages' `date`: nanoseconds since 2001-01-01."""
    return int((time.time() - APPLE_EPOCH) * 1e9)


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x10000:
        return b"\x81" + n.to_bytes(2, "little")
    return b"\x82" + n.to_bytes(4, "little")


def attributed_body(text: str) -> bytes:
    """`text` as macOS archives it in attributedBody: an NSAttributedString in NSArchiver's typedstream."""
    data = text.encode()
    return (b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttributedString\x00\x84\x84\x08NSObject"
            b"\x00\x85\x92\x84\x84\x84\x08NSString\x01\x94\x84\x01+" + _length(len(data)) + data
            + b"\x86\x84\x02iI\x01" + _length(len(text.encode("utf-16-le")) // 2)
            + b"\x92\x84\x84\x84\x0cNSDictionary\x00\x94\x84\x01i\x01\x92\x84\x96\x96\x1d__kIMMessagePartAttributeName"
              b"\x86\x92\x84\x84\x84\x08NSNumber\x00\x84\x84\x07NSValue\x00\x94\x84\x01*\x84\x99\x99\x00\x86\x86\x86")


def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def insert_message(conn: sqlite3.Connection, attachments_dir: Path, chat: str, *, handle: str | None, text: str,
                   from_me: bool, attributed_only: bool = False, file: tuple[str, bytes, str] | None = None,
                   **columns: Any) -> str:
    """One message row joined to `chat` as Messages writes it; returns its guid."""
    chat_row = conn.execute("SELECT ROWID, service_name FROM chat WHERE guid = ?", (chat,)).fetchone()
    if chat_row is None:
        raise LookupError(chat)
    handle_id = 0
    if handle is not None:
        conn.execute("INSERT OR IGNORE INTO handle (id, service, uncanonicalized_id) VALUES (?, ?, ?)",
                     (handle, chat_row[1], handle))
        handle_id = conn.execute("SELECT ROWID FROM handle WHERE id = ? AND service = ?",
                                 (handle, chat_row[1])).fetchone()[0]
        conn.execute("INSERT OR IGNORE INTO chat_handle_join VALUES (?, ?)", (chat_row[0], handle_id))
    guid = str(uuid.uuid4()).upper()
    body = text + ("\ufffc" if file else "")
    values = {"guid": guid, "text": None if attributed_only else body, "attributedBody": attributed_body(body),
              "handle_id": handle_id, "service": chat_row[1], "date": apple_now(), "is_from_me": int(from_me),
              "is_sent": int(from_me), "is_delivered": 1, "is_finished": 1, "cache_has_attachments": int(bool(file)),
              "account": "E:andy@icloud.example" if from_me else None, **columns}
    conn.execute("BEGIN")
    cur = conn.execute(f"INSERT INTO message ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                       tuple(values.values()))
    rowid = cur.lastrowid
    conn.execute("INSERT INTO chat_message_join VALUES (?, ?, ?)", (chat_row[0], rowid, values["date"]))
    if file is not None:
        name, data, kind = file
        a_guid = str(uuid.uuid4()).upper()
        folder = attachments_dir / a_guid[:2].lower() / a_guid[2:4].lower() / a_guid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        filename = f"~/Library/Messages/Attachments/{a_guid[:2].lower()}/{a_guid[2:4].lower()}/{a_guid}/{name}"
        att = conn.execute(
            "INSERT INTO attachment (guid, original_guid, created_date, filename, mime_type, transfer_name,"
            " total_bytes, is_outgoing, transfer_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 5)",
            (a_guid, a_guid, values["date"] // 10**9, filename, kind, name, len(data), int(from_me)))
        conn.execute("INSERT INTO message_attachment_join VALUES (?, ?)", (rowid, att.lastrowid))
    conn.execute("COMMIT")
    return guid


class FakeMessages:
    """A Messages folder (chat.db, Attachments/) and the stand-in osascript, in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "Library" / "Messages"
        self.db = self.folder / "chat.db"
        self.attachments = self.folder / "Attachments"
        self.log = root / "osascript-calls.jsonl"
        self.down_flag = root / "messages-down"
        self.osascript = root / "bin" / "osascript"

    def create(self) -> None:
        self.attachments.mkdir(parents=True, exist_ok=True)
        with closing(connect(self.db)) as conn:
            conn.executescript(SCHEMA)
        self.osascript.parent.mkdir(parents=True, exist_ok=True)
        config = self.root / "osascript-config.json"
        config.write_text(json.dumps({"db": str(self.db), "log": str(self.log), "down": str(self.down_flag),
                                      "attachments": str(self.attachments)}))
        standin = Path(__file__).with_name("osascript_standin.py")
        self.osascript.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{standin}" "{config}" "$@"\n')
        self.osascript.chmod(0o755)

    def add_chat(self, guid: str, *, group: bool, name: str | None = None) -> None:
        identifier = guid.rsplit(";", 1)[-1]
        with closing(connect(self.db)) as conn:
            conn.execute("INSERT INTO chat (guid, style, state, chat_identifier, service_name, display_name,"
                         " account_login) VALUES (?, ?, 3, ?, 'iMessage', ?, 'E:andy@icloud.example')",
                         (guid, 43 if group else 45, identifier, name or ""))

    def write(self, chat: str, handle: str | None, text: str, *, from_me: bool = False, attributed_only: bool = False,
              file: tuple[str, bytes, str] | None = None, **columns: Any) -> str:
        with closing(connect(self.db)) as conn:
            return insert_message(conn, self.attachments, chat, handle=handle, text=text, from_me=from_me,
                                  attributed_only=attributed_only, file=file, **columns)

    def execute(self, sql: str, *args: Any) -> None:
        with closing(connect(self.db)) as conn:
            conn.execute(sql, args)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def set_down(self, down: bool) -> None:
        if down:
            self.down_flag.touch()
        else:
            self.down_flag.unlink(missing_ok=True)

    def replace_db(self) -> None:
        """Messages rebuilds its database: the same rows in a new file put in place of the old one."""
        fresh = self.db.with_name("chat.db.rebuilt")
        with closing(connect(self.db)) as old, closing(sqlite3.connect(fresh)) as new:
            old.backup(new)
        for suffix in ("-wal", "-shm"):
            Path(str(self.db) + suffix).unlink(missing_ok=True)
        os.replace(fresh, self.db)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
