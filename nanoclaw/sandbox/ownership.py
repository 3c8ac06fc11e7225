"""Who the sandbox user is on the host, and how it gets write access to what it may write.

On a root host every runtime runs the agent as the plain host uid 1000 (no
user namespace mapping it to root: a sandbox process whose kernel uid is 0
passes root-only checks such as /proc/sys writes). Ownership is then how it
gets write access to its own folders.
"""

from __future__ import annotations

import os
import stat

from nanoclaw.sandbox.base import SandboxSpec

SANDBOX_UID = 1000


def hand_over(spec: SandboxSpec, uid: int = SANDBOX_UID) -> None:
    """Give the sandbox user what it may write; the host's read-only files stay the host's.

    The walk goes by directory descriptors and never follows a link: a runner
    swapping a folder for a link to /etc while this runs cannot redirect it.
    """
    keep = {os.path.realpath(m.source) for m in spec.mounts if not m.writable}
    for mount in spec.mounts:
        if not mount.writable or not mount.own:
            continue
        top = os.path.realpath(mount.source)
        try:
            if not stat.S_ISDIR(os.lstat(top).st_mode):
                os.chown(top, uid, uid, follow_symlinks=False)  # a socket or file of its own
                continue
            fd = os.open(top, os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            os.fchown(fd, uid, uid)
            _chown_tree(fd, top, uid, keep)
        finally:
            os.close(fd)


def _chown_tree(dir_fd: int, path: str, uid: int, keep: set[str]) -> None:
    for name in os.listdir(dir_fd):
        if os.path.join(path, name) in keep:
            continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if st.st_uid != uid:
                os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                continue
            sub = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY, dir_fd=dir_fd)
        except OSError:
            continue  # gone or swapped meanwhile: not followed
        try:
            _chown_tree(sub, os.path.join(path, name), uid, keep)
        finally:
            os.close(sub)
