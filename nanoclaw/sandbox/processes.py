"""The processes of a running sandbox, seen from the host: its tree below the launcher, their memory and priority."""

from __future__ import annotations

import os
from pathlib import Path

POOLED_NICE = 10  # a pooled sandbox warms up behind live turns (restored to 0 at adoption)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the sandbox launcher), by one pass over /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MiB (0 if it is gone); /proc/PID/status is readable without ptrace."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a sandbox: its launcher and everything below it."""
    return rss_mb(pid) + sum(rss_mb(p) for p in descendants(pid))


def renice(pid: int, value: int) -> None:
    """Set the CPU priority of a sandbox's processes (those that exit meanwhile are skipped)."""
    for p in [pid, *descendants(pid)]:
        try:
            os.setpriority(os.PRIO_PROCESS, p, value)
        except (ProcessLookupError, PermissionError):
            pass
