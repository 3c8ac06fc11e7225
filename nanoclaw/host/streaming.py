"""Replies shown while the agent writes them, in the chat they answer (DESIGN §3, partials).

The runner writes the answer so far into its `partials` table; this relay reads
it when the session's doorbell rings and shows it in the session's own chat
(the route the host wrote, never one the runner names):

* a channel with a live view (`capabilities.live_partials`, the web chat) gets
  every update through `Channel.show_partial`;
* a channel that can edit (`capabilities.stream_interval`) gets one message,
  sent at the first text and edited as it grows, no faster than the platform's
  rate limit allows.

The final `chat` row (payload.stream = the stream id) is the answer and goes
through delivery as always: it replaces the growing message (`finish`), so it
is delivered exactly once. Partials are best effort: none is stored or replayed,
and a stream whose runner went away is marked as cut short.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from nanoclaw.channels.base import Channel, OutgoingMessage, SendResult
from nanoclaw.channels.text import split_message
from nanoclaw.host.sessions import SessionManager
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Partial, Route

log = get_logger("nanoclaw.host.streaming")

MAX_PARTIAL = 100_000  # characters read of one partial: the runner is untrusted
CUT_SHORT = "_(cut short)_"


@dataclass
class _Shown:
    """One answer being shown in one chat."""

    session_id: str
    route: Route
    channel: Channel
    platform_id: str | None = None  # the growing message (edit-in-place channels)
    shown: str = ""  # the text on the platform
    latest: str = ""  # the newest text from the runner
    last_edit: float = 0.0
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StreamRelay:
    def __init__(self, sessions: SessionManager, channels: Mapping[str, Channel],
                 enabled: Callable[[str], bool], is_live: Callable[[str], bool]) -> None:
        self.sessions = sessions
        self.channels = channels
        self.enabled = enabled  # Settings.streams_to: the owner can turn streaming off per channel
        self.is_live = is_live  # whether the session's runner still runs
        self._streams: dict[str, _Shown] = {}  # by stream id
        self._finished: dict[str, float] = {}  # stream ids whose final row came: later partials are stale
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    def kick(self, session_id: str) -> None:
        """The session's runner rang: show what it wrote (calls coalesce while a read runs)."""
        if session_id in self._running:
            self._dirty.add(session_id)
            return
        self._running[session_id] = asyncio.ensure_future(self._pump_loop(session_id))

    async def _pump_loop(self, session_id: str) -> None:
        try:
            while True:
                self._dirty.discard(session_id)
                try:
                    await self._pump(session_id)
                except Exception as exc:  # a partial is best effort: never let it hurt delivery
                    log.warning("stream.error", session=session_id, error=f"{type(exc).__name__}: {exc}")
                if session_id not in self._dirty:
                    return
        finally:
            del self._running[session_id]

    async def _pump(self, session_id: str) -> None:
        end = self.sessions.end(session_id)
        latest: dict[str, Partial] = {}
        for partial in end.new_partials(MAX_PARTIAL):
            latest[partial.stream_id] = partial  # only the newest text of each answer matters
        for partial in latest.values():
            await self._update(session_id, end.routing(), partial)
        if not self.is_live(session_id):
            await self.abandon(session_id)

    async def _update(self, session_id: str, route: Route | None, partial: Partial) -> None:
        if partial.stream_id in self._finished or not partial.text.strip():
            return
        shown = self._streams.get(partial.stream_id)
        if shown is None:
            channel = self.channels.get(route.channel_type) if route is not None else None
            if route is None or channel is None or not self.enabled(route.channel_type):
                return
            caps = channel.capabilities
            if not caps.live_partials and caps.stream_interval is None:
                return
            shown = self._streams[partial.stream_id] = _Shown(session_id, route, channel)
        shown.latest = partial.text
        await self._show(partial.stream_id, shown)

    async def _show(self, stream_id: str, shown: _Shown) -> None:
        async with shown.lock:
            if self._streams.get(stream_id) is not shown or shown.latest == shown.shown:
                return
            caps = shown.channel.capabilities
            if caps.live_partials:
                await shown.channel.show_partial(shown.route, stream_id, shown.latest)
                shown.shown = shown.latest
                return
            interval = caps.stream_interval or 0.0
            wait = shown.last_edit + interval - time.monotonic()
            if shown.platform_id is not None and wait > 0:  # the platform's rate limit: show the newest later
                if shown.timer is None:
                    shown.timer = asyncio.get_running_loop().call_later(
                        wait, lambda: asyncio.ensure_future(self._after_wait(stream_id, shown)))
                return
            text = _fit(shown.latest, caps.max_message_length)
            if shown.platform_id is None:
                result = await shown.channel.send(OutgoingMessage(route=shown.route, kind="chat", text=text,
                                                                  id=f"stream-{stream_id}"))
                shown.platform_id = result.platform_message_id
            else:
                await shown.channel.edit(shown.route, shown.platform_id, text)
            shown.shown = shown.latest
            shown.last_edit = time.monotonic()

    async def _after_wait(self, stream_id: str, shown: _Shown) -> None:
        shown.timer = None
        try:
            await self._show(stream_id, shown)
        except Exception as exc:
            log.warning("stream.edit_failed", channel=shown.route.channel_type, error=f"{type(exc).__name__}: {exc}")

    async def finish(self, stream_id: str, message: OutgoingMessage) -> SendResult | None:
        """The final answer of `stream_id` is being delivered: put it in place of the growing message.

        Returns what was sent, or None when delivery should send it as a new message (nothing was
        shown, or the channel replaces its live view itself from payload["stream"])."""
        self._finished[stream_id] = time.monotonic()
        self._forget_old_finished()
        shown = self._streams.get(stream_id)
        if shown is None:
            return None
        async with shown.lock:
            if shown.timer is not None:
                shown.timer.cancel()
                shown.timer = None
            if shown.platform_id is None or shown.channel.capabilities.live_partials or shown.route != message.route:
                self._streams.pop(stream_id, None)
                return None
            limit = shown.channel.capabilities.max_message_length
            text = message.text or ""
            pieces = split_message(text, limit * 4 // 5) if limit and len(text) > limit * 4 // 5 else [text]
            await shown.channel.edit(shown.route, shown.platform_id, pieces[0])  # a failure retries the row
            self._streams.pop(stream_id, None)
        if len(pieces) > 1:
            await shown.channel.send(OutgoingMessage(route=message.route, kind="chat", text="\n\n".join(pieces[1:]),
                                                     id=f"{message.id}-rest"))
        return SendResult(shown.platform_id)

    async def abandon(self, session_id: str) -> None:
        """The session's turn ended without a final row for these answers (or its runner went away)."""
        waiting = self._finals_waiting(session_id)
        for stream_id, shown in list(self._streams.items()):
            if shown.session_id != session_id or stream_id in waiting:
                continue
            async with shown.lock:
                if self._streams.pop(stream_id, None) is None:
                    continue
                if shown.timer is not None:
                    shown.timer.cancel()
                try:
                    if shown.channel.capabilities.live_partials:
                        await shown.channel.show_partial(shown.route, stream_id, None)
                    elif shown.platform_id is not None:
                        text = _fit(shown.latest, shown.channel.capabilities.max_message_length, len(CUT_SHORT) + 2)
                        await shown.channel.edit(shown.route, shown.platform_id, f"{text}\n\n{CUT_SHORT}")
                except Exception as exc:
                    log.warning("stream.abandon_failed", channel=shown.route.channel_type, error=str(exc))
            log.info("stream.abandoned", session=session_id)

    def _finals_waiting(self, session_id: str) -> set[str]:
        """Streams whose final row is written but not delivered yet (e.g. its channel is down for a moment)."""
        rows = self.sessions.end(session_id).undelivered()
        return {str(r.payload["stream"]) for r in rows if r.kind == "chat" and isinstance(r.payload.get("stream"), str)}

    def turn_changed(self, session_id: str, working: bool) -> None:
        """A turn ended: its final rows are delivered by now (delivery sends replies before following acks)."""
        if not working and any(s.session_id == session_id for s in self._streams.values()):
            asyncio.ensure_future(self.abandon(session_id))

    def _forget_old_finished(self) -> None:
        cutoff = time.monotonic() - 600
        for stream_id in [s for s, at in self._finished.items() if at < cutoff]:
            del self._finished[stream_id]

    async def stop(self) -> None:
        for shown in self._streams.values():
            if shown.timer is not None:
                shown.timer.cancel()
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=5)


def _fit(text: str, limit: int | None, room: int = 2) -> str:
    """A partial that fits one message (the final answer is split properly)."""
    if limit is None or len(text) <= limit * 4 // 5:
        return text
    return text[: limit * 4 // 5 - room] + " …"
