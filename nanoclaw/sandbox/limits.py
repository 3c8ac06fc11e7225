"""Resource limits of a bwrap sandbox: a cgroup when the host can make one, rlimits always.

Order of preference: `systemd-run --scope` where systemd manages cgroups, a
cgroup made directly (root, cgroup v1 or v2), else rlimits only (address space
and process count stand in for the memory and pids limits). OCI runtimes
apply the same numbers through their own flags.
"""

from __future__ import annotations

import os
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nanoclaw.logs import get_logger
from nanoclaw.sandbox.base import Limits

log = get_logger("nanoclaw.sandbox.limits")

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("pids", "memory", "cpu")


@dataclass
class Cgroup:
    """One sandbox's cgroup: a directory per v1 hierarchy, or one v2 directory."""

    dirs: list[Path]

    def join(self) -> None:
        """Called in the child before exec: everything it starts stays inside."""
        pid = str(os.getpid()).encode()
        for d in self.dirs:
            fd = os.open(d / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(found)

    def remove(self) -> None:
        for d in self.dirs:
            for folder in (d, d.parent):  # the home's group folder goes with its last sandbox
                try:
                    folder.rmdir()
                except OSError:
                    break  # still busy (or other sandboxes of the home): the next start retries


def systemd_scope(limits: Limits) -> list[str]:
    """A command prefix putting the sandbox in its own systemd scope, or [] where systemd does not run."""
    exe = shutil.which("systemd-run")
    if not exe or not Path("/run/systemd/system").is_dir():
        return []
    prefix = [exe, "--scope", "--quiet", "--collect"]
    if os.getuid() != 0:
        prefix.append("--user")
    return [*prefix, "-p", f"MemoryMax={limits.memory_mb}M", "-p", "MemorySwapMax=0",
            "-p", f"TasksMax={limits.pids}", "-p", f"CPUQuota={int(limits.cpus * 100)}%", "--"]


def make_cgroup(group: str, name: str, limits: Limits, root: Path = CGROUP_ROOT) -> Cgroup | None:
    """Create `group/name` with the limits set, or None when this host cannot (not root, read-only…)."""
    if os.getuid() != 0:
        return None
    try:
        if (root / "cgroup.controllers").is_file():
            return _make_v2(root / group, name, limits)
        if all((root / c).is_dir() for c in V1_CONTROLLERS):
            return _make_v1(root, group, name, limits)
    except OSError as exc:
        log.warning("cgroup.unavailable", error=str(exc))
    return None


def _make_v1(root: Path, group: str, name: str, limits: Limits) -> Cgroup:
    dirs = []
    for controller in V1_CONTROLLERS:
        d = root / controller / group / name
        d.mkdir(parents=True, exist_ok=True)
        dirs.append(d)
    (dirs[0] / "pids.max").write_text(str(limits.pids))
    (dirs[1] / "memory.limit_in_bytes").write_text(str(limits.memory_mb << 20))
    try:
        (dirs[1] / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_mb << 20))
    except OSError:
        pass  # swap accounting off: no swap to limit
    (dirs[2] / "cpu.cfs_period_us").write_text("100000")
    (dirs[2] / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * 100000)))
    return Cgroup(dirs)


def _make_v2(parent: Path, name: str, limits: Limits) -> Cgroup:
    parent.mkdir(exist_ok=True)
    for level in (parent.parent, parent):
        (level / "cgroup.subtree_control").write_text("+pids +memory +cpu")
    d = parent / name
    d.mkdir(exist_ok=True)
    (d / "pids.max").write_text(str(limits.pids))
    (d / "memory.max").write_text(str(limits.memory_mb << 20))
    (d / "memory.swap.max").write_text("0")
    (d / "cpu.max").write_text(f"{int(limits.cpus * 100000)} 100000")
    return Cgroup([d])


def rlimits(limits: Limits, *, contained: bool) -> dict[int, int]:
    """The rlimits of a sandbox; `contained`: a cgroup already limits memory and processes."""
    values = {
        resource.RLIMIT_FSIZE: limits.file_mb << 20,
        resource.RLIMIT_CPU: limits.cpu_seconds,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: 4096,
    }
    if not contained:
        # Virtual address space is a blunt stand-in for memory: runtimes reserve more than they use.
        values[resource.RLIMIT_AS] = (limits.memory_mb * 4) << 20
        values[resource.RLIMIT_NPROC] = limits.pids
    return values


def preexec(cgroup: Cgroup | None, limits: dict[int, int]) -> Callable[[], None]:
    def apply() -> None:
        if cgroup is not None:
            cgroup.join()
        for which, value in limits.items():
            resource.setrlimit(which, (value, value))
    return apply
