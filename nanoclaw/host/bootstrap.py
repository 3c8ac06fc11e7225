"""First run: the admin agent group `main`, global memory, and the owner's terminal chat."""

from __future__ import annotations

import getpass
import sqlite3
from pathlib import Path

from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, messaging_groups, users, wirings

TERMINAL_CHAT = "local"
WEB_CHAT = "owner"  # the owner's web chat, on the host's own web server

MAIN_MEMORY = """# {name} — main

You are {name}, the owner's personal assistant. This is your admin group: the
owner's private chat. Keep notes here about the owner and ongoing work; this
file is your memory and you may edit it.

Wrap thoughts that should not be sent in <internal>…</internal>.
"""

GLOBAL_MEMORY = """# Global memory

Facts every agent group should know. Read-only for all groups except `main`.
"""

GROUP_MEMORY = """# {name} — {group}

Memory of this agent group. Edit this file to remember things.
"""


def ensure_home(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.home.chmod(0o700)  # messages, memory and keys live here
    for path in (settings.groups_dir, settings.sessions_dir, settings.state_dir, settings.logs_dir):
        path.mkdir(exist_ok=True)


def ensure_group_folder(settings: Settings, group_id: str, is_admin: bool = False) -> Path:
    """Create the agent group's folder and memory file if missing (also after someone deleted them)."""
    folder = settings.groups_dir / group_id
    folder.mkdir(parents=True, exist_ok=True)
    memory = folder / "CLAUDE.md"
    if not memory.exists():
        template = MAIN_MEMORY if is_admin else GROUP_MEMORY
        memory.write_text(template.format(name=settings.assistant_name, group=group_id))
    global_dir = settings.groups_dir / "global"
    global_dir.mkdir(exist_ok=True)
    if not (global_dir / "CLAUDE.md").exists():
        (global_dir / "CLAUDE.md").write_text(GLOBAL_MEMORY)
    return folder


def first_run(conn: sqlite3.Connection, settings: Settings) -> bool:
    """Set up a fresh home; returns True if it was fresh."""
    ensure_home(settings)
    fresh = agent_groups.get(conn, "main") is None
    if fresh:
        agent_groups.create(conn, "main", "Main (admin)", is_admin=True)
        chat = messaging_groups.upsert(conn, "terminal", TERMINAL_CHAT, name="Terminal", is_dm=True)
        wirings.wire(conn, chat.id, "main", trigger="dm", session_mode="shared")
        users.upsert(conn, "terminal", getpass.getuser(), getpass.getuser(), role="owner")
    ensure_web_chat(conn)
    ensure_group_folder(settings, "main", is_admin=True)
    return fresh


def ensure_web_chat(conn: sqlite3.Connection) -> None:
    """The web chat is the owner's DM with `main`, one session per thread; homes made before it get it too."""
    if messaging_groups.find(conn, "web", WEB_CHAT) is not None:
        return  # there already (possibly re-wired by the owner: leave it)
    chat = messaging_groups.upsert(conn, "web", WEB_CHAT, name="Web chat", is_dm=True)
    wirings.wire(conn, chat.id, "main", trigger="dm", session_mode="per-thread")
    users.upsert(conn, "web", WEB_CHAT, "Owner", role="owner")
