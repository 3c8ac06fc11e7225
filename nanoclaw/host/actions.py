"""Performing one outbound row through a channel, by kind (chat, card, question, file, edit, reaction, system).

Delivery decides when and records the outcome; this module decides how.
Channels without a capability get a text fallback where one makes sense.
"""

from __future__ import annotations

import inspect
import sqlite3
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Mapping

from nanoclaw.channels.base import Channel, FileAttachment, OutgoingMessage, render_text
from nanoclaw.db import questions
from nanoclaw.db.sessions import Session
from nanoclaw.errors import DestinationRefused
from nanoclaw.host.agents import AGENT_CHANNEL, AgentRelay
from nanoclaw.host.cards import CardBoard
from nanoclaw.host.streaming import StreamRelay
from nanoclaw.protocol.host_end import HostEnd
from nanoclaw.safefs import UnsafePath
from nanoclaw.protocol.messages import OutboundMessage, Route, delivery_id

SystemHandler = Callable[[Session, str, dict[str, Any]], "str | Awaitable[str]"]
MAX_TEXT = 200_000
# A system handler returns this when it answers the waiting tool later itself (Delivery.answer_later).
DEFERRED = "\x00deferred"  # no real result text starts with NUL
MAX_FILE = 50 * 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    platform_message_id: str | None = None


class Actions:
    def __init__(self, conn: sqlite3.Connection, channels: Mapping[str, Channel], agents: AgentRelay) -> None:
        self.conn = conn
        self.channels = channels
        self.agents = agents
        self.system: dict[str, SystemHandler] = {}
        self.streams: StreamRelay | None = None  # puts a final answer in place of the one shown while written
        self.cards: CardBoard | None = None  # remembers where question cards went, to close them later

    def register_system(self, action: str, handler: SystemHandler) -> None:
        """Handle outbound `system` rows with this action (the result text goes back to the tool)."""
        self.system[action] = handler

    async def perform(
        self, session: Session, end: HostEnd, row: OutboundMessage, route: Route | None, target_agent: str | None
    ) -> Outcome:
        """Raise DestinationRefused for a row that must not go out, ChannelUnavailable to retry later."""
        row = replace(row, id=delivery_id(session.id, row.id))  # what channels and other sessions see
        if row.text is not None and len(row.text) > MAX_TEXT:
            raise DestinationRefused(f"message of {len(row.text)} characters exceeds {MAX_TEXT}")
        if row.kind == "system":
            result = self._system(session, row)
            return Outcome(await result if inspect.isawaitable(result) else result)
        if target_agent is not None:
            if row.kind != "chat":
                raise DestinationRefused("only text messages can be sent to agents")
            hops = self._hops(end, row)  # (a query: only for rows to agents)
            return Outcome(await self.agents.send(session.id, target_agent, row.text or "", hops, row.id))
        assert route is not None
        if route.channel_type == AGENT_CHANNEL:
            if row.kind != "chat":
                raise DestinationRefused("only text messages can be sent to agents")
            await self.agents.reply(session.id, route.platform_id, row.text or "", self._hops(end, row), row.id)
            return Outcome(None)
        channel = self._channel(route)
        if row.kind == "chat":
            message = self._message(row, route)
            stream = row.payload.get("stream")
            if isinstance(stream, str) and self.streams is not None:
                finished = await self.streams.finish(stream, message)
                if finished is not None:
                    return Outcome(finished.platform_message_id)
            return Outcome((await channel.send(message)).platform_message_id)
        if row.kind in ("card", "question"):
            return Outcome(await self._card(session, channel, row, route))
        if row.kind == "file":
            return Outcome(await self._file(channel, end, row, route))
        if row.kind == "edit":
            return Outcome(await self._edit(channel, end, row, route))
        if row.kind == "reaction":
            return Outcome(await self._react(channel, end, row, route))
        raise DestinationRefused(f"unknown message kind {row.kind!r}")

    def _channel(self, route: Route) -> Channel:
        from nanoclaw.errors import ChannelUnavailable

        channel = self.channels.get(route.channel_type)
        if channel is None:
            raise ChannelUnavailable(f"channel {route.channel_type} is not running")
        return channel

    def _message(self, row: OutboundMessage, route: Route, **extra: object) -> OutgoingMessage:
        return OutgoingMessage(route=route, kind=row.kind, text=row.text, id=row.id, payload=row.payload, **extra)  # type: ignore[arg-type]

    def _hops(self, end: HostEnd, row: OutboundMessage) -> int:
        """Agent-to-agent hops so far, +1: counted from the message this row answers."""
        cause = end.messages([row.in_reply_to]) if row.in_reply_to else []
        return int(cause[0].payload.get("hops", 0)) + 1 if cause else 1

    async def _card(self, session: Session, channel: Channel, row: OutboundMessage, route: Route) -> str | None:
        buttons = tuple(str(b)[:80] for b in row.payload.get("buttons") or row.payload.get("options") or [])[:10]
        title = row.payload.get("title")
        card_id = None
        if row.kind == "question":
            card_id = str(row.payload.get("question_id", ""))
            if not (card_id.startswith("q-") and len(card_id) == 10 and card_id[2:].isalnum()):
                raise DestinationRefused("malformed question id")
            expires_in = min(max(float(row.payload.get("expires_in", 600)), 10.0), 7 * 86400.0)
            if questions.get(self.conn, card_id) is None:
                questions.create(self.conn, card_id, session.id, session.messaging_group_id if route.platform_id else None,
                                 route.thread_id, row.text or "", list(buttons), expires_in)
        message = self._message(row, route, title=title, buttons=buttons, card_id=card_id)
        if not channel.capabilities.cards:
            message = OutgoingMessage(route=route, kind="chat", text=render_text(message), id=row.id)
        result = await channel.send(message)
        if card_id:
            questions.set_platform_message(self.conn, card_id, result.platform_message_id)
            if self.cards is not None:
                self.cards.posted(card_id, route, result.platform_message_id,
                                  f"**{title}**\n{row.text or ''}" if title else row.text or "")
        return result.platform_message_id

    async def _file(self, channel: Channel, end: HostEnd, row: OutboundMessage, route: Route) -> str | None:
        name, data = read_outbox_file(end, str(row.payload.get("file", "")))
        if not channel.capabilities.files:
            text = f"{row.text or ''}\n[file {name}, {len(data)} bytes: this chat cannot receive files]".strip()
            return (await channel.send(OutgoingMessage(route=route, kind="chat", text=text, id=row.id))).platform_message_id
        message = self._message(row, route, file=FileAttachment(name, data))
        return (await channel.send(message)).platform_message_id

    async def _edit(self, channel: Channel, end: HostEnd, row: OutboundMessage, route: Route) -> str | None:
        target = end.platform_id_of(str(row.payload.get("message_id", "")))
        if target is None:
            raise DestinationRefused("edit_message: no delivered message with that id")
        if not channel.capabilities.edits:
            text = f"(edited) {row.text or ''}"
            return (await channel.send(OutgoingMessage(route=route, kind="chat", text=text, id=row.id))).platform_message_id
        await channel.edit(route, target, row.text or "")
        return target

    async def _react(self, channel: Channel, end: HostEnd, row: OutboundMessage, route: Route) -> str | None:
        raw = str(row.payload.get("message_id", ""))
        target = end.platform_id_of(raw) or raw
        emoji = str(row.payload.get("emoji", ""))[:32]
        if not channel.capabilities.reactions:
            raise DestinationRefused(f"{route.channel_type} has no reactions")
        await channel.react(route, target, emoji)
        return None

    def _system(self, session: Session, row: OutboundMessage) -> str | Awaitable[str]:
        action = row.payload.get("action")
        handler = self.system.get(action) if isinstance(action, str) else None
        if handler is None:
            raise DestinationRefused(f"unknown system action {action!r}")
        return handler(session, action, row.payload)

def read_outbox_file(end: HostEnd, relative: str) -> tuple[str, bytes]:
    """Read a file the runner put in outbox/<message>/<name>: a plain file, no link on the way, bounded."""
    parts = relative.split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") for p in parts):
        raise DestinationRefused(f"bad file reference {relative!r}")
    try:
        return parts[1], end.tree.read_bytes(f"outbox/{relative}", limit=MAX_FILE)
    except UnsafePath as exc:
        raise DestinationRefused(f"cannot send {relative}: {exc}") from exc
