"""Outbound rows → channel adapters: ACL check, in-order delivery, retries, exactly-once records (DESIGN §4).

A row is final once `delivered` holds it (sent, refused or failed). A row is
sent before it is recorded, so only a host crash in between can repeat it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Callable, Mapping

from nanoclaw.channels.base import Channel, OutgoingMessage, render_text
from nanoclaw.errors import ChannelUnavailable, DestinationRefused
from nanoclaw.db import host_outbox
from nanoclaw.host import acl
from nanoclaw.host.actions import DEFERRED, Actions
from nanoclaw.host.sessions import SessionManager
from nanoclaw.logs import get_logger
from nanoclaw.protocol.host_end import HostEnd
from nanoclaw.protocol.messages import Ack, InboundMessage, OutboundMessage, Route, delivery_id, turn_of

log = get_logger("nanoclaw.host.delivery")

RETRY_FIRST, RETRY_MAX = 0.5, 300.0
REPEATABLE = frozenset({"chat", "file", "card"})  # what a re-run turn may say again


class Delivery:
    def __init__(
        self, conn: sqlite3.Connection, sessions: SessionManager, channels: Mapping[str, Channel], actions: Actions,
        connecting: Callable[[str], bool] = lambda _name: False,
    ) -> None:
        self.conn = conn
        self.sessions = sessions
        self.channels = channels  # the connected ones
        self.connecting = connecting  # configured, not connected yet: its messages wait for it
        self.actions = actions
        # Called when a host card went out (its copy is closed when it is decided): (card, platform id).
        self.card_posted: Callable[[OutgoingMessage, str | None], None] | None = None
        # Called when a scheduled task's message is finished: (session, seq, status, reply text).
        self.task_finished: Callable[[str, int, str, str | None], None] | None = None
        # Called when a session's runner takes a turn (True) or finishes one (False): the turn time limit.
        self.turn_changed: Callable[[str, bool], None] | None = None
        self.delivered_count = 0
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._waiting: dict[str, str] = {}  # session → channel type it waits for
        self._backoff: dict[str, float] = {}
        self._retry: dict[str, asyncio.TimerHandle] = {}
        self._flushing: set[str] = set()

    def kick(self, session_id: str) -> None:
        """Look at the session's outbound side soon; calls coalesce while a drain runs."""
        if session_id in self._running:
            self._dirty.add(session_id)
            return
        self._running[session_id] = asyncio.ensure_future(self._drain_loop(session_id))

    async def drain(self, session_id: str) -> None:
        """Kick and wait until nothing is left to do right now (for tests and startup)."""
        self.kick(session_id)
        while session_id in self._running:
            await asyncio.shield(self._running[session_id])

    def channel_ready(self, channel_type: str) -> None:
        if channel_type not in self._flushing:
            asyncio.ensure_future(self.flush_host_outbox(channel_type))
        for session_id, waiting_for in list(self._waiting.items()):
            if waiting_for == channel_type:
                self._backoff.pop(session_id, None)
                handle = self._retry.pop(session_id, None)
                if handle:
                    handle.cancel()
                del self._waiting[session_id]
                self.kick(session_id)

    async def _drain_loop(self, session_id: str) -> None:
        try:
            while True:
                self._dirty.discard(session_id)
                try:
                    await self._drain_once(session_id)
                except Exception as exc:  # one broken session must not stop the others
                    log.error("delivery.error", session=session_id, error=f"{type(exc).__name__}: {exc}")
                if session_id not in self._dirty:
                    return
        finally:
            del self._running[session_id]

    async def _drain_once(self, session_id: str) -> None:
        end = self.sessions.end(session_id)
        # Replies first, then acks: a client waiting for "processed" has its answer by then.
        # The acks are read before the replies: the runner writes a reply before its ack, so
        # every reply an ack in hand speaks for is already visible below.
        acks = end.new_acks()
        if session_id not in self._waiting:
            for row in end.undelivered():
                if not await self._deliver(session_id, end, row):
                    break
                end.out_cursor = row.seq
        await self._follow_acks(session_id, end, acks)

    async def _follow_acks(self, session_id: str, end: HostEnd, acks: list[Ack]) -> None:
        if not acks:
            return
        by_status: dict[str, list[int]] = {}
        for ack in acks:
            by_status.setdefault(ack.status, []).append(ack.in_seq)
        finished = set(by_status.get("done", [])) | set(by_status.get("failed", []))
        by_status["taken"] = [s for s in by_status.get("taken", []) if s not in finished]
        if self.turn_changed is not None:
            if finished:
                self.turn_changed(session_id, False)
            if by_status["taken"]:
                self.turn_changed(session_id, True)
        for status, seqs in by_status.items():
            if not seqs or status not in ("taken", "done", "failed"):
                continue
            messages = end.messages(seqs)
            if status != "taken" and self.task_finished is not None:
                for m in messages:
                    if m.kind == "task":
                        self.task_finished(session_id, m.seq, status, end.reply_text(m.seq))
            for route, group in _by_route(messages).items():
                channel = self.channels.get(route.channel_type)
                if channel is None:
                    continue
                try:
                    if status == "taken":
                        await channel.set_typing(route, True)
                    else:
                        await channel.set_typing(route, False)
                        await channel.processed(route, [m.platform_message_id for m in group], status)
                except Exception as exc:
                    log.warning("channel.signal_failed", channel=route.channel_type, error=str(exc))

    async def _deliver(self, session_id: str, end: HostEnd, row: OutboundMessage) -> bool:
        """Deliver or finally record one row; False when the session must wait (transient error)."""
        session = self.sessions.get(session_id)
        channel_type = row.route.channel_type if row.route else "?"
        try:
            route, target_agent = acl.resolve(self.conn, session, row)
            if route is not None:
                channel_type = route.channel_type
            original = self._repeat_of(end, row)
            if original is not None:
                log.info("delivery.repeat_suppressed", session=session_id, seq=row.seq, kind=row.kind)
                end.record_delivery(row.seq, "repeat", original)
                return True
            channel = self.channels.get(route.channel_type) if route is not None else None
            if channel is not None and channel.confirms_sends:
                # The intent, so a crash right after the send is noticed and the channel asked whether it went
                # out. Where the channel cannot tell, the row is sent again either way: no commit for nothing.
                confirmed = await self._sent_before_a_crash(end, row, route, channel, session_id)
                if confirmed is not None:
                    end.record_delivery(row.seq, "sent", confirmed)
                    return True
                end.record_delivery(row.seq, "sending")
            outcome = await self.actions.perform(session, end, row, route, target_agent)
        except DestinationRefused as exc:
            log.warning("delivery.refused", session=session_id, seq=row.seq, kind=row.kind, reason=str(exc))
            end.record_delivery(row.seq, "refused", error=str(exc))
            self._answer_runner(end, row, f"Refused: {exc}")
            return True
        except ChannelUnavailable as exc:
            end.forget_intent(row.seq)
            return self._wait(session_id, channel_type, str(exc))
        except Exception as exc:
            log.error("delivery.failed", session=session_id, seq=row.seq, error=f"{type(exc).__name__}: {exc}")
            end.record_delivery(row.seq, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
            return True
        end.record_delivery(row.seq, "sent", outcome.platform_message_id)
        if row.kind == "system" and outcome.platform_message_id != DEFERRED:
            self._answer_runner(end, row, outcome.platform_message_id or "done")
        self.delivered_count += 1
        self._backoff.pop(session_id, None)
        log.debug("delivery.sent", session=session_id, seq=row.seq, kind=row.kind)
        return True

    @staticmethod
    def _repeat_of(end: HostEnd, row: OutboundMessage) -> str | None:
        """A turn run again after a crash that says again what an earlier run of it said (same text, same
        place): the person has it already. Returns the platform id it went out as (edits aim there)."""
        run = turn_of(row.id)
        if run is None or run[1] == 0 or row.kind not in REPEATABLE:
            return None  # a first run repeats nothing (most rows: no query)
        if row.payload.get("stream"):
            return None  # shown while it was written: the text is out again, and its stream needs finishing
        for earlier, sent_as in end.sent_earlier_in_turn(row, run[0]):
            if turn_of(earlier.id) != run and _same_message(earlier, row):
                return sent_as or ""
        return None

    async def _sent_before_a_crash(self, end: HostEnd, row: OutboundMessage, route: Route | None,
                                   channel: Channel, session_id: str) -> str | None:
        prior = end.delivery(row.seq)
        if prior is None or prior["status"] != "sending" or route is None:
            return None
        found = await channel.already_sent(route, delivery_id(session_id, row.id))
        log.info("delivery.crash_recovery", seq=row.seq, confirmed=found is not None)
        return found

    def answer_later(self, session_id: str, request_id: str, text: str) -> None:
        """The answer to a system action whose handler returned DEFERRED (the tool still waits for it)."""
        end = self.sessions.end(session_id)
        end.append(id=f"reply:{request_id}", kind="system", text=text, trigger=False, payload={"reply_to": request_id})
        end.ring()

    @staticmethod
    def _answer_runner(end: HostEnd, row: OutboundMessage, text: str) -> None:
        """A system action's result goes back to the waiting tool as an inbound row."""
        request_id = row.payload.get("request_id") if row.kind == "system" else None
        if not isinstance(request_id, str):
            return
        end.append(id=f"reply:{request_id}", kind="system", text=text, trigger=False,
                   payload={"reply_to": request_id})
        end.ring()

    def _wait(self, session_id: str, channel_type: str, why: str) -> bool:
        delay = min(self._backoff.get(session_id, RETRY_FIRST / 2) * 2, RETRY_MAX)
        self._backoff[session_id] = delay
        self._waiting[session_id] = channel_type
        log.info("delivery.deferred", session=session_id, channel=channel_type, retry_in=delay, why=why)

        def retry() -> None:
            self._retry.pop(session_id, None)
            self._waiting.pop(session_id, None)
            self.kick(session_id)

        old = self._retry.pop(session_id, None)
        if old:
            old.cancel()
        self._retry[session_id] = asyncio.get_running_loop().call_later(delay, retry)
        return False

    async def say(self, message: OutgoingMessage) -> str | None:
        """A message from the host itself; kept in memory and retried when its channel cannot take it now.

        Returns its platform message id when it went out now (to edit it later)."""
        channel = self.channels.get(message.route.channel_type)
        if channel is None:
            if self.connecting(message.route.channel_type):  # sent by channel_ready once it is connected
                host_outbox.keep(self.conn, message)
                log.info("host_message.deferred", channel=message.route.channel_type)
            else:
                log.warning("host_message.no_channel", channel=message.route.channel_type)
            return None
        card = message
        if not channel.capabilities.cards and message.buttons:
            message = OutgoingMessage(route=message.route, kind="system", text=render_text(message), id=message.id)
        try:
            result = (await channel.send(message)).platform_message_id
        except ChannelUnavailable:
            host_outbox.keep(self.conn, message)  # in the DB: a card survives a host restart too
            log.info("host_message.deferred", channel=message.route.channel_type)
            return None
        except Exception as exc:
            log.warning("host_message.failed", channel=message.route.channel_type, error=str(exc))
            return None
        host_outbox.sent(self.conn, message.id)
        if card.card_id and self.card_posted is not None:  # now, or later from the host outbox: closed the same
            self.card_posted(card, result)
        return result

    async def edit_host_message(self, route: Route, platform_message_id: str, text: str) -> None:
        """Change a host message (a card that expired); a new message where the channel cannot edit."""
        channel = self.channels.get(route.channel_type)
        if channel is None:
            return
        try:
            if channel.capabilities.edits:
                await channel.edit(route, platform_message_id, text)
            else:
                await channel.send(OutgoingMessage(route=route, kind="system", text=text,
                                                   id=f"edit-{platform_message_id}"))
        except Exception as exc:
            log.warning("host_message.edit_failed", channel=route.channel_type, error=str(exc))

    async def flush_host_outbox(self, channel_type: str) -> None:
        """Send the host messages that waited for this channel, oldest first; stop at the first that waits again."""
        self._flushing.add(channel_type)
        try:
            for message in host_outbox.waiting(self.conn, channel_type):
                await self.say(message)
                if message.id in {m.id for m in host_outbox.waiting(self.conn, channel_type)}:
                    break  # still unavailable: the next channel_ready tries again
        finally:
            self._flushing.discard(channel_type)

    async def notify_failure(self, session_id: str, messages: list[InboundMessage], reason: str) -> None:
        """Tell the person the host gave up on their messages (not through the runner: it is failing)."""
        for route, group in _by_route(messages).items():
            channel = self.channels.get(route.channel_type)
            text = f"⚠️ Sorry, I could not process your message after {group[-1].attempts} attempts: {reason}."
            if channel is None:  # still connecting: the notice waits for it
                await self.say(OutgoingMessage(route=route, kind="system", text=text, id=f"fail-{group[-1].id}"))
                continue
            try:
                await channel.set_typing(route, False)
                await channel.send(OutgoingMessage(route=route, kind="system", text=text, id=f"fail-{group[-1].id}"))
                await channel.processed(route, [m.platform_message_id for m in group], "failed")
            except Exception as exc:
                log.warning("delivery.notify_failed", session=session_id, error=str(exc))

    async def stop(self) -> None:
        for handle in self._retry.values():
            handle.cancel()
        tasks = list(self._running.values())
        if tasks:
            await asyncio.wait(tasks, timeout=5)


def _same_message(a: OutboundMessage, b: OutboundMessage) -> bool:
    """The same text (and card, or file name) to the same place; a file's folder differs between runs."""
    def content(row: OutboundMessage) -> tuple[object, ...]:
        payload = dict(row.payload)
        if isinstance(payload.get("file"), str):
            payload["file"] = payload["file"].rsplit("/", 1)[-1]
        return row.kind, row.to_name, row.route, row.text, payload

    return content(a) == content(b)


def _by_route(messages: list[InboundMessage]) -> dict[Route, list[InboundMessage]]:
    out: dict[Route, list[InboundMessage]] = {}
    for m in messages:
        if m.route is not None:
            out.setdefault(m.route, []).append(m)
    return out
