"""Files people send: saved into the session's inbox/ where the agent can read them.

The runner can write its own session folder, so the host writes there only
through the session's `safefs.Tree` (no link followed, temp file + rename).
Names come from other people's apps, so they are reduced to one safe component.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Iterable

from nanoclaw.channels.base import FileAttachment
from nanoclaw.logs import get_logger
from nanoclaw.protocol.folder import SANDBOX_WORKSPACE
from nanoclaw.safefs import Tree, UnsafePath

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


def save_attachments(tree: Tree, message_id: str, files: Iterable[FileAttachment]) -> list[dict[str, object]]:
    """Write files under inbox/<hash of message id>/ of the session's tree; returns what the agent is told of each."""
    subdir = hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()[:16]
    files = list(files)
    try:
        tree.mkdir(f"inbox/{subdir}", parents=True)
    except (UnsafePath, OSError) as exc:  # the runner replaced inbox/ with a link or a file: save nothing
        log.warning("attachment.inbox_unusable", error=str(exc))
        return [{"name": safe_file_name(f.name), "size": len(f.data), "error": "not saved: the inbox is not a folder"}
                for f in files]
    used: set[str] = set()
    return [_save_one(tree, subdir, attachment, used) for attachment in files]


def _save_one(tree: Tree, subdir: str, attachment: FileAttachment, used: set[str]) -> dict[str, object]:
    name = _unique(safe_file_name(attachment.name), used)
    info: dict[str, object] = {"name": name, "size": len(attachment.data)}
    if attachment.mime_type:
        info["mime_type"] = attachment.mime_type
    if len(attachment.data) > MAX_INBOUND_FILE:
        info["error"] = f"not saved: larger than {MAX_INBOUND_FILE // 2**20} MB"
        return info
    try:
        tree.write_bytes(f"inbox/{subdir}/{name}", attachment.data)
    except (UnsafePath, OSError) as exc:  # e.g. a folder planted under that name, or the disk quota is full
        log.warning("attachment.save_failed", name=name, error=str(exc))
        info["error"] = f"not saved: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
        return info
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
