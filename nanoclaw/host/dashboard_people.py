"""The dashboard's channels-and-people panel: each channel's connection and new-chat default, chats waiting for
the owner's answer, pairing requests, and the owner's linked accounts — with the same levers as the cards.

Its own routes beside the dashboard's (`/api/dashboard/people…`), on the host's web server, owner-only.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from nanoclaw.db import agent_groups, approvals, channel_settings, held_messages, owner_links
from nanoclaw.errors import ConfigError
from nanoclaw.host.owners import identities, unlink
from nanoclaw.host.pairing import find_code
from nanoclaw.host.web import json_body, json_error, read_json
from nanoclaw.logs import get_logger

if TYPE_CHECKING:
    from aiohttp import web

log = get_logger("nanoclaw.host.dashboard_people")
LOCAL = ("terminal", "web")
BY = "web:owner"

AddPage = Callable[[str, str, Callable[["web.Request"], Awaitable["web.StreamResponse"]]], None]


class PeoplePanel:
    def __init__(self, conn: sqlite3.Connection, channel_health: Callable[[], dict[str, dict[str, Any]]],
                 decide: Callable[..., Awaitable[str]], add_page: AddPage) -> None:
        self.conn = conn
        self.channel_health = channel_health
        self.decide = decide
        add_page("GET", "/api/dashboard/people", self._overview)
        add_page("POST", "/api/dashboard/people/new-chats/{id}", self._new_chat)
        add_page("POST", "/api/dashboard/people/pairing/{code}", self._pairing)
        add_page("POST", "/api/dashboard/people/owner-link", self._owner_link)
        add_page("POST", "/api/dashboard/people/owners/unlink", self._unlink)
        add_page("POST", "/api/dashboard/people/channels/{channel}", self._channel_default)

    async def _overview(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        health = self.channel_health()
        channels = [{"name": name, **state, "new_chats": None if name in LOCAL else
                     channel_settings.new_chats(self.conn, name)} for name, state in health.items()]
        new_chats = [{"id": a.id, "who": a.payload.get("who"), "where": a.payload.get("where"),
                      "first_line": a.payload.get("first_line"), "created_at": a.created_at,
                      "waiting": held_messages.count(self.conn, int(a.payload["chat"])),
                      "chat": self._chat_name(int(a.payload["chat"]))}
                     for a in approvals.open_of_kind(self.conn, "new_chat")]
        pairing = [{"code": a.payload.get("code"), "channel": a.payload.get("channel"), "who": a.payload.get("who"),
                    "first_line": a.payload.get("first_line"), "expires_at": a.expires_at}
                   for a in approvals.open_of_kind(self.conn, "pairing")]
        people = [{"identity": f"{u.channel_type}:{u.platform_user_id}", "name": u.display_name, "role": u.role}
                  for u in identities(self.conn)]
        return web.json_response({"channels": channels, "new_chats": new_chats, "pairing": pairing,
                                  "people": people, "groups": [g.id for g in agent_groups.list_all(self.conn)]})

    async def _new_chat(self, request: web.Request) -> web.StreamResponse:
        """{"choice": "main" | an agent group | "ignore" | "block"}"""
        from aiohttp import web

        choice = str(json_body(await read_json(request)).get("choice") or "")
        if not choice:
            return json_error(400, "choice is an agent group, ignore or block")
        outcome = await self.decide(request.match_info["id"], choice not in ("ignore", "block"), BY, choice=choice)
        return web.json_response({"outcome": outcome})

    async def _pairing(self, request: web.Request) -> web.StreamResponse:
        """{"decision": "approve" | "deny", "group": "main"}"""
        from aiohttp import web

        body = json_body(await read_json(request))
        decision = body.get("decision")
        if decision not in ("approve", "deny"):
            return json_error(400, "decision must be approve or deny")
        found = find_code(self.conn, request.match_info["code"])
        if found is None:
            return json_error(404, "no open pairing request with that code (expired, decided or mistyped)")
        choice = str(body.get("group") or "main") if decision == "approve" else "deny"
        return web.json_response({"outcome": await self.decide(found.id, decision == "approve", BY, choice=choice)})

    async def _owner_link(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        code = owner_links.create(self.conn)
        log.info("dashboard.owner_link_created")
        return web.json_response({"code": f"{code[:4]}-{code[4:]}", "expires_in": owner_links.TTL,
                                  "expires_at": time.time() + owner_links.TTL})

    async def _unlink(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        identity = str(json_body(await read_json(request)).get("identity") or "")
        channel, _, user_id = identity.partition(":")
        if (channel, user_id) == ("web", "owner"):
            return json_error(400, "the web chat's owner stays an owner (it is you, logged in here)")
        if unlink(self.conn, channel, user_id) is None:
            return json_error(404, f"{identity} is not an owner or admin identity")
        return web.json_response({"ok": True})

    async def _channel_default(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        policy = str(json_body(await read_json(request)).get("new_chats") or "")
        try:
            channel_settings.set_new_chats(self.conn, request.match_info["channel"], policy)
        except ConfigError as exc:
            return json_error(400, str(exc))
        return web.json_response({"ok": True})

    def _chat_name(self, chat_id: int) -> str:
        row = self.conn.execute("SELECT channel_type, platform_id, name FROM messaging_groups WHERE id = ?",
                                (chat_id,)).fetchone()
        return f"{row['channel_type']}:{row['platform_id']}" if row else "?"
