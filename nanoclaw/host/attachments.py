"""Files people send: saved into the session's inbox/ where the agent can read them.

The runner can write its own session folder, so the host never follows a link
there: every step is opened relative to a directory descriptor with O_NOFOLLOW.
Names come from other people's apps, so they are reduced to one safe component.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from typing import Iterable

from nanoclaw.channels.base import FileAttachment
from nanoclaw.logs import get_logger
from nanoclaw.protocol.folder import SANDBOX_WORKSPACE, SessionFolder

log = get_logger("nanoclaw.host.attachments")
MAX_INBOUND_FILE = 50 * 1024 * 1024
_FORBIDDEN = set('<>:"|?*\\/')
_MAX_NAME_BYTES = 200


def safe_file_name(name: str) -> str:
    """One harmless path component: no directories, `..`, control characters or leading dots; at most 200 bytes."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/")).rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable() and c not in _FORBIDDEN).strip(" .")
    if not base:
        return "file"
    stem, dot, ext = base.rpartition(".")
    if not dot or len(ext) > 16:
        stem, dot, ext = base, "", ""
    stem = stem[:_MAX_NAME_BYTES]
    while len((stem + dot + ext).encode("utf-8")) > _MAX_NAME_BYTES:
        stem = stem[:-1] if len(stem) > 1 else ""
        if not stem:
            return ("file" + dot + ext)[:_MAX_NAME_BYTES]
    return stem + dot + ext


def save_attachments(folder: SessionFolder, message_id: str, files: Iterable[FileAttachment]) -> list[dict[str, object]]:
    """Write files under inbox/<hash of message id>/; returns what the agent is told about each."""
    subdir = hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()[:16]
    described: list[dict[str, object]] = []
    files = list(files)
    try:
        inbox_fd = os.open(folder.inbox, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            try:
                os.mkdir(subdir, 0o755, dir_fd=inbox_fd)
            except FileExistsError:
                pass
            sub_fd = os.open(subdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=inbox_fd)
        finally:
            os.close(inbox_fd)
    except OSError as exc:  # the runner replaced inbox/ (or the folder) with a link or a file: save nothing
        log.warning("attachment.inbox_unusable", error=exc.strerror)
        return [{"name": safe_file_name(f.name), "size": len(f.data), "error": f"not saved: {exc.strerror}"}
                for f in files]
    try:
        used: set[str] = set()
        for attachment in files:
            described.append(_save_one(sub_fd, subdir, attachment, used))
    finally:
        os.close(sub_fd)
    return described


def _save_one(dir_fd: int, subdir: str, attachment: FileAttachment, used: set[str]) -> dict[str, object]:
    name = _unique(safe_file_name(attachment.name), used)
    info: dict[str, object] = {"name": name, "size": len(attachment.data)}
    if attachment.mime_type:
        info["mime_type"] = attachment.mime_type
    if len(attachment.data) > MAX_INBOUND_FILE:
        info["error"] = f"not saved: larger than {MAX_INBOUND_FILE // 2**20} MB"
        return info
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    except OSError as exc:  # e.g. the runner planted a link or a directory under that name
        log.warning("attachment.save_failed", name=name, error=exc.strerror)
        info["error"] = f"not saved: {exc.strerror}"
        return info
    with os.fdopen(fd, "wb") as f:
        f.write(attachment.data)
    info["path"] = f"{SANDBOX_WORKSPACE}/inbox/{subdir}/{name}"
    return info


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem}-{n}.{ext}" if dot and stem else f"{name}-{n}"
        n += 1
    used.add(candidate)
    return candidate
