"""Sender policy per chat (open, allowlist, ask) and the owner's approvals of unknown senders.

With `ask`, an unknown sender's first message is held and a card goes to the
admin chat (Approve / Deny, id `oa-…`, 24 h expiry); on approval the held
messages are routed as if just received. Nothing from a denied sender reaches
an agent.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from typing import Awaitable, Callable

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db import approvals, messaging_groups, users, wirings
from nanoclaw.db.approvals import Approval
from nanoclaw.db.messaging_groups import MessagingGroup
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.gatekeeper")
APPROVAL_TTL = 24 * 3600.0

Card = Callable[[Route, str, str, tuple[str, ...], str], Awaitable[None]]  # route, title, text, buttons, card id


class Gatekeeper:
    def __init__(self, conn: sqlite3.Connection, send_card: Card, reroute: Callable[[InboundEvent], Awaitable[object]]) -> None:
        self.conn = conn
        self.send_card = send_card
        # What an approval of each kind does; other components add theirs (e.g. install_packages).
        self.deciders: dict[str, Callable[[Approval, bool], Awaitable[str]]] = {"sender": self._decide_sender}
        self.reroute = reroute
        self.closed: Callable[[str, str], Awaitable[None]] | None = None  # (card id, outcome): CardBoard.close

    async def admit(self, chat: MessagingGroup, event: InboundEvent) -> str:
        """'pass', 'held' (waiting for the owner) or 'dropped'."""
        if chat.sender_policy == "open":
            return "pass"
        user = users.upsert(self.conn, event.channel_type, event.sender_id, event.sender_name)
        standing = users.standing(self.conn, chat.id, user)
        if standing in ("trusted", "allowed"):
            return "pass"
        if standing == "denied" or chat.sender_policy == "allowlist":
            log.info("sender.dropped", chat=chat.id, user=user.id, policy=chat.sender_policy, standing=standing)
            return "dropped"
        subject = f"{chat.id}:{user.id}"
        held = approvals.open_for(self.conn, "sender", subject)
        if held is not None:
            payload = held.payload
            payload["events"] = [*payload.get("events", []), asdict(event)][-20:]
            approvals.set_payload(self.conn, held.id, payload)
            return "held"
        approval = approvals.create(self.conn, "sender", subject,
                                    {"chat": chat.id, "user": user.id, "events": [asdict(event)]}, APPROVAL_TTL)
        log.info("sender.approval_requested", approval=approval.id, chat=chat.id, user=user.id)
        admin = self.admin_route()
        if admin is not None:
            who = event.sender_name or event.sender_id
            where = chat.name or f"{chat.channel_type}:{chat.platform_id}"
            text = (f"{who} ({event.channel_type}:{event.sender_id}) wrote in {where} for the first time. "
                    f"Let them talk to the assistant there? (or /approve {approval.id} · /deny {approval.id})")
            await self.send_card(admin, "New sender", text, ("Approve", "Deny"), approval.id)
        return "held"

    def admin_route(self) -> Route | None:
        """Where the owner is asked: the admin group's most recently wired direct chat, the terminal last
        (its messages wait for an open `nanoclaw chat`; on a fresh install that leaves the web chat)."""
        wired = wirings.for_agent_group(self.conn, "main")
        found = [c for c in (messaging_groups.get(self.conn, w.messaging_group_id) for w in wired) if c is not None]
        found.sort(key=lambda c: (c.is_dm, c.channel_type != "terminal", c.id))
        return Route(found[-1].channel_type, found[-1].platform_id) if found else None

    async def decide(self, approval_id: str, approve: bool, by: str, who: str | None = None) -> str:
        """Apply the owner's decision (`by`: their id; `who`: a name for the card); returns what happened."""
        approval = approvals.decide(self.conn, approval_id, "approved" if approve else "denied", by)
        if approval is None:
            return f"{approval_id} is not open (already decided, expired or unknown)."
        if self.closed is not None:
            who = who or by
            await self.closed(approval_id, f"✅ Approved by {who}" if approve else f"❌ Denied by {who}")
        decider = self.deciders.get(approval.kind)
        if decider is None:
            return f"{approval_id} is a {approval.kind} request, which this host does not handle."
        return await decider(approval, approve)

    async def _decide_sender(self, approval: Approval, approve: bool) -> str:
        approval_id = approval.id
        chat_id, user_id = int(approval.payload["chat"]), int(approval.payload["user"])
        if not approve:
            users.deny(self.conn, chat_id, user_id)
            log.info("sender.denied", approval=approval_id, chat=chat_id, user=user_id)
            return f"Denied: nothing from this sender will reach the assistant in that chat ({approval_id})."
        users.allow(self.conn, chat_id, user_id)
        log.info("sender.approved", approval=approval_id, chat=chat_id, user=user_id)
        for raw in approval.payload.get("events", []):
            await self.reroute(InboundEvent(**raw))
        return f"Approved ({approval_id}); their waiting message{'s' if len(approval.payload.get('events', [])) > 1 else ''} went through."
