"""What the agent sees and what it sends: the XML message format and <internal> stripping (DESIGN §7)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from xml.sax.saxutils import escape as _escape
from xml.sax.saxutils import quoteattr as _quoteattr

from nanoclaw.protocol.messages import InboundMessage, OutboundMessage

_INTERNAL = re.compile(r"<internal>.*?(?:</internal>|\Z)", re.DOTALL | re.IGNORECASE)
_SPECIAL_TEXT = re.compile(r"[&<>]")
_SPECIAL_ATTR = re.compile(r"[&<>\"'\n\r\t]")


def escape(text: str) -> str:
    """saxutils.escape, skipped for text that has nothing to escape (most messages: it runs every turn)."""
    return _escape(text) if _SPECIAL_TEXT.search(text) else text


def quoteattr(value: str) -> str:
    return _quoteattr(value) if _SPECIAL_ATTR.search(value) else f'"{value}"'


def format_messages(messages: list[InboundMessage]) -> str:
    """`<messages><message sender=… time=… thread=…>…</message></messages>`; context rows are marked."""
    parts = ["<messages>"]
    for m in messages:
        attrs = [f"sender={quoteattr(m.sender_name or m.sender_id or 'unknown')}"]
        attrs.append(f"time={quoteattr(_iso(m.created_at))}")
        attrs.append(f"id={quoteattr(m.platform_message_id)}")
        if m.route and m.route.thread_id:
            attrs.append(f"thread={quoteattr(m.route.thread_id)}")
        if m.kind != "chat":
            attrs.append(f"kind={quoteattr(m.kind)}")
        if not m.trigger:
            attrs.append('context="true"')
        parts.append(f"<message {' '.join(attrs)}>{escape(m.text)}{_attachments(m)}</message>")
    parts.append("</messages>")
    return "\n".join(parts)


def format_already_sent(rows: list[OutboundMessage]) -> str:
    """For a turn that runs again after a crash: what it had sent, so the model carries on instead of repeating."""
    parts = ['<already_sent note="Your work on the messages below was interrupted (the assistant restarted) and '
             'resumes now. You had already sent these; the person has them. Do not send them again: continue '
             'from where you stopped.">']
    for row in rows:
        attrs = [f"kind={quoteattr(row.kind)}"]
        if row.to_name:
            attrs.append(f"to={quoteattr(row.to_name)}")
        file = row.payload.get("file")
        if isinstance(file, str):
            attrs.append(f"file={quoteattr(file.rsplit('/', 1)[-1])}")
        parts.append(f"<sent {' '.join(attrs)}>{escape(row.text or '')}</sent>")
    parts.append("</already_sent>")
    return "\n".join(parts)


def _attachments(m: InboundMessage) -> str:
    files = m.payload.get("attachments") if isinstance(m.payload, dict) else None
    if not isinstance(files, list):
        return ""
    out = []
    for f in files:
        if not isinstance(f, dict):
            continue
        attrs = [f"name={quoteattr(str(f.get('name', '')))}", f"size={quoteattr(str(f.get('size', '')))}"]
        for key in ("path", "mime_type", "error"):
            if f.get(key):
                attrs.append(f"{key}={quoteattr(str(f[key]))}")
        out.append(f"<attachment {' '.join(attrs)}/>")
    return "".join(out)


def strip_internal(text: str) -> str:
    """Remove the agent's `<internal>…</internal>` notes (an unclosed one runs to the end)."""
    return _INTERNAL.sub("", text).strip()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")
