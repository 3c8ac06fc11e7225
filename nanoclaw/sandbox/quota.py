"""Disk quota per agent group: everything the group can write lives in one filesystem image.

`state/volumes/<group>.img` is a sparse ext4 image of the quota's size,
loop-mounted (nosuid, nodev) at `state/volumes/<group>/`; its folders are
bind-mounted where the host and the sandboxes expect them:

    agent/     →  groups/<group>          (/workspace/agent)
    sessions/  →  sessions/<group>        (/workspace of each session)
    claude/    →  state/claude/<group>    (Claude Code's state)

The kernel stops writes at the image's size: the agent gets ENOSPC and the
host's disk never fills. 2% of the image is reserved for root, so the host's
own writes there (each session's inbound.db, as root) still work when the
agent has filled the rest; the host's writes on the agent's behalf run as the
agent's uid and meet the quota like the agent. A side effect worth having:
inside the sandbox, /proc/self/mountinfo shows these mounts as
`/dev/loopN /agent`, not the host path of the home.

Needs root (loop devices, mount); elsewhere the quota is reported as
unavailable and the host runs without it (doctor says so).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nanoclaw.errors import NanoClawError
from nanoclaw.logs import get_logger
from nanoclaw.safefs import Tree, UnsafePath, copy_tree

log = get_logger("nanoclaw.sandbox.quota")
RESERVED_PERCENT = 2
_TOOLS = ("mkfs.ext4", "mount", "umount", "resize2fs")


class QuotaUnavailable(NanoClawError):
    """The disk quota cannot be enforced on this host."""


@dataclass(frozen=True)
class Usage:
    used: int
    size: int  # what the agent may fill (the image minus root's reserve)

    @property
    def full(self) -> bool:
        return self.size - self.used < 1 << 20


def check() -> tuple[bool, str]:
    """Whether quotas can be enforced here, and why not."""
    if os.geteuid() != 0:
        return False, "needs root (loop-mounted images); the host runs without a disk quota"
    missing = [t for t in _TOOLS if shutil.which(t, path="/usr/sbin:/sbin:/usr/bin:/bin") is None]
    if missing:
        return False, f"missing {', '.join(missing)} (apt-get install e2fsprogs mount)"
    if not Path("/dev/loop-control").exists():
        return False, "no /dev/loop-control: the kernel has no loop devices"
    return True, "loop-mounted ext4 image per agent group"


def mounted_points() -> set[str]:
    """Mount points of this mount namespace (octal escapes of /proc/self/mountinfo undone)."""
    points = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                points.add(_unescape(fields[4]))
    return points


def _unescape(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise QuotaUnavailable(f"{' '.join(argv[:3])}: {(result.stderr or result.stdout).strip()[:300]}")


class Volumes:
    """The images of one home; mounts them on first use and unmounts them when the host stops."""

    def __init__(self, state_dir: Path, size_mb: int) -> None:
        self.dir = state_dir / "volumes"
        self.size = size_mb << 20
        self._ready: set[str] = set()
        self._ours: dict[str, list[Path]] = {}  # what this process mounted (and unmounts), in order

    def ensure(self, name: str, binds: dict[str, Path]) -> None:
        """Mount `name`'s image (made if missing) and bind its folders onto `binds` (sub-folder → target).

        Mounts found in place (a host killed without stopping, the host while a CLI command runs)
        are used as they are and left to whoever made them.
        """
        if name in self._ready:
            return
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        image, root = self.dir / f"{name}.img", self.dir / name
        points = mounted_points()
        fresh = not image.exists()
        if fresh:
            self._make_image(image)
        root.mkdir(mode=0o700, exist_ok=True)
        made: list[Path] = []
        try:
            if str(root) not in points:
                _run("mount", "-t", "ext4", "-o", "loop,nosuid,nodev,noatime", str(image), str(root))
                made.append(root)
            self._grow(image, root)
            for sub, target in binds.items():
                (root / sub).mkdir(mode=0o755, exist_ok=True)
                target.mkdir(parents=True, exist_ok=True)
                if str(target) in points:
                    continue
                self._adopt(target, root / sub)
                _run("mount", "--bind", "-o", "nosuid,nodev", str(root / sub), str(target))
                made.append(target)
        except (QuotaUnavailable, OSError):
            for point in reversed(made):
                _unmount(point)
            raise
        self._ready.add(name)
        self._ours[name] = made
        if made:
            log.info("quota.mounted", volume=name, size_mb=self.size >> 20, fresh=fresh)

    def _make_image(self, image: Path) -> None:
        partial = image.with_name(image.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(fd, self.size)  # sparse: the host's disk is used only as the agent writes
        finally:
            os.close(fd)
        _run("mkfs.ext4", "-q", "-F", "-m", str(RESERVED_PERCENT), "-L", "nanoclaw",
             "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1", str(partial))
        partial.rename(image)

    def _grow(self, image: Path, root: Path) -> None:
        """A quota raised since the image was made: grow it in place (online); a smaller one is not shrunk."""
        if image.stat().st_size >= self.size:
            return
        with open(image, "r+b") as f:
            f.truncate(self.size)
        subprocess.run(["losetup", "-c", _loop_device(root)], capture_output=True, timeout=30)
        _run("resize2fs", _loop_device(root))
        log.info("quota.grown", volume=image.stem, size_mb=self.size >> 20)

    @staticmethod
    def _adopt(target: Path, into: Path) -> None:
        """What an older NanoClaw (or a restore) left in `target` moves into the image, links kept as links."""
        with Tree.open(target) as old:
            entries = old.list()
            if not entries:
                return
            try:
                with Tree.open(into) as new:
                    copied = copy_tree(old, new)
            except (UnsafePath, OSError) as exc:  # e.g. more than the quota: keep the files where they are
                raise QuotaUnavailable(f"cannot move the files of {target} into its disk image: {exc}") from exc
            for entry in entries:
                old.remove(entry.name)
        log.info("quota.adopted", target=target, files=copied)

    def usage(self, name: str) -> Usage | None:
        if name not in self._ready:
            return None
        st = os.statvfs(self.dir / name)
        reserve = (st.f_bfree - st.f_bavail) * st.f_frsize
        size = st.f_blocks * st.f_frsize - reserve
        return Usage(used=size - st.f_bavail * st.f_frsize, size=size)

    def names(self) -> list[str]:
        return sorted(self._ready)

    def unmount_all(self) -> None:
        for name in list(self._ours):
            points = self._ours.pop(name)
            for point in reversed(points):
                _unmount(point)
            if points:
                log.info("quota.unmounted", volume=name)
        self._ready.clear()


def _loop_device(root: Path) -> str:
    out = subprocess.run(["findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(root)],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def _unmount(point: Path) -> None:
    # Lazy as a fallback: a descriptor still open (a sandbox being torn down) must not keep the host from stopping.
    if subprocess.run(["umount", str(point)], capture_output=True, timeout=60).returncode != 0:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=60)
