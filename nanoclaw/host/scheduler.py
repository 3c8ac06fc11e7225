"""Scheduled tasks: a due task becomes an inbound `task` message in its session.

The scheduler sleeps until the earliest next run (no polling) and is woken when
tasks change. The next occurrence is computed after each run from the current
time, so after downtime a missed task runs once, not once per missed slot. Cron
schedules are evaluated in the task's IANA timezone (croniter + zoneinfo), so
"0 9 * * *" stays at 09:00 local across DST changes. The clock is injectable.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


from nanoclaw.db import agent_groups, messaging_groups, tasks
from nanoclaw.db.sessions import Session
from nanoclaw.db.tasks import Task
from nanoclaw.errors import ConfigError, DestinationRefused
from nanoclaw.host.sessions import SessionManager
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.scheduler")
MIN_INTERVAL = 60.0


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def local_timezone() -> str:
    """The host's IANA timezone name: $TZ, /etc/timezone, the /etc/localtime link, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        candidates.append(str(Path("/etc/localtime").resolve()).split("/zoneinfo/", 1)[1])
    except (OSError, IndexError):
        pass
    for name in candidates:
        if name and _zone(name, strict=False):
            return name
    return "UTC"


def _zone(name: str, strict: bool = True) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if strict:
            raise ConfigError(f"unknown timezone {name!r}; use an IANA name like Europe/Berlin") from None
        return None


def validate(kind: str, spec: str, timezone: str) -> None:
    _zone(timezone)
    if kind == "cron":
        from croniter import croniter  # (and dateutil) only once a cron schedule exists

        if not croniter.is_valid(spec):
            raise ConfigError(f"{spec!r} is not a cron expression (e.g. '0 9 * * 1' = Mondays at 09:00)")
    elif kind == "interval":
        try:
            seconds = float(spec)
        except ValueError:
            raise ConfigError(f"interval {spec!r} must be a number of seconds") from None
        if seconds < MIN_INTERVAL:
            raise ConfigError(f"interval must be at least {MIN_INTERVAL:.0f} seconds")
    elif kind == "once":
        parse_time(spec, timezone)
    else:
        raise ConfigError(f"schedule kind must be cron, interval or once, not {kind!r}")


def parse_time(spec: str, timezone: str) -> float:
    try:
        moment = datetime.fromisoformat(spec)
    except ValueError:
        raise ConfigError(f"{spec!r} is not an ISO time like 2026-12-24T18:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(timezone))
    return moment.timestamp()


def first_run(kind: str, spec: str, timezone: str, now: float) -> float:
    if kind == "once":
        return parse_time(spec, timezone)
    return next_run(kind, spec, timezone, now)  # type: ignore[return-value]


def next_run(kind: str, spec: str, timezone: str, after: float) -> float | None:
    """The first occurrence strictly after `after`; None for a one-off."""
    if kind == "interval":
        return after + float(spec)
    if kind == "cron":
        from croniter import croniter

        start = datetime.fromtimestamp(after, _zone(timezone))
        return float(croniter(spec, start).get_next(float))
    return None


def describe(kind: str, spec: str) -> str:
    if kind == "interval":
        return f"every {float(spec):g} s"
    return f"cron {spec}" if kind == "cron" else f"once at {spec}"


class Scheduler:
    def __init__(
        self, conn: sqlite3.Connection, sessions: SessionManager, wake: Callable[[str], Awaitable[None]],
        clock: Clock | None = None, default_timezone: str | None = None,
    ) -> None:
        self.conn = conn
        self.sessions = sessions
        self.wake = wake
        self.clock = clock or SystemClock()
        self.default_timezone = default_timezone or local_timezone()
        # Starts a session's runner ahead of a task due within `prewarm_lead` seconds, so the task's turn
        # does not wait for a sandbox and the agent to start (Supervisor.prestart).
        self.prewarm: Callable[[str], Awaitable[None]] | None = None
        self.prewarm_lead = 0.0
        self._warmed: set[tuple[str, float]] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def reschedule(self) -> None:
        self._changed.set()

    async def _loop(self) -> None:
        while True:
            self._changed.clear()
            await self.fire_due(self.clock.now())
            await self.warm_due(self.clock.now())
            timeout = self._until_next(self.clock.now())
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _until_next(self, now: float) -> float | None:
        """Seconds until the next task is due, or until its sandbox should be warmed, whichever is first."""
        moments = []
        for task in tasks.due(self.conn, float("inf"))[:50]:
            assert task.next_run is not None
            moments.append(task.next_run)
            if self.prewarm is not None and (task.id, task.next_run) not in self._warmed:
                moments.append(task.next_run - self.prewarm_lead)
        return max(0.0, min(moments) - now) if moments else None

    async def warm_due(self, now: float) -> list[str]:
        """Start the runners of tasks due within the lead time (once per due time); their session ids."""
        if self.prewarm is None or self.prewarm_lead <= 0:
            return []
        warmed = []
        for task in tasks.due(self.conn, now + self.prewarm_lead):
            assert task.next_run is not None
            if (task.id, task.next_run) in self._warmed or task.next_run <= now:
                continue
            self._warmed.add((task.id, task.next_run))
            try:
                session = self._session_for(task)
                await self.prewarm(session.id)
                warmed.append(session.id)
            except Exception as exc:  # warming is an optimisation: the task still runs when due
                log.warning("task.prewarm_failed", task=task.id, error=f"{type(exc).__name__}: {exc}")
        self._warmed = {w for w in self._warmed if w[1] > now - 3600}
        return warmed

    # -- running -------------------------------------------------------------

    async def fire_due(self, now: float) -> list[str]:
        fired = []
        for task in tasks.due(self.conn, now):
            try:
                await self.dispatch(task, now)
                fired.append(task.id)
            except Exception as exc:  # one broken task must not stop the others
                log.error("task.dispatch_failed", task=task.id, error=f"{type(exc).__name__}: {exc}")
                tasks.update(self.conn, task.id, next_run=next_run(task.kind, task.spec, task.timezone, now),
                             last_result=f"failed to start: {exc}"[:500])
        return fired

    async def dispatch(self, task: Task, now: float) -> str:
        """Put the task's prompt into its session and wake it; schedule the next occurrence."""
        session = self._session_for(task)
        route = self._route(task)
        end = self.sessions.end(session.id)
        seq = end.append(
            # One id per due slot: a dispatch repeated after a crash is stored once.
            id=f"task:{task.id}:{int(task.next_run or now)}", kind="task", text=task.prompt, route=route,
            sender_id="scheduler", sender_name="scheduled task", payload={"task_id": task.id},
        )
        if route is not None:
            end.set_routing(route)
        tasks.log_run(self.conn, task.id, session.id, seq, "dispatched")
        upcoming = next_run(task.kind, task.spec, task.timezone, now)
        status = "done" if task.kind == "once" else task.status
        tasks.update(self.conn, task.id, last_run=now, next_run=upcoming, status=status)
        log.info("task.dispatched", task=task.id, session=session.id)
        await self.wake(session.id)
        return session.id

    def _session_for(self, task: Task) -> Session:
        if task.session_id:
            try:
                return self.sessions.get(task.session_id)
            except KeyError:
                pass
        if task.messaging_group_id is None:
            return self.sessions.resolve(task.agent_group_id, None, None, "agent-shared")
        return self.sessions.resolve(task.agent_group_id, task.messaging_group_id, task.thread_id, "per-thread")

    def _route(self, task: Task) -> Route | None:
        if task.messaging_group_id is None:
            return None
        chat = messaging_groups.get(self.conn, task.messaging_group_id)
        return Route(chat.channel_type, chat.platform_id, task.thread_id) if chat else None

    def task_finished(self, session_id: str, seq: int, status: str, result: str | None) -> None:
        task_id = tasks.finish_run(self.conn, session_id, seq, status)
        if task_id:
            tasks.update(self.conn, task_id, last_result=(result or status)[:500])

    # -- managing --------------------------------------------------------------

    def add(
        self, *, agent_group_id: str, prompt: str, kind: str, spec: str, timezone: str | None = None,
        messaging_group_id: int | None = None, thread_id: str | None = None, session_id: str | None = None,
    ) -> Task:
        if not prompt.strip():
            raise ConfigError("a task needs a prompt")
        tz = timezone or self.default_timezone
        validate(kind, spec, tz)
        task = tasks.create(
            self.conn, agent_group_id=agent_group_id, prompt=prompt, kind=kind, spec=spec, timezone=tz,
            next_run=first_run(kind, spec, tz, self.clock.now()), messaging_group_id=messaging_group_id,
            thread_id=thread_id, session_id=session_id,
        )
        self.reschedule()
        return task

    def set_status(self, task_id: str, status: str) -> Task:
        task = self._get(task_id)
        if task.status in ("done", "cancelled"):
            raise ConfigError(f"task {task_id} has ended ({task.status})")
        fields: dict[str, Any] = {"status": status}
        if status == "active" and task.status == "paused" and task.kind != "once":
            fields["next_run"] = next_run(task.kind, task.spec, task.timezone, self.clock.now())
        tasks.update(self.conn, task_id, **fields)
        self.reschedule()
        return self._get(task_id)

    def change(self, task_id: str, *, prompt: str | None = None, kind: str | None = None, spec: str | None = None,
               timezone: str | None = None) -> Task:
        task = self._get(task_id)
        kind, spec, tz = kind or task.kind, spec or task.spec, timezone or task.timezone
        validate(kind, spec, tz)
        tasks.update(self.conn, task_id, prompt=prompt or task.prompt, kind=kind, spec=spec, timezone=tz,
                     next_run=first_run(kind, spec, tz, self.clock.now()))
        self.reschedule()
        return self._get(task_id)

    async def run_now(self, task_id: str) -> str:
        task = self._get(task_id)
        if task.status in ("done", "cancelled"):
            raise ConfigError(f"task {task_id} has ended ({task.status})")
        session_id = await self.dispatch(task, self.clock.now())
        if task.kind != "once":  # a manual run does not move the schedule
            tasks.update(self.conn, task_id, next_run=task.next_run, status=task.status)
        self.reschedule()
        return session_id

    def _get(self, task_id: str) -> Task:
        task = tasks.get(self.conn, task_id)
        if task is None:
            raise ConfigError(f"no task {task_id!r}")
        return task

    # -- what agents may do (system actions) ------------------------------------

    def handle(self, session: Session, action: str, payload: dict[str, Any]) -> str:
        group = agent_groups.get(self.conn, session.agent_group_id)
        is_admin = bool(group and group.is_admin)
        try:
            if action == "schedule_task":
                kind, spec = _schedule_of(payload)
                task = self.add(
                    agent_group_id=session.agent_group_id, prompt=str(payload.get("prompt", "")), kind=kind,
                    spec=spec, timezone=payload.get("timezone") or None,
                    messaging_group_id=session.messaging_group_id, thread_id=session.thread_id,
                )
                return f"Scheduled {task.id} ({describe(kind, spec)}, {task.timezone}); next run {_when(task)}"
            if action in ("list_tasks", "list_all_tasks"):
                if action == "list_all_tasks" and not is_admin:
                    raise DestinationRefused("list_all_tasks is only for the admin agent group")
                owner = None if action == "list_all_tasks" else session.agent_group_id
                return json.dumps([public(t) for t in tasks.list_for(self.conn, owner)])
            task = self._get(str(payload.get("task_id", "")))
            if task.agent_group_id != session.agent_group_id and not is_admin:
                raise DestinationRefused(f"task {task.id} belongs to agent group {task.agent_group_id}")
            if action == "pause_task":
                return f"Paused {self.set_status(task.id, 'paused').id}"
            if action == "resume_task":
                resumed = self.set_status(task.id, "active")
                return f"Resumed {resumed.id}; next run {_when(resumed)}"
            if action == "cancel_task":
                return f"Cancelled {self.set_status(task.id, 'cancelled').id}"
            if action == "update_task":
                kind, spec = _schedule_of(payload) if _has_schedule(payload) else (None, None)
                updated = self.change(task.id, prompt=payload.get("prompt"), kind=kind, spec=spec,
                                      timezone=payload.get("timezone"))
                return f"Updated {updated.id}; next run {_when(updated)}"
        except ConfigError as exc:
            raise DestinationRefused(str(exc)) from exc
        raise DestinationRefused(f"unknown task action {action!r}")


TASK_ACTIONS = ("schedule_task", "list_tasks", "list_all_tasks", "pause_task", "resume_task", "cancel_task",
                "update_task")


def _has_schedule(payload: dict[str, Any]) -> bool:
    return any(payload.get(k) is not None for k in ("cron", "interval_seconds", "at"))


def _schedule_of(payload: dict[str, Any]) -> tuple[str, str]:
    given = [k for k in ("cron", "interval_seconds", "at") if payload.get(k) is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of cron, interval_seconds or at")
    key = given[0]
    return {"cron": "cron", "interval_seconds": "interval", "at": "once"}[key], str(payload[key])


def _when(task: Task) -> str:
    if task.next_run is None:
        return "none"
    return datetime.fromtimestamp(task.next_run, _zone(task.timezone)).isoformat(timespec="minutes")


def public(task: Task) -> dict[str, Any]:
    return {"id": task.id, "group": task.agent_group_id, "prompt": task.prompt,
            "schedule": describe(task.kind, task.spec), "timezone": task.timezone, "status": task.status,
            "next_run": _when(task), "last_result": task.last_result}
