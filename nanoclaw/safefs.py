"""One way in: every host access to a tree a sandbox can write.

Group folders, session folders (inbox/, outbox/, the databases), Claude
Code's per-group state, skills and memory files are written by agents, so for
the host they are hostile input: any name there may be a link to a host file,
a FIFO that blocks a reader forever, a device, or a sparse file of a terabyte.

A `Tree` is such a folder, opened once from a host path the host owns. Every
path below it is resolved from that directory descriptor without following a
single link: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`
where the kernel has it (Linux 5.6+; called through ctypes, Python's `os` has
no `openat2`), else a walk that opens each component with `O_NOFOLLOW`.
Reads take regular files only and are bounded; writes go to a temporary file
that is renamed over the name inside the same directory descriptor (which
replaces a planted link instead of writing through it).

Defence in depth: on a root host a tree is worked on with the rights of the
sandbox user that owns it (the thread's filesystem uid is switched for the
duration of each call), so even a link this module missed leads only where
that user could go anyway — never to a root-owned file.

Nothing else in the host opens, lists, copies or changes these trees by path
(`tests/security/test_hostile_agent.py` checks this with an audit hook).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

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


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file", "dir", "link", "fifo", "socket", "device"
    size: int
    mode: int


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


class Tree:
    """A sandbox-writable folder, held by a directory descriptor; every path is relative to it."""

    def __init__(self, fd: int, path: Path, owner: int | None) -> None:
        self.fd = fd
        self.path = path  # for messages and logs only, never reopened
        self.owner = owner

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, owner: int | None = None, create: bool = False, mode: int = 0o755) -> Tree:
        """Open the folder at `path`, whose parents are the host's own (they are not checked for links).

        `create` makes the last component if missing (as root, then handed to `owner`). The
        last component itself must be a real folder, not a link to one.
        """
        if create:
            try:
                os.mkdir(path, mode)
                if owner is not None and os.geteuid() == 0:
                    os.chown(path, owner, owner, follow_symlinks=False)
            except FileExistsError:
                pass
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError as exc:
            raise UnsafePath(f"{path} is not a folder ({exc.strerror})") from exc
        if owner is not None and os.geteuid() == 0 and os.fstat(fd).st_uid != owner:
            os.fchown(fd, owner, owner)  # the top belongs to the sandbox user too (made by root, or a new uid)
        return cls(fd, path, owner)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten tree must not leak its descriptor
        with contextlib.suppress(Exception):
            self.close()

    def subtree(self, rel: str, *, create: bool = False, mode: int = 0o755) -> Tree:
        """The folder `rel` below this one as its own tree; with `create`, made (with its parents) if missing."""
        if create:
            self.mkdir(rel, mode=mode, parents=True)
        with acting_as(self.owner):
            try:
                fd = _open_beneath(self.fd, rel, _DIR_FLAGS)
            except OSError as exc:
                raise UnsafePath(f"{self.path / rel} is not a folder ({exc.strerror})") from exc
        return Tree(fd, self.path / rel, self.owner)

    def proc_path(self, name: str = "") -> str:
        """A path naming this very folder (not whatever is at its name now), for APIs that take paths (SQLite)."""
        if name:
            _parts(name)
            if "/" in name:
                raise UnsafePath(f"{name!r}: one name only")
        return f"/proc/self/fd/{self.fd}" + (f"/{name}" if name else "")

    # -- looking ---------------------------------------------------------------------------

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry itself (a link is reported as a link), or None if there is nothing."""
        parts = _parts(rel)
        if not parts:
            return os.fstat(self.fd)
        with acting_as(self.owner):
            try:
                parent = _open_beneath(self.fd, "/".join(parts[:-1]), _DIR_FLAGS) if len(parts) > 1 else None
            except OSError:
                return None
            try:
                return os.stat(parts[-1], dir_fd=self.fd if parent is None else parent, follow_symlinks=False)
            except OSError:
                return None
            finally:
                if parent is not None:
                    os.close(parent)

    def kind(self, rel: str) -> str | None:
        st = self.lstat(rel)
        return None if st is None else _kind(st.st_mode)

    def is_file(self, rel: str) -> bool:
        return self.kind(rel) == "file"

    def list(self, rel: str = "") -> list[Entry]:
        """What is in a folder, links and special files reported as such (never followed)."""
        with self._dir_fd(rel) as fd, acting_as(self.owner):
            entries = []
            for name in os.listdir(fd):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                entries.append(Entry(name, _kind(st.st_mode), st.st_size, st.st_mode))
        return sorted(entries, key=lambda e: e.name)

    def walk(self, rel: str = "", *, max_depth: int = 128, max_entries: int = 500_000,
             too_deep: Callable[[str], None] | None = None) -> Iterator[tuple[str, Entry]]:
        """Every entry below `rel`, depth first, by descriptors; links are listed, never entered.

        Bounded, since an agent can make its tree as deep and wide as its quota allows:
        folders deeper than `max_depth` are listed but not entered (`too_deep` hears of each),
        and more than `max_entries` entries is an error.
        """
        count = 0

        def visit(prefix: str, depth: int) -> Iterator[tuple[str, Entry]]:
            nonlocal count
            for entry in self.list(prefix):
                count += 1
                if count > max_entries:
                    raise UnsafePath(f"{self.path} holds more than {max_entries} entries")
                path = f"{prefix}/{entry.name}" if prefix else entry.name
                yield path, entry
                if entry.kind == "dir":
                    if depth >= max_depth:
                        if too_deep is not None:
                            too_deep(path)
                        continue
                    yield from visit(path, depth + 1)

        yield from visit(rel, 0)

    # -- reading ---------------------------------------------------------------------------

    def open_file(self, rel: str, *, limit: int = DEFAULT_READ_LIMIT) -> int:
        """A read descriptor of the regular file `rel`, at most `limit` bytes long (the caller closes it)."""
        with acting_as(self.owner):
            try:
                fd = _open_beneath(self.fd, rel, _READ_FLAGS)
            except OSError as exc:
                raise UnsafePath(f"cannot read {rel}: {_why(exc)}") from exc
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise UnsafePath(f"{rel} is a {_kind(st.st_mode)}, not a plain file")
        if st.st_size > limit:
            os.close(fd)
            raise UnsafePath(f"{rel} is larger than {_size(limit)}")
        os.set_blocking(fd, True)
        return fd

    def read_bytes(self, rel: str, *, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        fd = self.open_file(rel, limit=limit)
        try:
            chunks, total = [], 0
            while total <= limit:
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        finally:
            os.close(fd)
        if total > limit:  # it grew while we read
            raise UnsafePath(f"{rel} is larger than {_size(limit)}")
        return b"".join(chunks)

    def read_text(self, rel: str, *, limit: int = DEFAULT_READ_LIMIT) -> str:
        return self.read_bytes(rel, limit=limit).decode("utf-8", errors="replace")

    # -- writing ---------------------------------------------------------------------------

    def mkdir(self, rel: str, *, mode: int = 0o755, parents: bool = False) -> None:
        """Make a folder (and with `parents` the ones above); one that exists is fine, a link there is not."""
        parts = _parts(rel)
        with acting_as(self.owner):
            for i in range(0 if parents else len(parts) - 1, len(parts)):
                prefix = "/".join(parts[: i + 1])
                with self._parent_of(prefix) as (parent, name):
                    try:
                        os.mkdir(name, mode, dir_fd=parent)
                    except FileExistsError:
                        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                        if not stat.S_ISDIR(st.st_mode):
                            raise UnsafePath(f"{self.path / prefix} is a {_kind(st.st_mode)}, not a folder") from None

    def write_bytes(self, rel: str, data: bytes, *, mode: int = 0o644, replace: bool = True) -> bool:
        """Write a whole file: a temporary file renamed over the name, so a planted link is replaced, not followed.

        With `replace=False` an existing entry is left alone (False is returned); a link or
        special file under the name still counts as existing, and is never written through.
        """
        with acting_as(self.owner), self._parent_of(rel) as (parent, name):
            if not replace:
                try:
                    os.stat(name, dir_fd=parent, follow_symlinks=False)
                    return False
                except FileNotFoundError:
                    pass
            tmp = f".{name[:100]}.{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
            try:
                with os.fdopen(fd, "wb", closefd=False) as f:
                    f.write(data)
                os.fchmod(fd, mode)
            except BaseException:
                os.close(fd)
                os.unlink(tmp, dir_fd=parent)
                raise
            os.close(fd)
            try:
                if replace:
                    os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
                else:  # link(2) fails if the name appeared meanwhile: never clobber
                    os.link(tmp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
            except FileExistsError:
                return False
            except IsADirectoryError:
                raise UnsafePath(f"{self.path / rel} is a folder") from None
            finally:
                if not replace:
                    os.unlink(tmp, dir_fd=parent)
            return True

    def write_from(self, rel: str, source_fd: int, *, mode: int = 0o644) -> None:
        """Write a whole file from another descriptor (holes stay holes), by temporary file and rename."""
        with acting_as(self.owner), self._parent_of(rel) as (parent, name):
            tmp = f".{name[:100]}.{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
            try:
                _copy_data(source_fd, fd)
                os.fchmod(fd, mode)
            except BaseException:
                os.close(fd)
                os.unlink(tmp, dir_fd=parent)
                raise
            os.close(fd)
            try:
                os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except IsADirectoryError:
                os.unlink(tmp, dir_fd=parent)
                raise UnsafePath(f"{self.path / rel} is a folder") from None

    def readlink(self, rel: str) -> str:
        """Where a link points (read, never followed)."""
        with acting_as(self.owner), self._parent_of(rel) as (parent, name):
            return os.readlink(name, dir_fd=parent)

    def symlink(self, rel: str, points_to: str) -> None:
        with acting_as(self.owner), self._parent_of(rel) as (parent, name):
            os.symlink(points_to, name, dir_fd=parent)

    def write_text(self, rel: str, text: str, *, mode: int = 0o644, replace: bool = True) -> bool:
        return self.write_bytes(rel, text.encode("utf-8"), mode=mode, replace=replace)

    def set_aside(self, rel: str, suffix: str) -> str | None:
        """Rename an entry (whatever it is, links included, never followed) to `<name>.<suffix>`; its new name."""
        with acting_as(self.owner), self._parent_of(rel) as (parent, name):
            new = f"{name}.{suffix}"
            try:
                os.rename(name, new, src_dir_fd=parent, dst_dir_fd=parent)
            except FileNotFoundError:
                return None
            return new

    def remove(self, rel: str) -> bool:
        """Remove a file, link, FIFO or a whole folder (by descriptors; links inside are removed, not followed)."""
        with acting_as(self.owner), self._parent_of(rel) as (parent, name):
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return False
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=parent)
                try:
                    _empty_dir(sub)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
            return True

    def mkfifo(self, rel: str, mode: int = 0o600) -> None:
        with acting_as(self.owner), self._parent_of(rel) as (parent, name):
            os.mkfifo(name, mode, dir_fd=parent)

    def open_fifo(self, rel: str) -> int:
        """Open a FIFO read-write and non-blocking; anything else under the name is refused."""
        with acting_as(self.owner):
            try:
                fd = _open_beneath(self.fd, rel, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                raise UnsafePath(f"cannot open {rel}: {_why(exc)}") from exc
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(f"{rel} is not a FIFO")
        return fd

    def copy_in(self, source: Path, rel: str) -> int:
        """Copy a folder the host trusts (the project's skills) to `rel`, replacing what the agent left there.

        Each file is written by `write_bytes` (links in the way are replaced); returns the files copied.
        """
        copied = 0
        self.mkdir(rel, parents=True)
        for item in sorted(source.iterdir()):
            target = f"{rel}/{item.name}"
            if item.is_symlink():
                continue  # the project's own tree has none; never copy a link into the sandbox's
            if item.is_dir():
                if self.kind(target) not in (None, "dir"):
                    self.remove(target)
                copied += self.copy_in(item, target)
            elif item.is_file():
                if self.kind(target) == "dir":
                    self.remove(target)
                self.write_bytes(target, item.read_bytes(), mode=0o644)
                copied += 1
        return copied

    def give(self, *names: str, uid: int) -> None:
        """Hand single entries of this folder to `uid` (root hosts), never following a link."""
        if os.geteuid() != 0:
            return
        for name in names:
            with self._parent_of(name) as (parent, last):
                try:
                    st = os.stat(last, dir_fd=parent, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if st.st_uid != uid and not (stat.S_ISREG(st.st_mode) and st.st_nlink > 1):
                    os.chown(last, uid, uid, dir_fd=parent, follow_symlinks=False)

    def chown_all(self, uid: int, *, keep: frozenset[str] = frozenset()) -> None:
        """Give the whole tree to `uid` (root hosts: the hand-over before a sandbox starts).

        By descriptors, never following a link; a file with several names is skipped (it may
        be a host file hard-linked in); names in `keep` (relative) stay the host's.
        """
        if os.geteuid() != 0:
            return
        os.fchown(self.fd, uid, uid)
        _chown_below(self.fd, "", uid, keep)

    # -- helpers ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _dir_fd(self, rel: str) -> Iterator[int]:
        if not _parts(rel):
            yield self.fd
            return
        with acting_as(self.owner):
            try:
                fd = _open_beneath(self.fd, rel, _DIR_FLAGS)
            except OSError as exc:
                raise UnsafePath(f"{self.path / rel} is not a folder ({_why(exc)})") from exc
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _parent_of(self, rel: str) -> Iterator[tuple[int, str]]:
        parts = _parts(rel)
        if not parts:
            raise UnsafePath("a name is needed")
        with self._dir_fd("/".join(parts[:-1])) as parent:
            yield parent, parts[-1]


def copy_tree(source: Tree, target: Tree, *, skip: Callable[[str, Entry], bool] | None = None,
              too_deep: Callable[[str], None] | None = None) -> int:
    """Copy everything below `source` into `target`; returns the files copied.

    Folders and files (holes kept), links as links (never followed); FIFOs, sockets
    and devices are left out, and so is whatever `skip` says or the walk finds too deep.
    """
    copied = 0
    for path, entry in source.walk(too_deep=too_deep):
        if skip is not None and skip(path, entry):
            continue
        if entry.kind == "dir":
            target.mkdir(path, mode=(entry.mode & 0o777) | 0o700)
        elif entry.kind == "file":
            try:
                fd = source.open_file(path, limit=1 << 62)
            except UnsafePath:
                continue  # replaced while we walked
            try:
                target.write_from(path, fd, mode=entry.mode & 0o777)
            finally:
                os.close(fd)
            copied += 1
        elif entry.kind == "link":
            target.symlink(path, source.readlink(path))
    return copied


def _copy_data(src: int, dst: int) -> None:
    """Copy a file's data segments only (SEEK_DATA/SEEK_HOLE), so a sparse file stays sparse."""
    size = os.fstat(src).st_size
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
            end = os.lseek(src, start, os.SEEK_HOLE)
        except OSError:  # ENXIO: no data after offset
            break
        os.lseek(src, start, os.SEEK_SET)
        while start < end:
            chunk = os.read(src, min(1 << 20, end - start))
            if not chunk:
                break
            os.pwrite(dst, chunk, start)
            start += len(chunk)
        offset = end
    os.ftruncate(dst, size)


def _empty_dir(fd: int, depth: int = 0) -> None:
    if depth > 256:
        raise UnsafePath("folder nested too deep to remove")
    for name in os.listdir(fd):
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            try:
                _empty_dir(sub, depth + 1)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)


def _chown_below(fd: int, prefix: str, uid: int, keep: frozenset[str], depth: int = 0) -> None:
    if depth > 256:
        return
    for name in os.listdir(fd):
        rel = f"{prefix}{name}"
        if rel in keep:
            continue
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if st.st_uid != uid and not (stat.S_ISREG(st.st_mode) and st.st_nlink > 1):
                os.chown(name, uid, uid, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                continue
            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            continue  # gone or swapped meanwhile: not followed
        try:
            _chown_below(sub, rel + "/", uid, keep, depth + 1)
        finally:
            os.close(sub)


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.EXDEV):
        return "it is a link (links are never followed)"
    if exc.errno == errno.ENXIO:
        return "it is a socket or device"
    return exc.strerror or str(exc)


def _size(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n / 1024:g} KB"
