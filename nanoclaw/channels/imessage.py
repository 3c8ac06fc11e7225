"""The iMessage channel (macOS): reads Messages' database, sends through AppleScript.

Owns reading `~/Library/Messages/chat.db` (opened read-only, polled for new rows; the path is
`IMESSAGE_DB`) and sending through `osascript` with Messages' AppleScript dictionary. A chat is a Messages
chat by its guid (`iMessage;-;+15551234567` with one person, `iMessage;+;chat…` for a group); there are no
threads, and AppleScript offers no buttons, edits, reactions or typing. The text of an outgoing message is
always an argument of the script (`on run argv`), never part of its source.

The newest row passed on is kept in `state/imessage-position.json`, so what came while the host was down
is passed on once at start, oldest first. There is no Python library for this database on PyPI; the
queries and the `attributedBody` reading below follow the schema macOS writes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote

from nanoclaw.channels.base import (
    Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult, render_text,
)
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.text import split_message, to_plain
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.host.attachments import safe_file_name
from nanoclaw.logs import get_logger

log = get_logger(__name__)

DEFAULT_DB = "~/Library/Messages/chat.db"
DEFAULT_OSASCRIPT = "/usr/bin/osascript"
APPLE_EPOCH = 978307200  # 2001-01-01T00:00:00Z in Unix time: Messages counts from there
MAX_TEXT = 10_000  # not a protocol limit: longer answers go out as several messages, each readable on a phone
MAX_FILE = 50 * 2**20
BATCH = 200
OSASCRIPT_TIMEOUT = 30.0
OWN_ROW_WAIT = 2.0  # how long to look for the row Messages writes for a message we sent
OUTBOX_KEEP = 24 * 3600  # Messages reads a sent file after `send` returns: kept a day
GROUP_STYLE = 43  # chat.style: 43 a group, 45 one person
# Messages marks a tapback (2000–2005, 3000–3005), a sticker placed on a message and similar with
# associated_message_type; item_type != 0 are renames, members joining and leaving.
SEND_TEXT = ("on run argv", 'tell application "Messages" to send (item 2 of argv) to chat id (item 1 of argv)',
             "end run")
SEND_FILE = ("on run argv", "set theFile to POSIX file (item 2 of argv)",
             'tell application "Messages" to send theFile to chat id (item 1 of argv)', "end run")
NEW_ROWS = """
SELECT m.ROWID AS rowid, m.guid, m.text, m.attributedBody, m.is_from_me, m.date, m.item_type,
       m.associated_message_type, m.cache_has_attachments, h.id AS sender, c.guid AS chat, c.style,
       c.display_name
FROM message m
JOIN chat_message_join cmj ON cmj.message_id = m.ROWID
JOIN chat c ON c.ROWID = cmj.chat_id
LEFT JOIN handle h ON h.ROWID = m.handle_id
WHERE m.ROWID > ? ORDER BY m.ROWID LIMIT ?"""
ATTACHMENTS = """
SELECT a.filename, a.mime_type, a.transfer_name FROM attachment a
JOIN message_attachment_join maj ON maj.attachment_id = a.ROWID WHERE maj.message_id = ? ORDER BY a.ROWID"""
OWN_ROW = """
SELECT m.guid FROM message m JOIN chat_message_join cmj ON cmj.message_id = m.ROWID
JOIN chat c ON c.ROWID = cmj.chat_id WHERE c.guid = ? AND m.is_from_me = 1 AND m.ROWID > ?
ORDER BY m.ROWID LIMIT 1"""


def attributed_text(blob: Any) -> str | None:
    """The string inside an `attributedBody`: an NSAttributedString archived by NSArchiver ("typedstream").

    Newer macOS leaves `text` NULL and stores the message there. The string is the NSString's C string:
    after the class name come its version and the `+` type tag, then the length (one byte, or 0x81 and two
    bytes, or 0x82 and four, little-endian) and the UTF-8 bytes.
    """
    if not isinstance(blob, (bytes, bytearray)):
        return None
    start = blob.find(b"NSString")
    if start < 0:
        return None
    rest = bytes(blob[start + len(b"NSString"):])
    plus = rest.find(b"+")
    if plus < 0 or plus > 8 or plus + 1 >= len(rest):
        return None
    i, tag = plus + 2, rest[plus + 1]
    if tag == 0x81:
        length, i = int.from_bytes(rest[i:i + 2], "little"), i + 2
    elif tag == 0x82:
        length, i = int.from_bytes(rest[i:i + 4], "little"), i + 4
    elif tag < 0x80:
        length = tag
    else:
        return None
    data = rest[i:i + length]
    return data.decode("utf-8", "replace") if len(data) == length else None


def apple_time(value: Any) -> float | None:
    """Unix time of a Messages `date`: nanoseconds since 2001-01-01 (seconds in databases before 2017)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return None
    return (value / 1e9 if value > 10**11 else value) + APPLE_EPOCH


class IMessageChannel(Channel):
    type = "imessage"
    settings_asked = ("IMESSAGE_DB",)
    capabilities = Capabilities(files=True, max_message_length=MAX_TEXT,
                                formatting="iMessage: plain text; no Markdown, no markup of any kind")

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._db = Path(DEFAULT_DB)
        self._osascript = DEFAULT_OSASCRIPT
        self._poll = 1.0
        self._outbox = Path()
        self._position = 0  # the newest ROWID passed on
        self._position_file: Path | None = None
        self._task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        extra = self.host.settings.extra
        if sys.platform != "darwin" and not extra.get("IMESSAGE_DB"):
            raise ConfigError("iMessage works on macOS only (it reads Messages' database and sends through"
                              " AppleScript); see docs/channels/imessage.md")
        self._db = Path(extra.get("IMESSAGE_DB") or DEFAULT_DB).expanduser()
        self._osascript = extra.get("IMESSAGE_OSASCRIPT") or DEFAULT_OSASCRIPT
        if shutil.which(self._osascript) is None:
            raise ConfigError(f"IMESSAGE_OSASCRIPT={self._osascript!r} is not an executable program")
        try:
            self._poll = float(extra.get("IMESSAGE_POLL_SECONDS") or 1.0)
        except ValueError:
            raise ConfigError("IMESSAGE_POLL_SECONDS is not a number") from None
        state = self.host.settings.state_dir
        self._outbox = Path(extra.get("IMESSAGE_OUTBOX") or state / "imessage-outbox").expanduser()
        try:
            newest = await asyncio.to_thread(self._query, "SELECT COALESCE(MAX(ROWID), 0) FROM message")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read {self._db} ({exc}): give the program running NanoClaw Full Disk Access"
                              " (System Settings → Privacy & Security), or set IMESSAGE_DB") from exc
        self._position_file = state / "imessage-position.json"
        saved = read_position(self._position_file, self.type)
        top = int(newest[0][0])
        if isinstance(saved, dict) and isinstance(saved.get("rowid"), int) and saved.get("db") == str(self._db):
            self._position = saved["rowid"]
            if self._position > top:  # the database was rebuilt or restored: its rows are numbered anew
                log.warning("imessage.position_reset", saved=self._position, newest=top)
                self._position = top
        else:  # the first start: what is in the database already is history, not new messages
            self._position = top
            self._save()
        self._task = asyncio.create_task(self._run())
        log.info("imessage.started", db=str(self._db), position=self._position)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _save(self) -> None:
        if self._position_file is not None:
            write_position(self._position_file, {"db": str(self._db), "rowid": self._position}, self.type)

    def _query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        # Opened for each read, read-only: Messages owns the file, and may replace it (a rebuild, a restore).
        uri = f"file:{quote(str(self._db))}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, args).fetchall()

    # -- inbound -------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.backoff()
        while True:
            try:
                rows = await asyncio.to_thread(self._new_rows)
                backoff.reset()
            except (sqlite3.Error, OSError) as exc:
                await backoff.wait(f"{self._db}: {exc}")
                continue
            for rowid, event in rows:
                if event is not None:
                    log.debug("imessage.received", chat=event.platform_id, text=event.text)
                    try:
                        result = await self.host.receive(event)
                    except Exception as exc:  # noqa: BLE001 - one message must not stop the reading
                        log.error("imessage.receive_failed", message_id=event.message_id, error=str(exc)[:200])
                    else:
                        if not result.accepted:
                            log.info("imessage.not_accepted", chat=event.platform_id, error=result.error)
                self._position = max(self._position, rowid)
            if rows:
                self._save()
            if len(rows) < BATCH:
                await asyncio.sleep(self._poll)

    def _new_rows(self) -> list[tuple[int, InboundEvent | None]]:
        """Rows after the position with their events (None: not for the host), oldest first."""
        found = []
        for row in self._query(NEW_ROWS, self._position, BATCH):
            try:
                files = self._files(int(row["rowid"])) if row["cache_has_attachments"] else []
                found.append((int(row["rowid"]), row_event(dict(row), files)))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("imessage.row_unreadable", rowid=row["rowid"], error=str(exc)[:200])
                found.append((int(row["rowid"]), None))
        return found

    def _files(self, rowid: int) -> list[FileAttachment]:
        files = []
        for filename, mime, transfer in self._query(ATTACHMENTS, rowid):
            data = self._read_attachment(str(filename or ""))
            if data is not None:
                name = str(transfer or Path(str(filename)).name or "attachment")
                files.append(FileAttachment(name, data, mime if isinstance(mime, str) else None))
        return files

    def _read_attachment(self, filename: str) -> bytes | None:
        """A file under Messages' Attachments folder (never a link, a device or anything outside it)."""
        home = "~/Library/Messages/"
        path = self._db.parent / filename[len(home):] if filename.startswith(home) else Path(filename)
        folder = (self._db.parent / "Attachments").resolve()
        if folder not in Path(os.path.abspath(path)).parents or folder not in path.resolve().parents:
            log.warning("imessage.attachment_refused", reason="outside Messages' Attachments folder")
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            log.warning("imessage.attachment_unreadable", error=exc.strerror or type(exc).__name__)
            return None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE:
                log.warning("imessage.attachment_refused", reason="not a regular file or larger than 50 MB")
                return None
            return f.read(MAX_FILE + 1)[:MAX_FILE]

    # -- outbound ------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        chat = message.route.platform_id
        if ";" not in chat:
            raise DestinationRefused(f"imessage chat {chat!r} is not a Messages chat id")
        text = render_text(message) if message.kind in ("card", "question") else (message.text or "")
        text = to_plain(text) if text else ""
        first: str | None = None
        async with self._send_lock:
            for piece in split_message(text, MAX_TEXT) if text.strip() else []:
                sent = await self._run_send(SEND_TEXT, chat, piece)
                first = first or sent
            if message.file is not None:
                sent = await self._run_send(SEND_FILE, chat, str(self._stage(message.file)))
                first = first or sent
        return SendResult(first)

    def _stage(self, file: FileAttachment) -> Path:
        """A copy Messages can read after `send` returns (it uploads in the background)."""
        now = time.time()
        if self._outbox.is_dir():
            for old in self._outbox.iterdir():
                if old.is_dir() and not old.is_symlink() and now - old.stat().st_mtime > OUTBOX_KEEP:
                    shutil.rmtree(old, ignore_errors=True)
        folder = self._outbox / uuid.uuid4().hex
        folder.mkdir(parents=True, mode=0o700)
        path = folder / safe_file_name(file.name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(file.data)
        return path

    async def _run_send(self, script: tuple[str, ...], chat: str, argument: str) -> str | None:
        """Run one send script; returns the guid of the row Messages wrote for it, when it shows up in time."""
        before = (await asyncio.to_thread(self._query, "SELECT COALESCE(MAX(ROWID), 0) FROM message"))[0][0]
        command = [self._osascript]
        for line in script:
            command += ["-e", line]
        # The chat id comes first: it never starts with "-", so osascript reads everything after it as arguments.
        command += [chat, argument]
        try:
            proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise ChannelUnavailable(f"cannot run {self._osascript}: {exc.strerror or exc}") from exc
        try:
            _, err = await asyncio.wait_for(proc.communicate(), OSASCRIPT_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise ChannelUnavailable("Messages did not answer within 30 seconds") from None
        if proc.returncode != 0:
            error = err.decode("utf-8", "replace").strip()[-300:]
            if "(-1728)" in error or "(-1719)" in error:  # no such chat / participant
                raise DestinationRefused(f"Messages has no chat {chat!r}: {error}")
            if "(-1743)" in error:  # macOS refuses Apple events to Messages for this program
                log.error("imessage.not_authorized")
                raise ChannelUnavailable("macOS does not let NanoClaw control Messages: allow it in System"
                                         " Settings → Privacy & Security → Automation")
            raise ChannelUnavailable(f"osascript failed ({proc.returncode}): {error}")
        deadline = time.monotonic() + OWN_ROW_WAIT
        while True:
            rows = await asyncio.to_thread(self._query, OWN_ROW, chat, before)
            if rows or time.monotonic() > deadline:
                return str(rows[0][0]) if rows else None
            await asyncio.sleep(0.1)


def row_event(row: Mapping[str, Any], files: list[FileAttachment]) -> InboundEvent | None:
    """The host's event for one row of `message` joined with its chat and handle; None when it is not a
    person's message (ours, a tapback, a group rename, an empty row)."""
    if row.get("is_from_me") or row.get("item_type") or row.get("associated_message_type"):
        return None
    chat, sender, guid = row.get("chat"), row.get("sender"), row.get("guid")
    if not all(isinstance(v, str) and v for v in (chat, sender, guid)):
        return None
    text = row.get("text") if isinstance(row.get("text"), str) else attributed_text(row.get("attributedBody"))
    text = (text or "").replace("\ufffc", "").strip()  # U+FFFC stands where an attachment sits in the text
    if not text and not files:
        return None
    is_dm = row.get("style") != GROUP_STYLE and ";+;" not in str(chat)
    name = row.get("display_name")
    sent_at = apple_time(row.get("date"))
    return InboundEvent(
        channel_type="imessage", platform_id=str(chat), message_id=str(guid), text=text, sender_id=str(sender),
        sender_name=str(sender), is_dm=is_dm, chat_name=name if isinstance(name, str) and name else None,
        files=tuple(files), payload={"sent_at": sent_at} if sent_at else {},
    )
