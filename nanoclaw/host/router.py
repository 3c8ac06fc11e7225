"""Inbound events → messaging group → wirings → trigger → session → inbound.db → wake (DESIGN §2)."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Awaitable, Callable, Mapping

from nanoclaw.channels.base import Capabilities, InboundEvent, IngestResult
from nanoclaw.config import Settings
from nanoclaw.db import held_messages, messaging_groups, sessions, users, wirings
from nanoclaw.db.messaging_groups import LAST_SEEN_RESOLUTION, MessagingGroup
from nanoclaw.db.readcache import ReadCache
from nanoclaw.db.wirings import Wiring
from nanoclaw.host import commands
from nanoclaw.host.attachments import save_attachments
from nanoclaw.host.gatekeeper import Gatekeeper
from nanoclaw.host.newcomers import NewChats
from nanoclaw.host.owners import Owners
from nanoclaw.host.questions import QuestionDesk
from nanoclaw.host.sessions import SessionManager
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route, inbound_id

log = get_logger("nanoclaw.host.router")
QUARANTINE_NOTICE = ("⚠️ I could not read the earlier history of this conversation (its storage was damaged). "
                     "It was set aside for the owner to inspect, and we start fresh from here.")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def mention_pattern(word: str) -> re.Pattern[str]:
    """`@Andy` at a word boundary, any case: matches "@andy," but not "@Andyx" or "me@Andy"."""
    word = word.lstrip("@")
    return re.compile(rf"(?<![\w@.])@{re.escape(word)}(?![\w])", re.IGNORECASE)


def triggers(wiring: Wiring, event: InboundEvent, group: MessagingGroup, assistant_name: str) -> bool:
    if event.from_bot and not wiring.allow_bots:
        return False
    if group.is_dm or event.is_dm:
        return True
    if wiring.trigger == "always":
        return True
    if wiring.trigger == "dm":
        return False
    if wiring.trigger == "prefix":
        prefix = (wiring.trigger_value or "").lower()
        return bool(prefix) and event.text.lstrip().lower().startswith(prefix)
    return event.mentions_assistant or bool(mention_pattern(wiring.trigger_value or assistant_name).search(event.text))


def clean_text(text: str) -> str:
    """Drop control characters (binary junk) but keep tabs and newlines (CRLF/CR become LF); replace broken surrogates."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


class Router:
    def __init__(
        self,
        settings: Settings,
        conn: sqlite3.Connection,
        sessions: SessionManager,
        wake: Callable[[str], Awaitable[None]],
        capabilities: Mapping[str, Capabilities],
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.reads = ReadCache(conn)  # the chat, its wirings, questions and sessions: read on every message
        self.sessions = sessions
        self.wake = wake
        self.capabilities = capabilities
        self.questions: QuestionDesk | None = None
        self.gate: Gatekeeper | None = None
        self.new_chats: NewChats | None = None  # unwired chats: held and asked about
        self.owners: Owners | None = None  # owner link codes
        self.host_commands: commands.HostCommands | None = None
        self.respond: Callable[[Route, str], Awaitable[None]] | None = None  # the host speaking in a chat

    def check(self, event: InboundEvent) -> str | None:
        """Why this event cannot be accepted, in words for the sender; None if it can."""
        size = len(event.text.encode("utf-8", "replace"))
        if size > self.settings.max_message_bytes:
            return (
                f"Your message is too large ({size / 1e6:.1f} MB); the limit is"
                f" {self.settings.max_message_bytes / 1e6:.1f} MB. Send it as a file instead."
            )
        if not clean_text(event.text).strip() and not event.files and not event.payload.get("attachments"):
            return "Your message is empty, so there is nothing to answer."
        return None

    async def receive(self, event: InboundEvent) -> IngestResult:
        try:
            return await self._receive(event)
        except sqlite3.OperationalError as exc:
            # Disk full, locked or read-only storage: refuse clearly, keep running; nothing committed is lost.
            log.error("message.store_failed", channel=event.channel_type, chat=event.platform_id, error=str(exc))
            return IngestResult(False, error=f"The assistant could not store your message ({exc}). Please try again later.")

    async def _receive(self, event: InboundEvent) -> IngestResult:
        problem = self.check(event)
        if problem:
            log.warning("message.rejected", channel=event.channel_type, chat=event.platform_id, reason=problem)
            return IngestResult(False, error=problem)
        text = clean_text(event.text)
        self.reads.look()
        now = time.time()
        # Looked up again (and last_seen refreshed) at least once per LAST_SEEN_RESOLUTION.
        group = self.reads.get(
            ("chat", event.channel_type, event.platform_id, event.chat_name, event.is_dm,
             int(now // LAST_SEEN_RESOLUTION)),
            lambda: messaging_groups.upsert(
                self.conn, event.channel_type, event.platform_id, name=event.chat_name, is_dm=event.is_dm
            ),
        )
        if (group.is_dm or event.is_dm) and group.dm_user_id is None:  # who this direct chat is with
            person = users.upsert(self.conn, event.channel_type, event.sender_id, event.sender_name)
            messaging_groups.set_dm_user(self.conn, group.id, person.id)
        if self.owners is not None and await self.owners.redeem(group, event):
            return IngestResult(True)
        if self.questions is not None:
            questions = self.questions
            open_question = next((q for q in self.reads.get(("questions", group.id),
                                                            lambda: questions.open_questions(group.id))
                                  if q.expires_at > now), None)
            same_thread = open_question is not None and (open_question.thread_id or None) == (
                event.thread_id if self.capabilities.get(event.channel_type, Capabilities()).threads else None
            )
            if open_question is not None and same_thread and not text.startswith("/"):
                error = await self.questions.answer(
                    open_question.id, self.questions.interpret(open_question, text), event.sender_id
                )
                return IngestResult(error is None, (open_question.session_id,), triggered=True, error=error)
        wired = self.reads.get(("wirings", group.id), lambda: wirings.for_messaging_group(self.conn, group.id))
        if not wired:
            if self.new_chats is not None:
                return await self.new_chats.arrive(group, event)
            log.info("chat.unwired", channel=event.channel_type, chat=event.platform_id)
            return IngestResult(True)
        if self.new_chats is not None and self.reads.get(("held", group.id),
                                                         lambda: held_messages.count(self.conn, group.id)):
            await self.new_chats.release(group.id)  # wired since (e.g. `nanoclaw groups wire`): the older first
        if self.gate is not None:
            verdict = await self.gate.admit(group, event)
            if verdict != "pass":
                return IngestResult(True)  # held for the owner, or dropped: the sender is not told
        command = commands.parse(text)
        if command is not None and not commands.may_use(self.conn, group, event.sender_id, command):
            return IngestResult(False, error=f"Only the owner or an admin may use /{command.name} in this chat.")
        caps = self.capabilities.get(event.channel_type, Capabilities())
        thread = event.thread_id if caps.threads else None
        if command is not None and command.by_host and self.host_commands is not None:
            reply = await self.host_commands.answer(group, event.sender_id, command, thread)
            if self.respond is not None and reply:
                await self.respond(Route(event.channel_type, event.platform_id, thread), reply)
            return IngestResult(True, reply=reply)
        touched: list[str] = []
        to_wake: list[str] = []
        for wiring in wired:
            fired = triggers(wiring, event, group, self.settings.assistant_name)
            session = self.reads.get(
                ("session", wiring.agent_group_id, group.id, thread, wiring.session_mode),
                lambda: self.sessions.resolve(wiring.agent_group_id, group.id, thread, wiring.session_mode),
            )
            end = self.sessions.end(session.id)
            if session.id in self.sessions.quarantined and self.respond is not None:
                self.sessions.quarantined.discard(session.id)
                await self.respond(Route(event.channel_type, event.platform_id, thread), QUARANTINE_NOTICE)
            as_command = command is not None and fired
            payload = dict(event.payload)
            if event.files:
                payload["attachments"] = save_attachments(end.tree, event.message_id, event.files)
            if as_command and command:
                payload["command"] = command.name
            with end.transaction():  # the row and the reply address: one commit
                seq = end.append(
                    id=inbound_id(event.channel_type, event.platform_id, event.message_id),
                    kind="system" if as_command else "chat",
                    text=text,
                    trigger=fired,
                    route=Route(event.channel_type, event.platform_id, thread),
                    sender_id=event.sender_id,
                    sender_name=event.sender_name,
                    payload=payload or None,
                )
                if seq is not None and fired:
                    reply_thread = thread if wiring.response_scope == "thread" else None
                    end.set_routing(Route(event.channel_type, event.platform_id, reply_thread))
            if seq is None:  # the platform delivered this message before
                continue
            touched.append(session.id)
            if fired:
                sessions.touch(self.conn, session)
                to_wake.append(session.id)
            log.debug("message.stored", session=session.id, seq=seq, trigger=fired)
        for session_id in to_wake:
            await self.wake(session_id)
        return IngestResult(True, tuple(touched), triggered=bool(to_wake))
