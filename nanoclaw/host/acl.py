"""The outbound ACL: where a session's row may go (DESIGN §4). Reads only the central DB."""

from __future__ import annotations

import sqlite3

from nanoclaw.db import destinations, messaging_groups, wirings
from nanoclaw.db.sessions import Session
from nanoclaw.errors import DestinationRefused
from nanoclaw.protocol.messages import OutboundMessage, Route


def resolve(conn: sqlite3.Connection, session: Session, row: OutboundMessage) -> tuple[Route | None, str | None]:
    """(route, target agent group) for the row, or DestinationRefused saying why not.

    The session's own chat (any thread of it) is always allowed; anything else must
    be a destination declared for the agent group. A runner's row is untrusted input.
    """
    if row.kind == "system":
        return None, None  # host actions go nowhere; actions.py checks who may do what
    if row.to_name:
        dest = destinations.for_agent_group(conn, session.agent_group_id).get(row.to_name)
        if dest is None:
            raise DestinationRefused(f"{row.to_name!r} is not a destination of agent group {session.agent_group_id}")
        return dest.route, dest.target_agent_group_id
    if row.route is None:
        raise DestinationRefused("no route: the session has no chat to reply to")
    if (row.route.channel_type, row.route.platform_id) not in own_chats(conn, session):
        raise DestinationRefused(f"{row.route.channel_type}:{row.route.platform_id} is not this session's chat")
    return row.route, None


def own_chats(conn: sqlite3.Connection, session: Session) -> set[tuple[str, str]]:
    if session.mode == "agent-shared" or session.messaging_group_id is None:
        ids = [w.messaging_group_id for w in wirings.for_agent_group(conn, session.agent_group_id)]
        if session.messaging_group_id is not None:
            ids.append(session.messaging_group_id)
    else:
        ids = [session.messaging_group_id]
    chats = set()
    for mg_id in ids:
        group = messaging_groups.get(conn, mg_id)
        if group:
            chats.add((group.channel_type, group.platform_id))
    return chats
