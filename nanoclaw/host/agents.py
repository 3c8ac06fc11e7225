"""Agent swarms: agents created from chat, and messages between agents.

Session sY of agent Y writes to `agent:X`: the message lands in X's session for
the chat ("agent", sY), whose route is that chat, so X's answer comes back
through the ACL like any reply and is injected into sY as a new triggering
message (sY's own route is left alone: Y still answers its person). A hop
counter stops two agents from talking forever.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Awaitable, Callable

from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, approvals, destinations, messaging_groups
from nanoclaw.db.approvals import Approval
from nanoclaw.db import sessions as session_rows
from nanoclaw.db.sessions import Session
from nanoclaw.errors import ConfigError, DestinationRefused
from nanoclaw.host.sessions import SessionManager
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route
from nanoclaw.safefs import UnsafePath

log = get_logger("nanoclaw.host.agents")
AGENT_CHANNEL = "agent"
MAX_HOPS = 8
MAX_INSTRUCTIONS = 20_000


class AgentRelay:
    def __init__(
        self, settings: Settings, conn: sqlite3.Connection, sessions: SessionManager,
        wake: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.sessions = sessions
        self.wake = wake

    def create_agent(self, creator_session_id: str, agent_id: str, name: str, instructions: str,
                     approved: bool = False) -> str:
        """Create agent group `agent_id` and destinations both ways; returns a status for the creator.

        The admin group may; another group only with the owner's approval (AgentRequests)."""
        creator = self.sessions.get(creator_session_id).agent_group_id
        group = agent_groups.get(self.conn, creator)
        if group is None or not (group.is_admin or approved):
            raise DestinationRefused("only the admin agent group may create agents without the owner's approval")
        # Never into an existing group: re-creating one would write the caller's instructions into its folder.
        if agent_groups.get(self.conn, agent_id) is not None:
            raise DestinationRefused(f"agent group {agent_id!r} already exists; choose a new id (an agent cannot "
                                     "be created twice, and an existing one is changed by editing its memory)")
        try:
            agent_groups.validate_id(agent_id)
            agent_groups.create(self.conn, agent_id, name[:100] or agent_id)
        except ConfigError as exc:
            raise DestinationRefused(str(exc)) from exc
        try:
            self.sessions.folders.create_group(agent_id, name[:100] or agent_id, instructions[:MAX_INSTRUCTIONS])
        except (UnsafePath, OSError) as exc:
            self.conn.execute("DELETE FROM agent_groups WHERE id = ?", (agent_id,))
            log.error("agent.folder_refused", agent=agent_id, error=str(exc))
            raise DestinationRefused(f"agent {agent_id} was not created: {exc}") from exc
        destinations.add_agent(self.conn, creator, f"agent:{agent_id}", agent_id)
        destinations.add_agent(self.conn, agent_id, f"agent:{creator}", creator)
        self.sessions.refresh_destinations(creator)
        log.info("agent.created", agent=agent_id, by=creator)
        return f"agent {agent_id} created"

    async def send(self, from_session_id: str, target_group: str, text: str, hops: int, row_id: str) -> str:
        """Deliver `text` from a session to agent group `target_group`; returns the target session id."""
        if hops > MAX_HOPS:
            raise DestinationRefused(f"agents exchanged {MAX_HOPS} messages without a person; stopping the loop")
        source = self.sessions.get(from_session_id)
        if agent_groups.get(self.conn, target_group) is None:
            raise DestinationRefused(f"there is no agent {target_group!r}")
        chat = messaging_groups.upsert(self.conn, AGENT_CHANNEL, from_session_id, name=f"agent {source.agent_group_id}")
        target = self.sessions.resolve(target_group, chat.id, None, "shared")
        end = self.sessions.end(target.id)
        route = Route(AGENT_CHANNEL, from_session_id)
        end.append(id=f"agent:{row_id}", kind="chat", text=text, route=route, sender_id=f"agent:{source.agent_group_id}",
                   sender_name=f"agent {source.agent_group_id}", payload={"hops": hops})
        end.set_routing(route)
        session_rows.touch(self.conn, target)
        await self.wake(target.id)
        return target.id

    async def reply(self, from_session_id: str, to_session_id: str, text: str, hops: int, row_id: str) -> None:
        """An agent's answer goes back into the session that asked, as a new triggering message."""
        if hops > MAX_HOPS:
            raise DestinationRefused(f"agents exchanged {MAX_HOPS} messages without a person; stopping the loop")
        source = self.sessions.get(from_session_id)
        try:
            self.sessions.get(to_session_id)
        except KeyError:
            raise DestinationRefused(f"the asking session {to_session_id} no longer exists") from None
        end = self.sessions.end(to_session_id)
        # The id comes from the sender's row: resending after a host crash stores it once.
        end.append(id=f"agent:{row_id}", kind="chat", text=text, route=Route(AGENT_CHANNEL, from_session_id),
                   sender_id=f"agent:{source.agent_group_id}", sender_name=f"agent {source.agent_group_id}",
                   payload={"hops": hops})
        await self.wake(to_session_id)


class AgentRequests:
    """create_agent from a non-admin group: a card asks the owner; the admin group creates directly."""

    def __init__(self, conn: sqlite3.Connection, relay: AgentRelay, send_card: Callable[..., Awaitable[object]],
                 admin_route: Callable[[], Route | None]) -> None:
        self.conn = conn
        self.relay = relay
        self.send_card = send_card
        self.admin_route = admin_route

    async def request(self, session: Session, action: str, payload: dict[str, Any]) -> str:
        agent_id = str(payload.get("id", ""))
        name = str(payload.get("name") or agent_id)
        instructions = str(payload.get("instructions", ""))
        try:
            agent_groups.validate_id(agent_id)
        except ConfigError as exc:
            raise DestinationRefused(str(exc)) from exc
        if agent_groups.get(self.conn, agent_id) is not None:
            raise DestinationRefused(f"agent group {agent_id!r} already exists; choose a new id")
        group = agent_groups.get(self.conn, session.agent_group_id)
        if group is not None and group.is_admin:
            return self.relay.create_agent(session.id, agent_id, name, instructions)
        admin = self.admin_route()
        if admin is None:
            raise DestinationRefused("there is no admin chat to ask the owner in")
        approval = approvals.create(self.conn, "create_agent", session.agent_group_id,
                                    {"session": session.id, "id": agent_id, "name": name,
                                     "instructions": instructions[:MAX_INSTRUCTIONS]}, 24 * 3600)
        text = (f"Agent group {session.agent_group_id} wants to create an agent {agent_id!r} ({name}):\n"
                f"{instructions[:500]}\n(/approve {approval.id} · /deny {approval.id})")
        await self.send_card(admin, "New agent", text, ("Approve", "Deny"), approval.id)
        return f"Asked the owner to approve creating agent {agent_id} ({approval.id}); it does not exist yet."

    async def decide(self, approval: Approval, approve: bool) -> str:
        p = approval.payload
        if not approve:
            return f"Denied: {approval.subject} does not get agent {p.get('id')} ({approval.id})."
        try:
            result = self.relay.create_agent(str(p["session"]), str(p["id"]), str(p["name"]),
                                             str(p.get("instructions", "")), approved=True)
        except (DestinationRefused, KeyError) as exc:
            return f"Could not create it: {exc} ({approval.id})."
        return f"Approved ({approval.id}): {result} for {approval.subject}."
