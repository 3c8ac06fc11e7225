"""`Tree`: a sandbox-writable folder held by a directory descriptor (see the package docstring)."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from nanoclaw.safefs.resolve import (
    _DIR_FLAGS, _READ_FLAGS, DEFAULT_READ_LIMIT, UnsafePath, _open_beneath, _parts, _size, _why, acting_as,
)


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

    def rename(self, rel: str, new_name: str) -> None:
        """Rename an entry within its folder (a link is renamed, never followed); refused if `new_name` exists."""
        with acting_as(self.owner), self._parent_of(rel) as (parent, name):
            try:
                os.stat(new_name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                os.rename(name, new_name, src_dir_fd=parent, dst_dir_fd=parent)
                return
            raise UnsafePath(f"{self.path / new_name} exists already")

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
