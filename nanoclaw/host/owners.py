"""One owner, many accounts: a one-time code sent from any chat app makes that account an owner identity.

`nanoclaw owner link` (or the dashboard) makes the code; the owner sends it to
the assistant from Telegram, Slack, email… The account becomes an owner (it
may answer approval cards and use /approve from any chat), and a direct chat
it came from that nobody wired is wired to `main`, so the owner talks to the
assistant there at once and cards reach them there (gatekeeper.admin_route).
The message holding the code never reaches an agent.
"""

from __future__ import annotations

import sqlite3
from typing import Awaitable, Callable

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db import approvals, messaging_groups, owner_links, users, wirings
from nanoclaw.db.messaging_groups import MessagingGroup
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.owners")


class Owners:
    def __init__(self, conn: sqlite3.Connection, say: Callable[[Route, str], Awaitable[None]],
                 release: Callable[[int], Awaitable[int]]) -> None:
        self.conn = conn
        self.say = say
        self.release = release  # what waited in the chat (it wrote before the code) is answered once wired

    async def redeem(self, chat: MessagingGroup, event: InboundEvent) -> bool:
        """True when `event` was a valid owner link code (used up now); the sender is then an owner."""
        code = owner_links.normalise(event.text) if len(event.text) < 40 and not event.from_bot else None
        if code is None or not owner_links.redeem(self.conn, code, f"{event.channel_type}:{event.sender_id}"):
            return False
        user = users.upsert(self.conn, event.channel_type, event.sender_id, event.sender_name, role="owner")
        log.info("owner.linked", channel=event.channel_type, user=user.id)
        route = Route(event.channel_type, event.platform_id, event.thread_id)
        wired_now = False
        if (chat.is_dm or event.is_dm) and not wirings.for_messaging_group(self.conn, chat.id):
            wirings.wire(self.conn, chat.id, "main", trigger="dm", session_mode="shared")
            messaging_groups.set_admission(self.conn, chat.id, None)
            for pending in approvals.all_open_for(self.conn, "new_chat", str(chat.id)):
                approvals.decide(self.conn, pending.id, "approved", "owner link")
            wired_now = True
        name = event.sender_name or event.sender_id
        text = (f"Linked: {name} on {event.channel_type} is now an owner of this assistant. Approval cards come "
                "here and you can answer them from any of your linked accounts.")
        if wired_now:
            text += " This chat now talks to the main agent."
        await self.say(route, text)
        if wired_now:
            await self.release(chat.id)
        return True

    def may_decide(self, channel_type: str | None, sender_id: str) -> bool:
        """Whether `sender_id` on `channel_type` is an owner or admin (any linked account counts)."""
        if channel_type is None:
            return False
        return users.may_decide(users.find(self.conn, channel_type, sender_id))


def identities(conn: sqlite3.Connection) -> list[users.User]:
    """Owner and admin identities, and blocked people: what `nanoclaw owner list` and the dashboard show."""
    return [u for role in ("owner", "admin", "blocked") for u in users.with_role(conn, role)]


def unlink(conn: sqlite3.Connection, channel_type: str, platform_user_id: str) -> users.User | None:
    """Make an owner or admin identity a plain member again; None if there is no such identity."""
    user = users.find(conn, channel_type, platform_user_id)
    if user is None or not users.may_decide(user):
        return None
    users.set_role(conn, user.id, "member")
    log.info("owner.unlinked", channel=channel_type, user=user.id)
    return user
