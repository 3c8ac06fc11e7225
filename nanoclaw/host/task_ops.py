"""Local API ops behind `nanoclaw tasks …`."""

from __future__ import annotations

import sqlite3
from typing import Any

from nanoclaw.db import agent_groups, messaging_groups, tasks, wirings
from nanoclaw.errors import ConfigError
from nanoclaw.host.api import ApiConnection, LocalApi
from nanoclaw.host.scheduler import Scheduler, public


class TaskOps:
    def __init__(self, conn: sqlite3.Connection, scheduler: Scheduler) -> None:
        self.conn = conn
        self.scheduler = scheduler

    def register(self, api: LocalApi) -> None:
        for op in ("add", "list", "pause", "resume", "cancel", "run_now"):
            api.register(f"tasks_{op}", self._wrap(getattr(self, op)))

    def _wrap(self, fn: Any) -> Any:
        async def handler(request: dict[str, Any], conn: ApiConnection) -> dict[str, Any]:
            try:
                return {"ok": True, **(await fn(request))}
            except ConfigError as exc:
                return {"ok": False, "error": str(exc)}

        return handler

    async def add(self, request: dict[str, Any]) -> dict[str, Any]:
        conn = self.conn
        group = str(request.get("group") or "main")
        if agent_groups.get(conn, group) is None:
            raise ConfigError(f"no agent group {group!r}")
        chat_spec = request.get("chat")
        if chat_spec:
            channel, _, platform_id = str(chat_spec).partition(":")
            chat = messaging_groups.find(conn, channel, platform_id)
            if chat is None:
                raise ConfigError(f"unknown chat {chat_spec!r} (see nanoclaw groups)")
            chat_id = chat.id
        else:
            wired = wirings.for_agent_group(conn, group)
            if not wired:
                raise ConfigError(f"agent group {group} has no chat; pass --chat channel:id")
            chat_id = wired[0].messaging_group_id
        task = self.scheduler.add(
            agent_group_id=group, prompt=str(request.get("prompt", "")), kind=str(request.get("kind", "")),
            spec=str(request.get("spec", "")), timezone=request.get("timezone") or None,
            messaging_group_id=chat_id, thread_id=request.get("thread") or None,
        )
        return {"task": public(task)}

    async def list(self, request: dict[str, Any]) -> dict[str, Any]:
        found = tasks.list_for(self.conn, request.get("group") or None, include_ended=bool(request.get("all")))
        return {"tasks": [public(t) for t in found]}

    async def pause(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"task": public(self.scheduler.set_status(str(request.get("id")), "paused"))}

    async def resume(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"task": public(self.scheduler.set_status(str(request.get("id")), "active"))}

    async def cancel(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"task": public(self.scheduler.set_status(str(request.get("id")), "cancelled"))}

    async def run_now(self, request: dict[str, Any]) -> dict[str, Any]:
        session_id = await self.scheduler.run_now(str(request.get("id")))
        return {"session": session_id}
