"""Sender policy per chat (open, allowlist, ask) and the owner's approvals of unknown senders.

With `ask`, an unknown sender's first message is held and a card goes to the
admin chat (Approve / Deny, id `oa-…`, 24 h expiry); on approval the held
messages are routed as if just received. Nothing from a denied sender reaches
an agent.
"""

from __future__ import annotations

import sqlite3
from typing import Awaitable, Callable

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db import approvals, held_messages, messaging_groups, users, wirings
from nanoclaw.db.approvals import Approval
from nanoclaw.db.messaging_groups import MessagingGroup
from nanoclaw.db.readcache import ReadCache
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.gatekeeper")
APPROVAL_TTL = 24 * 3600.0

Card = Callable[[Route, str, str, tuple[str, ...], str], Awaitable[None]]  # route, title, text, buttons, card id


class Gatekeeper:
    def __init__(self, conn: sqlite3.Connection, send_card: Card, reroute: Callable[[InboundEvent], Awaitable[object]],
                 reads: ReadCache | None = None) -> None:
        self.conn = conn
        # The router's cache of central-DB reads (looked at once per message): who a sender is, on every message.
        self.reads = reads
        self.send_card = send_card
        # What an approval of each kind does; other components add theirs (e.g. install_packages).
        self.deciders: dict[str, Callable[[Approval, bool], Awaitable[str]]] = {"sender": self._decide_sender}
        # Kinds whose card offers more than yes/no (a new chat: which agent, ignore, block): given the choice.
        self.choosers: dict[str, Callable[[Approval, str], Awaitable[str]]] = {}
        self.reroute = reroute
        self.closed: Callable[[str, str], Awaitable[None]] | None = None  # (card id, outcome): CardBoard.close

    async def admit(self, chat: MessagingGroup, event: InboundEvent) -> str:
        """'pass', 'held' (waiting for the owner) or 'dropped'. A blocked person is dropped in every chat."""
        if chat.sender_policy == "open":
            def find() -> users.User | None:
                return users.find(self.conn, event.channel_type, event.sender_id)

            known = self.reads.get(("sender", event.channel_type, event.sender_id), find) if self.reads else find()
            if known is not None and known.role == "blocked":
                log.info("sender.dropped", chat=chat.id, user=known.id, policy="open", standing="blocked")
                return "dropped"
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
            payload["events"] = [*payload.get("events", []), held_messages.encode(event)][-20:]
            approvals.set_payload(self.conn, held.id, payload)
            return "held"
        approval = approvals.create(self.conn, "sender", subject,
                                    {"chat": chat.id, "user": user.id, "events": [held_messages.encode(event)]},
                                    APPROVAL_TTL)
        log.info("sender.approval_requested", approval=approval.id, chat=chat.id, user=user.id)
        admin = self.admin_route()
        if admin is not None:
            who = event.sender_name or event.sender_id
            where = chat.name or f"{chat.channel_type}:{chat.platform_id}"
            text = (f"{who} ({event.channel_type}:{event.sender_id}) wrote in {where} for the first time: "
                    f"“{first_line(event.text)}”. Let them talk to the assistant there? "
                    f"(or /approve {approval.id} · /deny {approval.id})")
            await self.send_card(admin, "New sender", text, ("Approve", "Deny"), approval.id)
        return "held"

    def admin_route(self) -> Route | None:
        """Where the owner is asked: a chat wired to the admin group `main` that an owner can answer from.

        First a direct chat with a linked owner identity (`nanoclaw owner link`), then the most recently wired
        direct chat whose person is not known to be someone else, the terminal last (its messages wait for an
        open `nanoclaw chat`; on a fresh install that leaves the web chat). A direct chat with a person who is
        not an owner or admin is never chosen while another exists: they could not answer the card.
        """
        wired = wirings.for_agent_group(self.conn, "main")
        found = [c for c in (messaging_groups.get(self.conn, w.messaging_group_id) for w in wired) if c is not None]
        if not found:
            return None

        def rank(chat: MessagingGroup) -> tuple[int, bool, bool, int]:
            person = users.get(self.conn, chat.dm_user_id) if chat.dm_user_id is not None else None
            answerable = 1 if person is None else 2 if users.may_decide(person) else 0
            return (answerable, chat.is_dm, chat.channel_type != "terminal", chat.id)

        best = max(found, key=rank)
        return Route(best.channel_type, best.platform_id)

    async def decide(self, approval_id: str, approve: bool, by: str, choice: str = "", who: str | None = None) -> str:
        """Apply the owner's decision (`by`: their id; `who`: a name for the card); returns what happened, for
        the owner. `choice`: the button pressed or what followed `/approve oa-…` (kinds with more than yes/no)."""
        approval = approvals.decide(self.conn, approval_id, "approved" if approve else "denied", by)
        if approval is None:
            return f"{approval_id} is not open (already decided, expired or unknown)."
        chooser = self.choosers.get(approval.kind)
        if chooser is not None:
            outcome = await chooser(approval, choice or ("approve" if approve else "deny"))
        elif (decider := self.deciders.get(approval.kind)) is not None:
            outcome = await decider(approval, approve)
        else:
            return f"{approval_id} is a {approval.kind} request, which this host does not handle."
        still = approvals.get(self.conn, approval_id)
        if self.closed is not None and (still is None or still.status != "open"):  # a chooser may reopen it
            who = who or by
            if chooser is not None and choice:
                mark = "❌" if choice.strip().lower() in ("deny", "no", "ignore", "block") else "✅"
                await self.closed(approval_id, f"{mark} {who}: {choice.strip()}")
            else:
                await self.closed(approval_id, f"✅ Approved by {who}" if approve else f"❌ Denied by {who}")
        return outcome

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
            await self.reroute(held_messages.decode(raw))
        return f"Approved ({approval_id}); their waiting message{'s' if len(approval.payload.get('events', [])) > 1 else ''} went through."


def first_line(text: str, limit: int = 120) -> str:
    """The start of a message for a card: its lines joined with · (a mail's subject and first sentence), shortened."""
    line = " · ".join(ln.strip() for ln in text.splitlines() if ln.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"
