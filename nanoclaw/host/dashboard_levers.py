"""The dashboard's levers that add and change things: tasks, secrets, wirings, and each session's transcript.

Every route is owner-only (login cookie and CSRF, checked by the host's web
server). A secret's value goes into the vault and is never shown back; every
change logs an event, which also updates the open pages.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Any

from nanoclaw.db import agent_groups, messaging_groups, wirings
from nanoclaw.db import sessions as session_rows
from nanoclaw.errors import NanoClawError
from nanoclaw.host.scheduler import Scheduler, public
from nanoclaw.host.sessions import SessionManager
from nanoclaw.host.web import WebServer, json_error
from nanoclaw.logs import get_logger
from nanoclaw.vault.backend import SecretBackend
from nanoclaw.vault.store import SecretRule

if TYPE_CHECKING:
    from aiohttp import web

log = get_logger("nanoclaw.host.dashboard")
TRANSCRIPT_ROWS = 200
TRANSCRIPT_CHARS = 4000
_KINDS = ("cron", "interval", "once")


class DashboardLevers:
    def __init__(self, web_server: WebServer, conn: sqlite3.Connection, scheduler: Scheduler,
                 vault: SecretBackend, sessions: SessionManager) -> None:
        self.conn = conn
        self.scheduler = scheduler
        self.vault = vault
        self.sessions = sessions
        page = web_server.add_page
        page("POST", "/api/dashboard/tasks", self._add_task)
        page("PATCH", "/api/dashboard/tasks/{id}", self._change_task)
        page("POST", "/api/dashboard/secrets", self._add_secret)
        page("PUT", "/api/dashboard/secrets/{name}", self._rotate_secret)
        page("DELETE", "/api/dashboard/secrets/{name}", self._remove_secret)
        page("POST", "/api/dashboard/wirings", self._wire)
        page("DELETE", "/api/dashboard/wirings/{id}", self._unwire)
        page("GET", "/api/dashboard/sessions/{id}/transcript", self._transcript)

    # -- tasks -----------------------------------------------------------------------

    async def _add_task(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await _body(request)
        group = _text(body, "group") or "main"
        if agent_groups.get(self.conn, group) is None:
            return json_error(400, f"there is no agent group {group!r}")
        chat_id = body.get("chat_id")
        if chat_id is not None and (not isinstance(chat_id, int) or messaging_groups.get(self.conn, chat_id) is None):
            return json_error(400, "choose one of the chats listed")
        if chat_id is None:
            wired = wirings.for_agent_group(self.conn, group)
            if not wired:
                return json_error(400, f"{group} answers no chat yet: wire one first, or choose a chat")
            chat_id = wired[0].messaging_group_id
        try:
            task = self.scheduler.add(agent_group_id=group, prompt=_text(body, "prompt"), kind=_kind(body),
                                      spec=_text(body, "spec"), timezone=_text(body, "timezone") or None,
                                      messaging_group_id=chat_id)
        except NanoClawError as exc:
            return json_error(400, str(exc))
        log.info("dashboard.task_added", task=task.id, group=group)
        return web.json_response({"task": public(task)})

    async def _change_task(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await _body(request)
        try:
            task = self.scheduler.change(request.match_info["id"], prompt=_text(body, "prompt") or None,
                                         kind=_kind(body) or None, spec=_text(body, "spec") or None,
                                         timezone=_text(body, "timezone") or None)
        except NanoClawError as exc:
            return json_error(400, str(exc))
        log.info("dashboard.task_changed", task=task.id)
        return web.json_response({"task": public(task)})

    # -- secrets ---------------------------------------------------------------------

    async def _add_secret(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await _body(request)
        value = body.get("value")
        if not isinstance(value, str) or not value.strip():
            return json_error(400, "the secret's value is missing")
        groups = body.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            return json_error(400, "groups is a list of agent group ids")
        rule = SecretRule(_text(body, "name"), _text(body, "host"), _text(body, "header") or "Authorization",
                          _text(body, "format") or "Bearer {value}", groups=tuple(groups))
        try:
            saved = self.vault.add(rule, value.strip())
        except NanoClawError as exc:
            return json_error(400, str(exc))
        log.info("dashboard.secret_added", name=saved.name, host=saved.host)
        return web.json_response({"secret": {"name": saved.name, "host": saved.host, "header": saved.header}})

    async def _rotate_secret(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        value = (await _body(request)).get("value")
        if not isinstance(value, str) or not value.strip():
            return json_error(400, "the new value is missing")
        try:
            saved = self.vault.rotate(request.match_info["name"], value.strip())
        except NanoClawError as exc:
            return json_error(404, str(exc))
        log.info("dashboard.secret_rotated", name=saved.name)
        return web.json_response({"ok": True})

    async def _remove_secret(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        try:
            self.vault.remove(request.match_info["name"])
        except NanoClawError as exc:
            return json_error(404, str(exc))
        log.info("dashboard.secret_removed", name=request.match_info["name"])
        return web.json_response({"ok": True})

    # -- wirings ---------------------------------------------------------------------

    async def _wire(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await _body(request)
        chat = messaging_groups.get(self.conn, body["chat_id"]) if isinstance(body.get("chat_id"), int) else None
        group = _text(body, "group")
        if chat is None or agent_groups.get(self.conn, group) is None:
            return json_error(400, "choose a chat and an agent group from the lists")
        try:
            wiring = wirings.wire(self.conn, chat.id, group, trigger=_text(body, "trigger") or "mention",
                                  trigger_value=_text(body, "trigger_value") or None,
                                  session_mode=_text(body, "session_mode") or "per-thread")
        except NanoClawError as exc:
            return json_error(400, str(exc))
        log.info("dashboard.wired", chat=chat.id, group=group, trigger=wiring.trigger)
        return web.json_response({"wiring": wiring.id})

    async def _unwire(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        raw = request.match_info["id"]
        if not raw.isdigit() or not wirings.unwire(self.conn, int(raw)):
            return json_error(404, "no such wiring")
        log.info("dashboard.unwired", wiring=raw)
        return web.json_response({"ok": True})

    # -- transcripts -----------------------------------------------------------------

    async def _transcript(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        session = session_rows.get(self.conn, request.match_info["id"])
        if session is None:
            return json_error(404, "no such session")
        try:
            rows = self.sessions.end(session.id).transcript(TRANSCRIPT_ROWS, TRANSCRIPT_CHARS)
        except (sqlite3.Error, NanoClawError, OSError) as exc:
            return json_error(409, f"this session's history cannot be read ({type(exc).__name__})")
        return web.json_response({"session": session.id, "rows": rows})


async def _body(request: web.Request) -> dict[str, Any]:
    from aiohttp import web

    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "expected a JSON object"}', content_type="application/json")
    return data


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value.strip() if isinstance(value, str) else ""


def _kind(body: dict[str, Any]) -> str:
    kind = _text(body, "kind")
    return kind if kind in _KINDS else ("" if not kind else re.sub(r"\W", "", kind)[:20])
