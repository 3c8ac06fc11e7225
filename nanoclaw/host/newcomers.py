"""Chats nobody wired: asked about, not ignored.

When a chat that is not wired to any agent group writes, its messages are held
and the owner gets a card (in the admin chat and on the dashboard): who wrote,
where, the first line, and the choices — answer with `main`, with another
agent group, ignore the chat, block the person. "Answer" wires the chat and
routes the held messages in order (the router stores each platform message id
once, so none is answered twice); ignore and block are remembered.

Each channel has a default (`channel_settings.new_chats`): `ask` (the card),
`main` (direct chats are answered by main at once; group chats are asked
about), `pairing` (a stranger in a direct chat gets a code, see pairing.py) or
`ignore`. Robots (automated mail, other bots) never raise a card.
"""

from __future__ import annotations

import sqlite3
from typing import Awaitable, Callable

from nanoclaw.channels.base import InboundEvent, IngestResult
from nanoclaw.db import agent_groups, approvals, channel_settings, held_messages, messaging_groups, users, wirings
from nanoclaw.db.approvals import Approval
from nanoclaw.db.messaging_groups import MessagingGroup
from nanoclaw.host.gatekeeper import first_line
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.newcomers")
CARD_TTL = 7 * 24 * 3600.0  # the held messages outlive the card: a later message asks again
OTHER_GROUPS_ON_CARD = 2  # buttons for agent groups besides main (the rest: /approve oa-… GROUP)

Card = Callable[[Route, str, str, tuple[str, ...], str], Awaitable[object]]
Say = Callable[[Route, str], Awaitable[None]]


class NewChats:
    def __init__(self, conn: sqlite3.Connection, send_card: Card, route: Callable[[InboundEvent], Awaitable[object]],
                 admin_route: Callable[[], Route | None]) -> None:
        self.conn = conn
        self.send_card = send_card
        self.route = route  # the router: a released message is received again, now wired
        self.admin_route = admin_route
        # The pairing desk, for channels whose default is `pairing` (set by the host).
        self.pair: Callable[[MessagingGroup, users.User, InboundEvent], Awaitable[IngestResult]] | None = None
        self._releasing: set[int] = set()  # a released message is routed again: do not release it twice

    async def arrive(self, chat: MessagingGroup, event: InboundEvent) -> IngestResult:
        """A message in an unwired chat: hold and ask, answer with main, start pairing, or record it only."""
        if chat.admission is not None:
            log.info("chat.unwired", channel=chat.channel_type, chat=chat.platform_id, admission=chat.admission)
            return IngestResult(True)
        user = users.upsert(self.conn, event.channel_type, event.sender_id, event.sender_name)
        if user.role == "blocked" or event.from_bot:
            log.info("chat.unwired", channel=chat.channel_type, chat=chat.platform_id,
                     why="blocked" if user.role == "blocked" else "robot")
            return IngestResult(True)
        policy = channel_settings.new_chats(self.conn, chat.channel_type)
        if policy == "ignore":
            log.info("chat.unwired", channel=chat.channel_type, chat=chat.platform_id, why="ignored by default")
            return IngestResult(True)
        dm = chat.is_dm or event.is_dm
        if dm and policy == "main":
            log.info("new_chat.answered_by_default", channel=chat.channel_type, chat=chat.platform_id)
            wire_chat(self.conn, chat, "main", user)
            await self.route(event)
            return IngestResult(True, triggered=True)
        if dm and policy == "pairing" and self.pair is not None:
            return await self.pair(chat, user, event)
        if not held_messages.hold(self.conn, chat.id, event):
            log.warning("new_chat.held_full", chat=chat.id, limit=held_messages.MAX_PER_CHAT)
            return IngestResult(True)
        if approvals.open_for(self.conn, "new_chat", str(chat.id)) is None:
            await self._ask(chat, user, event)
        return IngestResult(True)

    async def _ask(self, chat: MessagingGroup, user: users.User, event: InboundEvent) -> None:
        who = event.sender_name or event.sender_id
        where = "a direct message" if chat.is_dm or event.is_dm else (chat.name or "a group chat")
        approval = approvals.create(self.conn, "new_chat", str(chat.id),
                                    {"chat": chat.id, "user": user.id, "who": who, "where": where,
                                     "first_line": first_line(event.text)}, CARD_TTL)
        log.info("new_chat.asked", approval=approval.id, chat=chat.id, channel=chat.channel_type)
        admin = self.admin_route()
        if admin is None:
            return
        others = [g.id for g in agent_groups.list_all(self.conn) if g.id != "main"][:OTHER_GROUPS_ON_CARD]
        buttons = ("Answer with main", *(f"Answer with {g}" for g in others), "Ignore", "Block")
        text = (f"{who} ({chat.channel_type}:{event.sender_id}) wrote to the assistant in {where} on "
                f"{chat.channel_type} ({chat.channel_type}:{chat.platform_id}): “{first_line(event.text)}”. "
                f"Answer them? (or /approve {approval.id} · /approve {approval.id} GROUP · /deny {approval.id})")
        await self.send_card(admin, "New chat", text, buttons, approval.id)

    async def choose(self, approval: Approval, choice: str) -> str:
        """The owner's answer from the card, a command or the dashboard."""
        chat = messaging_groups.get(self.conn, int(approval.payload["chat"]))
        if chat is None:
            return f"{approval.id}: that chat no longer exists."
        action, group = parse_choice(choice)
        name = f"{chat.channel_type}:{chat.platform_id}"
        if action == "answer":
            if agent_groups.get(self.conn, group) is None:
                approvals.reopen(self.conn, approval.id)
                return f"There is no agent group {group!r}; {approval.id} is still open (see nanoclaw groups)."
            person = users.get(self.conn, int(approval.payload["user"]))
            released = await self.answer(chat, group, person)
            log.info("new_chat.answered", approval=approval.id, chat=chat.id, group=group, released=released)
            return (f"Answered ({approval.id}): {name} is now wired to {group}; "
                    f"{released} waiting message{'s' * (released != 1)} went through.")
        if action == "block":
            self.block(chat, users.get(self.conn, int(approval.payload["user"])))
            return f"Blocked ({approval.id}): nothing from {approval.payload.get('who')} reaches the assistant."
        self.ignore(chat)
        return f"Ignored ({approval.id}): {name} is not answered (wire it later with nanoclaw groups wire {name} main)."

    async def answer(self, chat: MessagingGroup, group: str, person: users.User | None) -> int:
        """Wire the chat to `group` and route what waited, oldest first; returns how many went through."""
        wire_chat(self.conn, chat, group, person)
        return await self.release(chat.id)

    async def release(self, chat_id: int) -> int:
        """Route a wired chat's held messages; each is removed only after the router took it (a crash in
        between routes it again at the next start, and the router drops the repeat)."""
        if chat_id in self._releasing:
            return 0
        self._releasing.add(chat_id)
        released = 0
        try:
            for row_id, event in held_messages.waiting(self.conn, chat_id):
                await self.route(event)
                held_messages.release(self.conn, row_id)
                released += 1
        finally:
            self._releasing.discard(chat_id)
        return released

    async def release_all(self) -> int:
        """At startup: what waited for chats wired since (e.g. `nanoclaw pairing approve` while stopped)."""
        total = 0
        for chat_id in held_messages.chats(self.conn):
            if wirings.for_messaging_group(self.conn, chat_id):
                total += await self.release(chat_id)
            else:
                chat = messaging_groups.get(self.conn, chat_id)
                if chat is not None and chat.admission is not None:
                    held_messages.drop(self.conn, chat_id)
        return total

    def ignore(self, chat: MessagingGroup) -> None:
        messaging_groups.set_admission(self.conn, chat.id, "ignored")
        held_messages.drop(self.conn, chat.id)
        log.info("new_chat.ignored", chat=chat.id)

    def block(self, chat: MessagingGroup, person: users.User | None) -> None:
        """The chat is not answered, and the person (in a direct chat) is blocked in every chat."""
        messaging_groups.set_admission(self.conn, chat.id, "blocked")
        held_messages.drop(self.conn, chat.id)
        if person is not None and (chat.is_dm or not wirings.for_messaging_group(self.conn, chat.id)):
            if not users.may_decide(person):
                users.set_role(self.conn, person.id, "blocked")
        log.info("new_chat.blocked", chat=chat.id, user=person.id if person else None)


def wire_chat(conn: sqlite3.Connection, chat: MessagingGroup, group: str, person: users.User | None) -> None:
    """Answer a chat with `group`: wire it (a direct chat: every message, one session), let its person talk,
    and close other cards about it. What it held is routed by the caller (or at the next start)."""
    if chat.is_dm:
        wirings.wire(conn, chat.id, group, trigger="dm", session_mode="shared")
    else:
        wirings.wire(conn, chat.id, group)
    messaging_groups.set_admission(conn, chat.id, None)
    if person is not None:
        users.allow(conn, chat.id, person.id)
    for kind in ("new_chat", "pairing"):
        for other in approvals.all_open_for(conn, kind, str(chat.id)):
            approvals.decide(conn, other.id, "approved", "wired")


def parse_choice(choice: str) -> tuple[str, str]:
    """("answer", group) | ("ignore", "") | ("block", "") from a button label, a word after /approve, or the
    dashboard's value."""
    text = choice.strip()
    lowered = text.lower()
    if lowered in ("", "approve", "yes", "allow", "answer", "main", "answer with main"):
        return "answer", "main"
    if lowered.startswith("answer with "):
        return "answer", text[len("answer with "):].strip()
    if lowered in ("ignore", "deny", "no"):
        return "ignore", ""
    if lowered == "block":
        return "block", ""
    return "answer", text  # /approve oa-… family
