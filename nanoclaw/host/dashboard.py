"""The dashboard's JSON API: what the host is doing, and the owner's levers, on the host's web server.

Agent groups and their memory files, chats and wirings (triggers editable),
sessions with live runner state, scheduled tasks (pause/resume), open
approvals (approve/deny), secrets (names only), recent log events, and the
first-run onboarding (assistant name, model key). Every route is owner-only.
The levers that add and change things are in dashboard_levers.py. Open pages
get the overview again whenever the host logs an event (`push`), instead of
polling.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Protocol

from nanoclaw import envfile
from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, messaging_groups, tasks, wirings
from nanoclaw.errors import NanoClawError
from nanoclaw.host.folders import MAX_MEMORY_BYTES, Folders
from nanoclaw.host.gatekeeper import Gatekeeper
from nanoclaw.host.scheduler import Scheduler
from nanoclaw.host.scheduler import public as public_task
from nanoclaw.host.web import WebServer, json_body, json_error, read_json
from nanoclaw.logs import get_logger
from nanoclaw.safefs import UnsafePath
from nanoclaw.vault.backend import SecretBackend

if TYPE_CHECKING:
    from aiohttp import web

log = get_logger("nanoclaw.host.dashboard")
KEY_NAMES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY")


PUSH_DELAY = 0.25  # seconds: a burst of events becomes one update of the open pages


class LogRing(logging.Handler):
    """The last log events, for the dashboard (they never hold secrets or message bodies above DEBUG)."""

    def __init__(self, size: int = 500) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[dict[str, Any]] = deque(maxlen=size)
        self.on_line: Callable[[], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append({"time": record.created, "level": record.levelname, "logger": record.name,
                           "event": record.getMessage()})
        if self.on_line is not None:
            self.on_line()


class DashboardHost(Protocol):
    """What the dashboard reads and acts on; the host provides it (no import of the host itself)."""

    conn: sqlite3.Connection
    settings: Settings
    folders: Folders
    scheduler: Scheduler
    gate: Gatekeeper
    vault: SecretBackend
    web: WebServer

    def status(self) -> dict[str, Any]:
        """The host's status, as `nanoclaw status --json` shows it."""


class Dashboard:
    def __init__(self, host: DashboardHost) -> None:
        self.host = host
        self.logs = LogRing()
        self._level = logging.NOTSET
        self.push: Callable[[dict[str, Any]], None] | None = None  # to open pages (the web chat's socket)
        self._push_at: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        page = host.web.add_page
        page("GET", "/api/dashboard", self._overview)
        page("GET", "/api/dashboard/memory/{group}", self._read_memory)
        page("PUT", "/api/dashboard/memory/{group}", self._write_memory)
        page("POST", "/api/dashboard/wirings/{id}", self._edit_wiring)
        page("POST", "/api/dashboard/tasks/{id}/{action}", self._task)
        page("POST", "/api/dashboard/approvals/{id}", self._approval)
        page("POST", "/api/dashboard/onboarding", self._onboard)

    def attach_logs(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.logs.on_line = self._changed
        logger = logging.getLogger("nanoclaw")
        self._level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:  # an embedding program logs less: the dashboard still sees INFO
            logger.setLevel(logging.INFO)
        logger.addHandler(self.logs)

    def _changed(self) -> None:
        """Something happened (every change logs an event): update open pages soon, once per burst."""
        loop = self._loop
        if self.push is None or loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._schedule_push)  # log records may come from other threads

    def _schedule_push(self) -> None:
        if self._push_at is None and self._loop is not None:
            self._push_at = self._loop.call_later(PUSH_DELAY, self._push_now)

    def _push_now(self) -> None:
        self._push_at = None
        if self.push is not None:
            self.push(self.event())

    def event(self) -> dict[str, Any]:
        """The dashboard's state as a page event."""
        return {"type": "dashboard", "data": self.overview()}

    def detach_logs(self) -> None:
        self.logs.on_line = None
        if self._push_at is not None:
            self._push_at.cancel()
            self._push_at = None
        logger = logging.getLogger("nanoclaw")
        logger.removeHandler(self.logs)
        logger.setLevel(self._level)

    # -- reading ---------------------------------------------------------------------

    async def _overview(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        return web.json_response(self.overview())

    def overview(self) -> dict[str, Any]:
        conn = self.host.conn
        status = self.host.status()
        groups = [{"id": g.id, "name": g.name, "admin": g.is_admin, "provider": g.provider or status["provider"],
                   "model": g.model or self.host.settings.model or ""} for g in agent_groups.list_all(conn)]
        chats = []
        for chat in messaging_groups.list_all(conn):
            chats.append({"id": chat.id, "chat": f"{chat.channel_type}:{chat.platform_id}", "name": chat.name,
                          "dm": chat.is_dm, "policy": chat.sender_policy,
                          "wirings": [_wiring(w) for w in wirings.for_messaging_group(conn, chat.id)]})
        open_approvals = conn.execute(
            "SELECT id, kind, subject, expires_at, created_at FROM approvals WHERE status = 'open' ORDER BY created_at"
        ).fetchall()
        return {
            "assistant": self.host.settings.assistant_name, "status": status, "groups": groups, "chats": chats,
            "tasks": [{**public_task(t), "next_run_at": t.next_run, "kind": t.kind, "spec": t.spec}
                      for t in tasks.list_for(conn)],
            "approvals": [dict(r) for r in open_approvals],
            "secrets": [{"name": r.name, "host": r.host, "header": r.header, "groups": list(r.groups),
                         "created_at": r.created_at, "rotated_at": r.rotated_at} for r in self.host.vault.rules()],
            "logs": list(self.logs.lines),
            "now": time.time(),
            "onboarding": {"needs_model_key": not any(self.host.settings.extra.get(k) for k in KEY_NAMES),
                           "provider": status["provider"]},
        }

    async def _read_memory(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        group = self._memory_group(request.match_info["group"])
        try:
            text = self.host.folders.read_memory(group)
        except UnsafePath as exc:  # the agent made its memory a link, a FIFO or a huge file: say so, read nothing
            return json_error(409, f"the memory file cannot be shown: {exc}")
        return web.json_response({"group": group, "text": text})

    # -- levers ----------------------------------------------------------------------

    async def _write_memory(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        group = self._memory_group(request.match_info["group"])
        body = json_body(await read_json(request))
        text = body.get("text")
        if not isinstance(text, str) or len(text.encode()) > MAX_MEMORY_BYTES:
            return json_error(400, f"text must be a string under {MAX_MEMORY_BYTES // 1024} KB")
        try:
            self.host.folders.write_memory(group, text)  # whole, by rename: never through a planted link
        except (UnsafePath, OSError) as exc:
            return json_error(409, f"the memory file was not saved: {exc}")
        log.info("dashboard.memory_saved", group=group, bytes=len(text.encode()))
        return web.json_response({"ok": True})

    async def _edit_wiring(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = json_body(await read_json(request))
        row = self.host.conn.execute("SELECT * FROM wirings WHERE id = ?", (request.match_info["id"],)).fetchone()
        if row is None:
            return json_error(404, "no such wiring")
        current = wirings.Wiring.from_row(row)
        try:
            updated = wirings.wire(
                self.host.conn, current.messaging_group_id, current.agent_group_id,
                trigger=str(body.get("trigger", current.trigger)),
                trigger_value=body.get("trigger_value", current.trigger_value) or None,
                response_scope=current.response_scope, session_mode=current.session_mode,
                priority=current.priority, allow_bots=bool(body.get("allow_bots", current.allow_bots)),
            )
        except NanoClawError as exc:
            return json_error(400, str(exc))
        log.info("dashboard.wiring_changed", wiring=updated.id, trigger=updated.trigger)
        return web.json_response({"wiring": _wiring(updated)})

    async def _task(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        action = request.match_info["action"]
        statuses = {"pause": "paused", "resume": "active", "cancel": "cancelled"}
        if action not in statuses:
            return json_error(404, f"unknown task action {action!r} (pause, resume, cancel)")
        try:
            task = self.host.scheduler.set_status(request.match_info["id"], statuses[action])
        except NanoClawError as exc:
            return json_error(400, str(exc))
        log.info("dashboard.task_changed", task=task.id, status=task.status)
        return web.json_response({"task": public_task(task)})

    async def _approval(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = json_body(await read_json(request))
        decision = body.get("decision")
        if decision not in ("approve", "deny"):
            return json_error(400, "decision must be approve or deny")
        outcome = await self.host.gate.decide(request.match_info["id"], decision == "approve",
                                              "the owner on the dashboard")
        return web.json_response({"outcome": outcome})

    async def _onboard(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = json_body(await read_json(request))
        config: dict[str, str | None] = {}
        secrets: dict[str, str | None] = {}
        name = body.get("assistant_name")
        if name is not None:
            if not isinstance(name, str) or not name.strip() or len(name) > 40 or not name.replace(" ", "").isalnum():
                return json_error(400, "the assistant's name is 1–40 letters, digits or spaces")
            config["NANOCLAW_ASSISTANT_NAME"] = name.strip()
        key = body.get("anthropic_api_key")
        if key is not None:
            if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key.strip()):
                return json_error(400, "the key is one word without spaces")
            secrets["ANTHROPIC_API_KEY"] = key.strip()
        if not config and not secrets:
            return json_error(400, "nothing to save")
        if config:
            envfile.update(self.host.settings.config_file, config)
        if secrets:
            envfile.update(self.host.settings.credentials_file, secrets)
        log.info("dashboard.onboarding_saved", fields=",".join([*config, *secrets]))
        return web.json_response({"ok": True, "restart_needed": True})

    def _memory_group(self, group: str) -> str:
        from aiohttp import web

        if group != "global" and agent_groups.get(self.host.conn, group) is None:
            raise web.HTTPNotFound(text='{"error": "no such agent group"}', content_type="application/json")
        return group


def _wiring(w: wirings.Wiring) -> dict[str, Any]:
    return {"id": w.id, "group": w.agent_group_id, "trigger": w.trigger, "trigger_value": w.trigger_value,
            "session_mode": w.session_mode, "allow_bots": w.allow_bots}
