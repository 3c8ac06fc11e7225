"""Mounting folders into a sandbox that is already running, by mount propagation (root hosts).

A pooled sandbox starts with `/workspace` bound from a host folder that is a
*shared* mount point (`SlotPoint`). The runtime's copy inside the sandbox is a
slave of it, so whatever the host later mounts on that point appears inside
the sandbox, and nothing the sandbox mounts comes back. Adoption mounts the
session folder there, then the session's nested mounts (read-only host files,
the group folder, global memory, extra folders) on top of it.

Everything is done from descriptors with the new mount API (Linux 5.12+:
`open_tree`, `mount_setattr`, `move_mount`), never by following a path a
sandbox could have written: a clone of a folder is taken from its directory
descriptor, made read-only (or nosuid/nodev) *before* it is attached (a
remount after attaching would not reach the copy inside), and attached to a
name resolved under the slot's descriptor without following a link.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from nanoclaw.errors import SandboxUnavailable

# Syscall numbers shared by every architecture since 5.x (asm-generic/unistd.h).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 1
_AT_EMPTY_PATH = 0x1000
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_RECURSIVE = 0x8000
_MOVE_MOUNT_F_EMPTY_PATH = 0x04
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MS_SHARED = 1 << 20
_MNT_DETACH = 2


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(result)


def available() -> tuple[bool, str]:
    """Whether this host can attach folders to running sandboxes, and why not."""
    if os.geteuid() != 0:
        return False, "needs a root host (the host mounts the session folder into the waiting sandbox)"
    try:
        fd = clone(os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), close_source=True)
    except OSError as exc:
        return False, f"the kernel lacks the new mount API (Linux 5.12+): {exc.strerror}"
    os.close(fd)
    return True, "mount propagation into a waiting sandbox"


def clone(dir_fd: int, name: str = "", *, readonly: bool = False, close_source: bool = False) -> int:
    """A detached copy of the mount at `dir_fd` (or of its entry `name`, never a link), nosuid and nodev."""
    try:
        flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | (_AT_SYMLINK_NOFOLLOW if name else _AT_EMPTY_PATH)
        fd = _check(_libc.syscall(_SYS_OPEN_TREE, dir_fd, name.encode(), flags), f"open_tree {name or '.'}")
    finally:
        if close_source:
            os.close(dir_fd)
    attr = _MountAttr(_MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV | (_MOUNT_ATTR_RDONLY if readonly else 0), 0, 0, 0)
    try:
        _check(_libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)),
               "mount_setattr")
    except OSError:
        os.close(fd)
        raise
    return fd


def attach(mount_fd: int, to_dir_fd: int, name: str) -> None:
    """Attach a detached mount on `name` below `to_dir_fd` (a single name: no link is followed); closes it."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a single name: {name!r}")
    try:
        _check(_libc.syscall(_SYS_MOVE_MOUNT, mount_fd, b"", to_dir_fd, name.encode(), _MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount onto {name}")
    finally:
        os.close(mount_fd)


def attach_at(mount_fd: int, point: Path) -> None:
    """Attach a detached mount on a host-owned mount point (the slot's own folder); closes it."""
    try:
        _check(_libc.syscall(_SYS_MOVE_MOUNT, mount_fd, b"", -100, str(point).encode(), _MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount onto {point}")
    finally:
        os.close(mount_fd)


def slot_filesystem(path: Path) -> None:
    """A small tmpfs of the host's own at `path` for slot folders (once; a no-op if mounted already).

    A sandbox sees the source path of its `/workspace` mount in /proc/self/mountinfo, relative to the
    filesystem it is on: on this tmpfs that is `/<slot>/ws`, not a path of the host's home.
    """
    from nanoclaw.sandbox.quota import mounted_points  # the one parser of mountinfo

    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    if str(path) in mounted_points():
        return
    p = str(path).encode()
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    try:
        _check(_libc.mount(b"nanoclaw-pool", p, b"tmpfs", flags, b"size=1m,mode=0755"), "mount tmpfs")
        _check(_libc.mount(None, p, None, _MS_PRIVATE, None), "make-private")
    except OSError as exc:
        raise SandboxUnavailable(f"cannot mount the pool's folder {path}: {exc}") from exc


def release_filesystem(path: Path) -> None:
    """Let the slot folders' tmpfs go (lazily: a sandbox being torn down may still hold it)."""
    _libc.umount2(str(path).encode(), _MNT_DETACH)


class SlotPoint:
    """A host folder made a shared mount point: what the host mounts on it shows inside the sandbox."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        p = str(path).encode()
        try:
            _check(_libc.mount(p, p, None, _MS_BIND, None), "bind")
        except OSError as exc:
            raise SandboxUnavailable(f"cannot make the pool's mount point {path}: {exc}") from exc
        # Private first: its own peer group, so nothing mounted here reaches the host's other mounts.
        _check(_libc.mount(None, p, None, _MS_PRIVATE, None), "make-private")
        _check(_libc.mount(None, p, None, _MS_SHARED, None), "make-shared")

    def open(self) -> int:
        """A descriptor of what is mounted on the point now (after adoption: the session folder)."""
        return os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def release(self) -> None:
        """Detach everything mounted here (and the point itself), and remove the folders the host made."""
        self.release_path(self.path)

    @classmethod
    def release_path(cls, path: Path) -> None:
        cls.detach(path)
        for folder in (path / "agent", path / "global", path, path.parent):
            try:
                folder.rmdir()
            except OSError:
                pass

    @staticmethod
    def detach(path: Path) -> None:
        """Unmount everything stacked on `path`; lazily, a sandbox being torn down may still hold it."""
        p = str(path).encode()
        while _libc.umount2(p, _MNT_DETACH) == 0:
            pass
