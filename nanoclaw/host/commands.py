"""Host commands typed in a chat (`/clear`, `/compact`). Unknown `/words` go to the agent unchanged."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from typing import Awaitable, Callable

from nanoclaw.db import tasks, users, wirings
from nanoclaw.db.messaging_groups import MessagingGroup

_COMMAND = re.compile(r"^/([a-z][a-z0-9_-]*)(?:@\S+)?(?:\s+(.*))?$", re.DOTALL | re.IGNORECASE)

# Passed to the agent's provider; they change the shared conversation, so owner/admin only outside DMs.
PROVIDER_COMMANDS = {
    "clear": "start a fresh conversation (the agent forgets this session's history)",
    "compact": "compact the conversation history to save context",
}
# Answered by the host itself. None = anyone may use it.
HOST_COMMANDS = {
    "help": "list these commands",
    "stop": "stop what the agent is doing now (it says where it stopped)",
    "status": "what is running for this chat",
    "tasks": "scheduled tasks of this chat's agents",
    "approve": "approve a pending request: /approve oa-… (a new chat: /approve oa-… GROUP answers it with GROUP)",
    "deny": "deny a pending request: /deny oa-…",
}
OPEN_TO_ALL = {"help", "stop"}  # anyone the agent answers here may stop it


@dataclass(frozen=True)
class Command:
    name: str
    args: str

    @property
    def by_host(self) -> bool:
        return self.name in HOST_COMMANDS


def parse(text: str) -> Command | None:
    """A host command in `text`, or None (unknown commands are not ours: they pass through)."""
    match = _COMMAND.match(text.strip())
    if not match or match.group(1).lower() not in {**PROVIDER_COMMANDS, **HOST_COMMANDS}:
        return None
    return Command(match.group(1).lower(), (match.group(2) or "").strip())


def may_use(conn: sqlite3.Connection, chat: MessagingGroup, sender_id: str, command: Command) -> bool:
    if command.name in OPEN_TO_ALL or (chat.is_dm and command.name not in ("approve", "deny")):
        return True
    user = users.find(conn, chat.channel_type, sender_id)
    return user is not None and user.role in ("owner", "admin")


def help_text() -> str:
    lines = ["Commands:"]
    lines += [f"/{name} — {what}" for name, what in {**HOST_COMMANDS, **PROVIDER_COMMANDS}.items()]
    lines.append("Anything else starting with / goes to the agent.")
    return "\n".join(lines)


class HostCommands:
    """Answers the host's own commands for a chat."""

    def __init__(self, conn: sqlite3.Connection, live_sessions: Callable[[], set[str]],
                 decide: Callable[..., Awaitable[str]], interrupt: Callable[[str], bool]) -> None:
        self.conn = conn
        self.live_sessions = live_sessions
        self.decide = decide
        self.interrupt = interrupt  # asks a session's runner to end its turn; False when it is not working

    async def answer(self, chat: MessagingGroup, sender_id: str, command: Command,
                     thread: str | None = None) -> str | None:
        """The host's answer to post in the chat (None: nothing to say, e.g. the agent will say it stopped)."""
        if command.name == "help":
            return help_text()
        if command.name == "stop":
            return None if self.stop(chat, thread) else "Nothing is running here."
        if command.name in ("approve", "deny"):
            approval_id, _, choice = command.args.partition(" ")
            if not approval_id.startswith("oa-"):
                return f"Usage: /{command.name} oa-…"
            return await self.decide(approval_id, command.name == "approve", sender_id, choice=choice.strip())
        if command.name == "status":
            return self._status(chat)
        return self._tasks(chat)

    def stop(self, chat: MessagingGroup, thread: str | None) -> bool:
        """Interrupt the turns running for this chat (in this thread, or the chat's shared session)."""
        rows = self.conn.execute(
            "SELECT id FROM sessions WHERE messaging_group_id = ? AND (thread_id IS ? OR thread_id IS NULL)",
            (chat.id, thread),
        ).fetchall()
        live = self.live_sessions()
        return any([self.interrupt(row["id"]) for row in rows if row["id"] in live])

    def _status(self, chat: MessagingGroup) -> str:
        live = self.live_sessions()
        rows = self.conn.execute(
            "SELECT id, agent_group_id, thread_id FROM sessions WHERE messaging_group_id = ?", (chat.id,)
        ).fetchall()
        groups = [w.agent_group_id for w in wirings.for_messaging_group(self.conn, chat.id)]
        lines = [f"Agents here: {', '.join(groups) or 'none'} · sender policy: {chat.sender_policy}"]
        for row in rows:
            state = "running" if row["id"] in live else "idle"
            thread = f" (thread {row['thread_id']})" if row["thread_id"] else ""
            lines.append(f"session {row['id']} — {row['agent_group_id']}{thread}: {state}")
        return "\n".join(lines)

    def _tasks(self, chat: MessagingGroup) -> str:
        from nanoclaw.host.scheduler import public

        found = [t for g in {w.agent_group_id for w in wirings.for_messaging_group(self.conn, chat.id)}
                 for t in tasks.list_for(self.conn, g)]
        if not found:
            return "No scheduled tasks."
        return "\n".join(f"{p['id']} {p['status']} · {p['schedule']} · next {p['next_run']} · {p['prompt'][:60]}"
                         for p in map(public, found))
