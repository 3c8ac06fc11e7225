"""What the agent sees and what it sends: the XML message format and <internal> stripping (DESIGN §7)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from xml.sax.saxutils import escape, quoteattr

from nanoclaw.protocol.messages import InboundMessage

_INTERNAL = re.compile(r"<internal>.*?(?:</internal>|\Z)", re.DOTALL | re.IGNORECASE)


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
        parts.append(f"<message {' '.join(attrs)}>{escape(m.text)}</message>")
    parts.append("</messages>")
    return "\n".join(parts)


def strip_internal(text: str) -> str:
    """Remove the agent's `<internal>…</internal>` notes (an unclosed one runs to the end)."""
    return _INTERNAL.sub("", text).strip()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")
