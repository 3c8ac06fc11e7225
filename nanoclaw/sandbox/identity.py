"""Who an agent is on the host: one uid per agent group, from a range no host account owns.

On a root host a sandbox runs as a plain host uid (no user namespace mapping it
to root: a sandbox process whose kernel uid is 0 passes root-only checks such
as /proc/sys writes). Each agent group gets its own uid, `base + offset`, so
groups share no per-user limits (processes, inotify watches, memory locks)
with each other or with a person who happens to have the same uid, and one
group's files are not another's. The range is checked against the host's
accounts and subordinate id ranges at start.

A non-root host runs sandboxes in a user namespace where the agent is uid
1000 of that namespace (the host user outside): there is one uid to give.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from nanoclaw.errors import ConfigError

SANDBOX_UID = 1000  # the agent's uid inside a user namespace (non-root hosts)
# Above the ranges systemd hands out (dynamic users 61184-65519, containers up to 0x6FFFFFFF) and
# far above the subordinate ids useradd gives (100000 + 65536 per user).
DEFAULT_UID_BASE = 1_900_000_000
UID_RANGE = 65_536


def group_uid(offset: int | None, base: int = DEFAULT_UID_BASE) -> int:
    """The host uid (and gid) of an agent group's sandboxes; SANDBOX_UID on a non-root host."""
    if os.geteuid() != 0:
        return SANDBOX_UID
    if offset is None or not 0 < offset < UID_RANGE:
        raise ConfigError(f"agent group uid offset {offset!r} is outside 1..{UID_RANGE - 1}")
    return base + offset


def check_uid_range(base: int = DEFAULT_UID_BASE, count: int = UID_RANGE,
                    subid_files: tuple[Path, ...] = (Path("/etc/subuid"), Path("/etc/subgid"))) -> None:
    """Refuse a range that a host account, group or subordinate id range already uses."""
    if not 0 < base or base + count > 2**32 - 2:
        raise ConfigError(f"sandbox uid range {base}..{base + count - 1} is not a valid uid range")
    end = base + count
    users = [p.pw_name for p in pwd.getpwall() if base <= p.pw_uid < end]
    groups = [g.gr_name for g in grp.getgrall() if base <= g.gr_gid < end]
    overlaps = []
    for path in subid_files:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                start, size = int(fields[1]), int(fields[2])
                if start < end and base < start + size:
                    overlaps.append(f"{fields[0]} in {path}")
    taken = [f"user {u}" for u in users] + [f"group {g}" for g in groups] + overlaps
    if taken:
        raise ConfigError(
            f"the sandbox uid range {base}..{end - 1} is used by {', '.join(taken[:5])}; agents must not share "
            "a uid with anyone: set NANOCLAW_SANDBOX_UID_BASE to a free range")
