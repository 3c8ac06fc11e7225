"""Copying a tree into another without following anything in it (backups, moving files into a quota image)."""

from __future__ import annotations

import os
from typing import Callable

from nanoclaw.safefs.resolve import UnsafePath
from nanoclaw.safefs.tree import Entry, Tree


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
