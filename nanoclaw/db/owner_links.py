"""One-time codes that make the chat account sending them an owner identity (`nanoclaw owner link`)."""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time

# Uppercase without look-alikes (0/O, 1/I), as people copy it by hand from a terminal into a chat app.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LENGTH = 8
TTL = 3600.0
_SHAPE = re.compile(rf"[{ALPHABET}]{{{LENGTH}}}")


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(text: str) -> str | None:
    """The code in `text` as typed ("abcd-efgh", " ABCD EFGH "), or None when it is not shaped like one."""
    compact = re.sub(r"[\s-]", "", text).upper()
    return compact if _SHAPE.fullmatch(compact) else None


def create(conn: sqlite3.Connection, ttl: float = TTL) -> str:
    code = new_code()
    now = time.time()
    conn.execute("INSERT INTO owner_links (code_hash, created_at, expires_at) VALUES (?,?,?)",
                 (_hash(code), now, now + ttl))
    return code


def redeem(conn: sqlite3.Connection, code: str, by: str) -> bool:
    """Use `code` once (unexpired, unused); True if it was valid."""
    now = time.time()
    return conn.execute(
        "UPDATE owner_links SET used_by = ?, used_at = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?",
        (by, now, _hash(code), now)).rowcount > 0


def used(conn: sqlite3.Connection, code: str) -> str | None:
    """Who used `code` (channel:user), or None while it waits."""
    row = conn.execute("SELECT used_by FROM owner_links WHERE code_hash = ?", (_hash(code),)).fetchone()
    return row[0] if row else None
