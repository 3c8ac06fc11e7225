"""Agent swarms: agents created from chat, and messages between agents.

Session sY of agent Y writes to `agent:X`: the message lands in X's session for
the chat ("agent", sY), whose route is that chat, so X's answer comes back
through the ACL like any reply and is injected into sY as a new triggering
message (sY's own route is left alone: Y still answers its person). A hop
counter stops two agents from talking forever.
"""

from __future__ import annotations

import sqlite3
from typing import Awaitable, Callable

from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, destinations, messaging_groups
from nanoclaw.db import sessions as session_rows
from nanoclaw.errors import ConfigError, DestinationRefused
from nanoclaw.host.bootstrap import ensure_group_folder
from nanoclaw.host.sessions import SessionManager
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.agents")
AGENT_CHANNEL = "agent"
MAX_HOPS = 8


class AgentRelay:
    def __init__(
        self, settings: Settings, conn: sqlite3.Connection, sessions: SessionManager,
        wake: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.sessions = sessions
        self.wake = wake

    def create_agent(self, creator_session_id: str, agent_id: str, name: str, instructions: str) -> str:
        """Create agent group `agent_id` and destinations both ways; returns a status for the creator."""
        creator = self.sessions.get(creator_session_id).agent_group_id
        group = agent_groups.get(self.conn, creator)
        if group is None or not group.is_admin:
            raise DestinationRefused("only the admin agent group may create agents (approvals come later)")
        try:
            if agent_groups.get(self.conn, agent_id) is None:
                agent_groups.create(self.conn, agent_id, name)
        except ConfigError as exc:
            raise DestinationRefused(str(exc)) from exc
        folder = ensure_group_folder(self.settings, agent_id)
        if instructions.strip():
            (folder / "CLAUDE.md").write_text(f"# {name}\n\n{instructions.strip()}\n")
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
        session_rows.touch(self.conn, target.id)
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
