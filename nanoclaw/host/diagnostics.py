"""Ask the agent what's wrong: the admin agent's tools that read the host's own state.

`host_status`, `channel_health`, `recent_logs` and `doctor_checks` let the
owner ask `main` "why didn't you answer on Telegram?" and get a real answer.
Admin only. Logs are filtered on the way out: never DEBUG (where message
bodies live), fields that could hold someone's words (`text`, `body`, …) are
dropped, and every configured secret value is masked, so what other groups
were told never reaches this agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from nanoclaw.db import agent_groups
from nanoclaw.db.sessions import Session
from nanoclaw.errors import DestinationRefused
from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.host.diagnostics")
DIAGNOSTIC_ACTIONS = ("host_status", "channel_health", "recent_logs", "doctor_checks")
LEVELS = {"info": 20, "warning": 30, "error": 40}
MAX_LOG_LINES = 100
DOCTOR_TIMEOUT = 90.0
# Fields of log events that may carry what a person or an agent wrote: never passed on.
_WORDS = re.compile(r"\b(text|body|content|prompt|reply|message|subject)=('(?:[^'\\]|\\.)*'|\S+)")
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|KEY|PASS)\b|_(TOKEN|SECRET|PASSWORD|KEY)_", re.I)
MASK = "[secret]"


class Diagnostics:
    def __init__(self, conn: sqlite3.Connection, status: Callable[[], dict[str, Any]],
                 log_lines: Callable[[], Iterable[dict[str, Any]]], secrets: Mapping[str, str], home: Path) -> None:
        self.conn = conn
        self.status = status
        self.log_lines = log_lines
        self.secret_values = sorted({v for k, v in secrets.items() if _SECRET_NAME.search(k) and len(v) >= 6},
                                    key=len, reverse=True)
        self.home = home

    async def handle(self, session: Session, action: str, payload: dict[str, Any]) -> str:
        group = agent_groups.get(self.conn, session.agent_group_id)
        if group is None or not group.is_admin:
            raise DestinationRefused(f"{action} is only for the admin agent group")
        if action == "host_status":
            return json.dumps(self._status())
        if action == "channel_health":
            return json.dumps(self.status().get("channel_health", {}))
        if action == "recent_logs":
            return self.recent_logs(str(payload.get("level") or "warning"), str(payload.get("contains") or ""),
                                    int(payload.get("limit") or 40))
        return await self.doctor()

    def _status(self) -> dict[str, Any]:
        status = self.status()
        sessions: dict[str, int] = {}
        for s in status.get("sessions", []):
            sessions[s["agent_group"]] = sessions.get(s["agent_group"], 0) + 1
        keep = ("uptime", "provider", "runtime", "channel_health", "live_runners", "max_sandboxes", "delivered")
        return {**{k: status.get(k) for k in keep}, "queued": len(status.get("queue", [])),
                "sessions_per_group": sessions, "agent_groups": status.get("agent_groups", [])}

    def recent_logs(self, level: str, contains: str = "", limit: int = 40) -> str:
        """The host's latest log events at `level` or above, optionally only those containing `contains`."""
        floor = LEVELS.get(level.lower(), LEVELS["warning"])
        lines = []
        for line in self.log_lines():
            if LEVELS.get(str(line.get("level", "")).lower(), 0) < floor:
                continue
            event = self.clean(str(line.get("event", "")))
            if contains and contains.lower() not in event.lower():
                continue
            lines.append(f"{line.get('level')} {line.get('logger')} {event}")
        lines = lines[-max(1, min(limit, MAX_LOG_LINES)):]
        return "\n".join(lines) if lines else f"No log events at {level} or above" + (
            f" containing {contains!r}." if contains else ".")

    def clean(self, event: str) -> str:
        event = _WORDS.sub(lambda m: f"{m.group(1)}=…", event)
        for value in self.secret_values:
            event = event.replace(value, MASK)
        return event

    async def doctor(self) -> str:
        """`nanoclaw doctor` for this home, in a process of its own (it asks this host for its status)."""
        env = {**os.environ, "NANOCLAW_HOME": str(self.home)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nanoclaw", "--home", str(self.home), "doctor", "--json",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        try:
            out, _err = await asyncio.wait_for(proc.communicate(), DOCTOR_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return f"nanoclaw doctor did not finish within {DOCTOR_TIMEOUT:.0f} s."
        try:
            checks = json.loads(out)
        except ValueError:
            log.warning("diagnostics.doctor_unreadable", code=proc.returncode)
            return f"nanoclaw doctor failed (exit code {proc.returncode}); run it in a terminal to see why."
        lines = []
        for c in checks:
            mark = "FAIL" if not c["ok"] else "warn" if c.get("warn") else "ok"
            fix = f" (fix: {c['fix']})" if c.get("fix") and (mark != "ok") else ""
            lines.append(self.clean(f"{mark} {c['name']}: {c['detail']}{fix}"))
        return "\n".join(lines)
