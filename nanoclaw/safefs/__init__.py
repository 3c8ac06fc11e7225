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

from nanoclaw.safefs.copy import copy_tree
from nanoclaw.safefs.resolve import DEFAULT_READ_LIMIT, UnsafePath, acting_as, openat2_available
from nanoclaw.safefs.tree import Entry, Tree

__all__ = ["DEFAULT_READ_LIMIT", "Entry", "Tree", "UnsafePath", "acting_as", "copy_tree", "openat2_available"]
