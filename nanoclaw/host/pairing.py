"""Pairing: a stranger in a direct chat gets a short code; the owner approves the code (the way OpenClaw users
know it, on channels whose new-chat default is `pairing`).

The code is 8 characters, uppercase, without look-alikes (0 O 1 I), and
expires after an hour. It is sent once per request: more messages from the
same person wait with the first and get no second code until it expired. At
most 3 requests wait per channel; more strangers are not answered until one is
decided or expires. The owner approves with `nanoclaw pairing approve CODE`,
the card's button, `/approve oa-…` or the dashboard; the chat is then wired to
`main` (or the group named) and what the person wrote is answered.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

from nanoclaw.channels.base import InboundEvent, IngestResult
from nanoclaw.db import approvals, held_messages, messaging_groups, owner_links, users
from nanoclaw.db.approvals import Approval
from nanoclaw.db.messaging_groups import MessagingGroup
from nanoclaw.host.gatekeeper import first_line
from nanoclaw.host.newcomers import Card, NewChats, Say
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.pairing")
CODE_TTL = 3600.0
MAX_PENDING = 3  # per channel


class Pairing:
    def __init__(self, conn: sqlite3.Connection, new_chats: NewChats, send_card: Card, say: Say,
                 admin_route: Callable[[], Route | None]) -> None:
        self.conn = conn
        self.new_chats = new_chats
        self.send_card = send_card
        self.say = say
        self.admin_route = admin_route

    async def request(self, chat: MessagingGroup, user: users.User, event: InboundEvent) -> IngestResult:
        """A stranger wrote in a direct chat: hold the message; a code the first time (per hour)."""
        if approvals.open_for(self.conn, "pairing", str(chat.id)) is not None:
            held_messages.hold(self.conn, chat.id, event)  # the code went out already: wait with the first
            return IngestResult(True)
        if len(self.pending(chat.channel_type)) >= MAX_PENDING:
            log.warning("pairing.capped", channel=chat.channel_type, chat=chat.id, limit=MAX_PENDING)
            return IngestResult(True)
        held_messages.hold(self.conn, chat.id, event)
        code = owner_links.new_code()
        who = event.sender_name or event.sender_id
        approval = approvals.create(self.conn, "pairing", str(chat.id),
                                    {"chat": chat.id, "user": user.id, "code": code, "who": who,
                                     "channel": chat.channel_type, "first_line": first_line(event.text)}, CODE_TTL)
        log.info("pairing.requested", approval=approval.id, channel=chat.channel_type, chat=chat.id)
        await self.say(Route(chat.channel_type, chat.platform_id),
                       f"Hi {who}! I only answer people my owner has approved. Your pairing code is {code}. "
                       f"Ask the owner to approve it (nanoclaw pairing approve {code}); it expires in 1 hour. "
                       "Your message waits and is answered once you are approved.")
        admin = self.admin_route()
        if admin is not None:
            text = (f"{who} ({chat.channel_type}:{event.sender_id}) asks to talk to the assistant in a direct "
                    f"message: “{first_line(event.text)}”. Pairing code {code}. "
                    f"(or nanoclaw pairing approve {code} · /approve {approval.id} · /deny {approval.id})")
            await self.send_card(admin, "Pairing request", text, ("Approve", "Deny"), approval.id)
        return IngestResult(True)

    def pending(self, channel_type: str | None = None) -> list[Approval]:
        return [a for a in approvals.open_of_kind(self.conn, "pairing")
                if channel_type is None or a.payload.get("channel") == channel_type]

    def by_code(self, code: str) -> Approval | None:
        return find_code(self.conn, code)

    async def choose(self, approval: Approval, choice: str) -> str:
        """Approve (wire the direct chat to main or the group named, answer what waited) or deny (ignore it)."""
        chat = messaging_groups.get(self.conn, int(approval.payload["chat"]))
        if chat is None:
            return f"{approval.id}: that chat no longer exists."
        if choice.strip().lower() in ("deny", "no", "ignore", "block"):
            if choice.strip().lower() == "block":
                self.new_chats.block(chat, users.get(self.conn, int(approval.payload["user"])))
            else:
                self.new_chats.ignore(chat)
            log.info("pairing.denied", approval=approval.id, chat=chat.id)
            return f"Denied ({approval.id}): {approval.payload.get('who')} is not answered."
        return await self.new_chats.choose(approval, choice)


def find_code(conn: sqlite3.Connection, code: str) -> Approval | None:
    """The open pairing request with this code (typed in any case, with or without a dash)."""
    wanted = owner_links.normalise(code) or code.strip().upper()
    return next((a for a in approvals.open_of_kind(conn, "pairing") if a.payload.get("code") == wanted), None)
