"""Admin-only actions the `main` agent takes from chat: list groups and chats, wire a chat ("join the Family
Chat"), give a group one of the owner's folders (within the mount allow-list)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable

from nanoclaw.db import agent_groups, group_mounts, messaging_groups, wirings
from nanoclaw.db.group_mounts import GroupMount
from nanoclaw.db.sessions import Session
from nanoclaw.errors import ConfigError, DestinationRefused
from nanoclaw.sandbox.mounts import Allowlist, MountRefused, mount_name

ADMIN_ACTIONS = ("list_groups", "wire_group", "add_mount", "remove_mount")


def grant_mount(conn: sqlite3.Connection, allowlist: Allowlist, group_id: str, path: str, *,
                writable: bool = False, name: str | None = None) -> GroupMount:
    """Give an agent group one of the owner's folders at /workspace/extra/<name>, if the allow-list lets it."""
    if agent_groups.get(conn, group_id) is None:
        raise DestinationRefused(f"no agent group {group_id!r}")
    resolved = allowlist.check(path, writable=writable)
    return group_mounts.add(conn, group_id, mount_name(name, resolved), str(resolved), writable)


class AdminActions:
    def __init__(self, conn: sqlite3.Connection, allowlist: Callable[[], Allowlist],
                 tell_owner: Callable[[str], None] = lambda text: None) -> None:
        self.conn = conn
        self.allowlist = allowlist
        self.tell_owner = tell_owner
        self.wired: Callable[[int], None] = lambda chat_id: None  # a chat was wired: answer what it held

    def handle(self, session: Session, action: str, payload: dict[str, Any]) -> str:
        group = agent_groups.get(self.conn, session.agent_group_id)
        if group is None or not group.is_admin:
            raise DestinationRefused(f"{action} is only for the admin agent group")
        if action == "list_groups":
            return self._list()
        if action == "add_mount":
            return self._add_mount(payload)
        if action == "remove_mount":
            target, name = str(payload.get("agent_group") or ""), str(payload.get("name") or "")
            if not group_mounts.remove(self.conn, target, name):
                raise DestinationRefused(f"{target} has no mount named {name!r}")
            return f"Removed /workspace/extra/{name} from {target} (from its next start)."
        return self._wire(payload)

    def _add_mount(self, payload: dict[str, Any]) -> str:
        target = str(payload.get("agent_group") or "")
        try:
            mount = grant_mount(self.conn, self.allowlist(), target, str(payload.get("path") or ""),
                                writable=bool(payload.get("writable")), name=payload.get("name"))
        except MountRefused as exc:
            # The detail may name files in the owner's folders (blocked secrets, what exists): the owner
            # reads it, the agent only learns that it was refused.
            self.tell_owner(f"An agent asked to mount a folder for {target or '?'}; refused: {exc}")
            raise DestinationRefused(exc.public) from exc
        except ConfigError as exc:
            raise DestinationRefused(str(exc)) from exc
        mode = "read-write" if mount.writable else "read-only"
        return f"{mount.host_path} is mounted {mode} at /workspace/extra/{mount.name} for {target} (from its next start)."

    def _list(self) -> str:
        chats = []
        for chat in messaging_groups.list_all(self.conn):
            if chat.channel_type == "agent":
                continue
            wired = [w.agent_group_id for w in wirings.for_messaging_group(self.conn, chat.id)]
            chats.append({"chat": f"{chat.channel_type}:{chat.platform_id}", "name": chat.name, "dm": chat.is_dm,
                          "wired_to": wired, "sender_policy": chat.sender_policy})
        groups = [{"id": g.id, "name": g.name, "admin": g.is_admin,
                   "mounts": {m.name: m.host_path + ("" if m.writable else " (ro)")
                              for m in group_mounts.for_group(self.conn, g.id)}}
                  for g in agent_groups.list_all(self.conn)]
        return json.dumps({"agent_groups": groups, "chats": chats})

    def _wire(self, payload: dict[str, Any]) -> str:
        spec = str(payload.get("chat", ""))
        channel, _, platform_id = spec.partition(":")
        chat = messaging_groups.find(self.conn, channel, platform_id) if platform_id else None
        if chat is None:
            raise DestinationRefused(f"unknown chat {spec!r}: it must have written to the assistant (see list_groups)")
        target = str(payload.get("agent_group") or "main")
        if agent_groups.get(self.conn, target) is None:
            raise DestinationRefused(f"no agent group {target!r}")
        try:
            wiring = wirings.wire(
                self.conn, chat.id, target, trigger=str(payload.get("trigger") or "mention"),
                trigger_value=payload.get("trigger_value"),
                session_mode=str(payload.get("session_mode") or "per-thread"),
            )
            policy = payload.get("sender_policy")
            if policy:
                if policy not in messaging_groups.POLICIES:
                    raise ConfigError(f"sender_policy must be one of {', '.join(messaging_groups.POLICIES)}")
                messaging_groups.set_policy(self.conn, chat.id, str(policy))
        except ConfigError as exc:
            raise DestinationRefused(str(exc)) from exc
        self.wired(chat.id)
        return f"Wired {spec} to {target} (trigger {wiring.trigger}, sessions {wiring.session_mode})"
