"""First run: the admin agent group `main` and the owner's terminal and web chats (folders: host/folders.py)."""

from __future__ import annotations

import fcntl
import getpass
import os
import sqlite3
from pathlib import Path

from nanoclaw.config import Settings
from nanoclaw.errors import NanoClawError
from nanoclaw.db import agent_groups, messaging_groups, users, wirings

TERMINAL_CHAT = "local"
WEB_CHAT = "owner"  # the owner's web chat, on the host's own web server


def ensure_home(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.home.chmod(0o700)  # messages, memory and keys live here
    for path in (settings.groups_dir, settings.sessions_dir, settings.state_dir, settings.logs_dir):
        path.mkdir(exist_ok=True)


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
    return fresh


def ensure_web_chat(conn: sqlite3.Connection) -> None:
    """The web chat is the owner's DM with `main`, one session per thread; homes made before it get it too."""
    if messaging_groups.find(conn, "web", WEB_CHAT) is not None:
        return  # there already (possibly re-wired by the owner: leave it)
    chat = messaging_groups.upsert(conn, "web", WEB_CHAT, name="Web chat", is_dm=True)
    wirings.wire(conn, chat.id, "main", trigger="dm", session_mode="per-thread")
    users.upsert(conn, "web", WEB_CHAT, "Owner", role="owner")


class HostAlreadyRunning(NanoClawError):
    pass


def take_host_lock(home: Path) -> int:
    """One host per home: an exclusive lock on home/host.lock holding our pid (the fd keeps it)."""
    fd = os.open(home / "host.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise HostAlreadyRunning(f"another NanoClaw host (pid {other}) is already running on {home}") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd
