"""Resolving a path below a directory descriptor without following links, and acting as a tree's owner."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from typing import Iterator

from nanoclaw.errors import NanoClawError

# openat2(2): struct open_how and the RESOLVE_* flags (linux/openat2.h).
_SYS_OPENAT2 = 437
_RESOLVE_NO_XDEV = 0x01
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_NO_XDEV | _RESOLVE_NO_MAGICLINKS | _RESOLVE_NO_SYMLINKS | _RESOLVE_BENEATH
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
DEFAULT_READ_LIMIT = 1 << 20


class UnsafePath(NanoClawError):
    """A path in a sandbox-writable tree is a link, a special file, too large, or leaves the tree."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_openat2_works: bool | None = None


def _openat2(dir_fd: int, rel: str, flags: int, mode: int) -> int:
    how = _OpenHow(flags, mode if flags & os.O_CREAT else 0, _RESOLVE)
    fd = _libc.syscall(_SYS_OPENAT2, dir_fd, rel.encode(), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), rel)
    return int(fd)


def openat2_available() -> bool:
    """Whether this kernel resolves with openat2 (else the O_NOFOLLOW walk is used)."""
    global _openat2_works
    if _openat2_works is None:
        root = os.open("/", _DIR_FLAGS)
        try:
            os.close(_openat2(root, ".", _DIR_FLAGS, 0))
            _openat2_works = True
        except OSError as exc:
            _openat2_works = exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL)
        finally:
            os.close(root)
    return _openat2_works


def _parts(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p == ".." or "\0" in p for p in parts):
        raise UnsafePath(f"{rel!r} leaves its folder")
    return parts


def _open_beneath(dir_fd: int, rel: str, flags: int, mode: int = 0o600) -> int:
    """Open `rel` below `dir_fd` without following any link on the way or at the end."""
    parts = _parts(rel)
    if not parts:
        return os.open(".", flags, dir_fd=dir_fd)
    if openat2_available():
        return _openat2(dir_fd, "/".join(parts), flags | os.O_NOFOLLOW, mode)
    current = dir_fd
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=current)
            if current != dir_fd:
                os.close(current)
            current = nxt
        return os.open(parts[-1], flags | os.O_NOFOLLOW, mode, dir_fd=current)
    finally:
        if current != dir_fd:
            os.close(current)


# -- acting as the tree's owner -------------------------------------------------------------

# setgroups(2) as a raw system call changes only the calling thread (glibc's wrapper would
# change every thread of the process).
_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159}.get(os.uname().machine)
_acting = threading.local()


def _set_groups(groups: list[int]) -> None:
    if _SYS_SETGROUPS is None:
        return
    array = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
    if _libc.syscall(_SYS_SETGROUPS, len(groups), array) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "setgroups")


@contextlib.contextmanager
def acting_as(uid: int | None) -> Iterator[None]:
    """Filesystem access with the rights of `uid` for the duration (root hosts only; else a no-op).

    setfsuid/setfsgid change only the calling thread (glibc does not broadcast them): the
    thread that works on a tree drops to the sandbox user for that call, nothing else does.
    A fsuid other than 0 also drops CAP_DAC_OVERRIDE and the other file capabilities.
    """
    if uid is None or os.geteuid() != 0 or getattr(_acting, "uid", None) is not None:
        yield
        return
    groups = os.getgroups()
    _acting.uid = uid
    _set_groups([])
    _libc.setfsgid(uid)
    _libc.setfsuid(uid)
    try:
        yield
    finally:
        _libc.setfsuid(0)
        _libc.setfsgid(0)
        _set_groups(groups)
        _acting.uid = None


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.EXDEV):
        return "it is a link (links are never followed)"
    if exc.errno == errno.ENXIO:
        return "it is a socket or device"
    return exc.strerror or str(exc)


def _size(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n / 1024:g} KB"
