"""Doorbell FIFOs: the writer of a commit wakes the other side (DESIGN §3).

Each side opens its FIFOs O_RDWR so an open never blocks and the reader never
sees EOF. A full pipe means the bell is already ringing, so EAGAIN is ignored.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class Doorbell:
    def __init__(self, path: Path) -> None:
        # O_NOFOLLOW + fstat: a FIFO replaced by a link or a file is refused.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        if not stat.S_ISFIFO(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            raise PermissionError(f"{path} is not a FIFO")
        self.path = path

    @classmethod
    def from_fd(cls, fd: int, path: Path) -> Doorbell:
        """A FIFO already opened (read-write, non-blocking) by the host's safe-file module."""
        bell = cls.__new__(cls)
        bell.fd, bell.path = fd, path
        return bell

    def fileno(self) -> int:
        return self.fd

    def ring(self) -> None:
        try:
            os.write(self.fd, b"!")
        except (BlockingIOError, BrokenPipeError):
            pass

    def drain(self) -> None:
        # A short read means the pipe is empty: no second read that can only fail (it runs on every wake).
        try:
            while len(os.read(self.fd, 4096)) == 4096:
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
