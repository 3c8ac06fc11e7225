"""The processes of a running sandbox, seen from the host: its tree below the launcher, their memory and priority."""

from __future__ import annotations

import os
from pathlib import Path

POOLED_NICE = 10  # a pooled sandbox warms up behind live turns (restored to 0 at adoption)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the sandbox launcher): from the kernel's child lists, else one pass over /proc."""
    try:
        return _from_child_lists(pid)
    except OSError:
        pass
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


def _from_child_lists(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue  # gone meanwhile
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children", "rb") as f:
                    kids = [int(k) for k in f.read().split()]
            except FileNotFoundError:
                if not os.path.exists("/proc/self/task/%d/children" % os.getpid()):
                    raise  # the kernel keeps no child lists: the caller scans /proc
                continue
            found += kids
            todo += kids
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
    """Set the CPU priority of a sandbox's processes and all their threads (Linux keeps one per thread)."""
    for p in [pid, *descendants(pid)]:
        try:
            tasks = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except (FileNotFoundError, ValueError):
            continue  # gone meanwhile
        for tid in tasks:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, value)
            except (ProcessLookupError, PermissionError):
                pass
