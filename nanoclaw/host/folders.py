"""The folders of a home that agents can write, each reached only as a `safefs.Tree`.

    groups/<group>/              the group's folder (/workspace/agent): CLAUDE.md, .claude/skills
    groups/global/               global memory (/workspace/global; writable by admin groups)
    sessions/<group>/<session>/  a session folder (/workspace)
    state/claude/<group>/        Claude Code's config dir (/home/agent/.claude)

On a root host each group's trees belong to the group's own uid and the host
works in them with that uid's rights; with a disk quota the three trees of a
group live in the group's filesystem image (sandbox/quota.py).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Callable

from nanoclaw.config import Settings
from nanoclaw.db import agent_groups
from nanoclaw.logs import get_logger
from nanoclaw.safefs import Tree, UnsafePath
from nanoclaw.sandbox.quota import QuotaUnavailable, Usage, Volumes
from nanoclaw.sandbox import quota
from nanoclaw.sandbox.identity import group_uid

log = get_logger("nanoclaw.host.folders")
GLOBAL = "global"
MEMORY = "CLAUDE.md"
MAX_MEMORY_BYTES = 512 * 1024
SKILLS_DIR = Path(__file__).resolve().parents[2] / "skills"

MAIN_MEMORY = """# {name} — main

You are {name}, the owner's personal assistant. This is your admin group: the
owner's private chat. Keep notes here about the owner and ongoing work; this
file is your memory and you may edit it.

Wrap thoughts that should not be sent in <internal>…</internal>.
"""

GLOBAL_MEMORY = """# Global memory

Facts every agent group should know. Read-only for all groups except `main`.
"""

GROUP_MEMORY = """# {name} — {group}

Memory of this agent group. Edit this file to remember things.
"""


def group_owners(conn: sqlite3.Connection, settings: Settings) -> Callable[[str], int | None]:
    """Each group's uid on a root host (None elsewhere: files stay the host user's, mapped in the sandbox)."""
    cache: dict[str, int] = {}

    def owner_of(group_id: str) -> int | None:
        if os.geteuid() != 0:
            return None
        if group_id not in cache:
            group = agent_groups.get(conn, group_id)
            if group is None:
                raise KeyError(f"agent group {group_id} is gone")
            cache[group_id] = group_uid(group.uid_offset, settings.sandbox_uid_base)
        return cache[group_id]

    return owner_of


def prepare_group(settings: Settings, conn: sqlite3.Connection, group_id: str, *, is_admin: bool = False) -> Path:
    """For commands run beside the host (setup, `groups add`): the group's folder and memory; returns the memory."""
    folders = Folders.for_settings(settings, group_owners(conn, settings))
    try:
        folders.ensure_group(group_id, is_admin=is_admin)
    finally:
        folders.close()
    return folders.group_path(group_id) / MEMORY


class Folders:
    """Opens the agent-writable trees of one home; `owner_of(group)` is the group's uid on a root host."""

    def __init__(self, settings: Settings, owner_of: Callable[[str], int | None],
                 volumes: Volumes | None = None) -> None:
        self.settings = settings
        self.owner_of = owner_of
        self.volumes = volumes
        self.notices: list[str] = []  # what the owner should hear about (a repaired memory file, …)
        self._handed: set[str] = set()  # groups whose trees were walked once by this process
        self._unquoted: set[str] = set()  # groups whose image could not be set up (they run without quota)

    @classmethod
    def for_settings(cls, settings: Settings, owner_of: Callable[[str], int | None]) -> Folders:
        """With the disk quota of the settings where this host can enforce it."""
        volumes = None
        if settings.disk_quota_mb > 0:
            ok, why = quota.check()
            if ok:
                volumes = Volumes(settings.state_dir, settings.disk_quota_mb)
            else:
                log.warning("quota.unavailable", reason=why)
        return cls(settings, owner_of, volumes)

    # -- where things are ------------------------------------------------------------------

    def group_path(self, group_id: str) -> Path:
        return self.settings.groups_dir / group_id

    def session_path(self, group_id: str, session_id: str) -> Path:
        return self.settings.sessions_dir / group_id / session_id

    def claude_path(self, group_id: str) -> Path:
        return self.settings.state_dir / "claude" / group_id

    def global_owner(self) -> int | None:
        return self.owner_of("main")

    def mount(self, group_id: str) -> None:
        """Bring the group's quota image in (a no-op without quota, or once mounted)."""
        if self.volumes is None or group_id in self._unquoted:
            return
        binds = ({"global": self.group_path(GLOBAL)} if group_id == GLOBAL else
                 {"agent": self.group_path(group_id), "sessions": self.settings.sessions_dir / group_id,
                  "claude": self.claude_path(group_id)})
        try:
            self.volumes.ensure(group_id, binds)
        except (QuotaUnavailable, OSError) as exc:
            log.error("quota.mount_failed", volume=group_id, error=str(exc))
            self.notices.append(f"The disk quota of agent group {group_id} could not be set up ({exc}); it runs "
                                "without one until this is fixed.")
            self._unquoted.add(group_id)  # its files stay where they are; the other groups keep their quota

    def usage(self, group_id: str) -> Usage | None:
        return self.volumes.usage(group_id) if self.volumes is not None else None

    def quota_enforced(self, group_id: str) -> bool:
        return self.volumes is not None and group_id not in self._unquoted

    def close(self) -> None:
        if self.volumes is not None:
            self.volumes.unmount_all()

    # -- opening ---------------------------------------------------------------------------

    def group(self, group_id: str) -> Tree:
        self.mount(group_id)
        return Tree.open(self.group_path(group_id), owner=self.owner_of(group_id), create=True)

    def global_tree(self) -> Tree:
        self.mount(GLOBAL)
        return Tree.open(self.group_path(GLOBAL), owner=self.global_owner(), create=True)

    def claude(self, group_id: str) -> Tree:
        self.mount(group_id)
        self.claude_path(group_id).parent.mkdir(parents=True, exist_ok=True)
        return Tree.open(self.claude_path(group_id), owner=self.owner_of(group_id), create=True, mode=0o700)

    def sessions_of(self, group_id: str) -> Tree:
        """The folder holding a group's session folders (the host's: no sandbox sees it whole)."""
        self.mount(group_id)
        path = self.settings.sessions_dir / group_id
        path.mkdir(parents=True, exist_ok=True)
        return Tree.open(path)

    # -- what the host does in them --------------------------------------------------------

    def ensure_group(self, group_id: str, *, is_admin: bool = False) -> None:
        """The group's folder and memory file, and the global memory, made if missing (or repaired)."""
        template = MAIN_MEMORY if is_admin else GROUP_MEMORY
        with self.group(group_id) as tree:
            self._ensure_memory(tree, f"agent group {group_id}",
                                template.format(name=self.settings.assistant_name, group=group_id))
        with self.global_tree() as tree:
            self._ensure_memory(tree, "the global memory", GLOBAL_MEMORY)

    def _ensure_memory(self, tree: Tree, whose: str, template: str) -> None:
        kind = tree.kind(MEMORY)
        if kind == "file":
            return
        if kind is not None:  # a link, FIFO or folder where the memory belongs: set it aside, never follow it
            aside = tree.set_aside(MEMORY, f"{kind}-set-aside-{int(time.time())}")
            log.warning("memory.replaced", folder=tree.path, was=kind, moved_to=aside)
            self.notices.append(f"The memory file (CLAUDE.md) of {whose} was a {kind}, not a file; it was renamed "
                                f"to {aside} and a fresh memory file was written. Nothing outside the folder was "
                                "touched.")
        tree.write_text(MEMORY, template, replace=False)

    def create_group(self, group_id: str, name: str, instructions: str) -> None:
        """A new group's folder with its memory; refused if the folder holds anything already."""
        with self.group(group_id) as tree:
            if tree.list():
                raise UnsafePath(f"the folder of agent group {group_id} is not empty")
            text = f"# {name}\n\n{instructions.strip()}\n" if instructions.strip() else \
                GROUP_MEMORY.format(name=self.settings.assistant_name, group=group_id)
            tree.write_text(MEMORY, text, replace=False)
        with self.global_tree() as tree:
            self._ensure_memory(tree, "the global memory", GLOBAL_MEMORY)

    def read_memory(self, group_id: str) -> str:
        with (self.global_tree() if group_id == GLOBAL else self.group(group_id)) as tree:
            if tree.kind(MEMORY) is None:
                return ""
            return tree.read_text(MEMORY, limit=MAX_MEMORY_BYTES)

    def write_memory(self, group_id: str, text: str) -> None:
        """Replace a memory file whole (a crash never leaves half of one; a planted link is replaced)."""
        with (self.global_tree() if group_id == GLOBAL else self.group(group_id)) as tree:
            tree.write_text(MEMORY, text)

    def copy_skills(self, group_id: str) -> int:
        """The project's skills/ into the group's .claude/skills at each start (the group's own skills stay)."""
        if not SKILLS_DIR.is_dir():
            return 0
        copied = 0
        with self.group(group_id) as tree:
            if tree.kind(".claude") not in (None, "dir"):
                tree.remove(".claude")
            if tree.kind(".claude/skills") not in (None, "dir"):
                tree.remove(".claude/skills")
            tree.mkdir(".claude/skills", parents=True)
            for skill in sorted(SKILLS_DIR.iterdir()):
                if skill.is_dir() and not skill.is_symlink():
                    target = f".claude/skills/{skill.name}"
                    if tree.kind(target) not in (None, "dir"):
                        tree.remove(target)
                    copied += tree.copy_in(skill, target)
        return copied

    def hand_over(self, group_id: str, session_tree: Tree | None, *, is_admin: bool,
                  keep: frozenset[str] = frozenset()) -> None:
        """Before a start on a root host: what the sandbox may write becomes its uid's (links never followed)."""
        uid = self.owner_of(group_id)
        if uid is None:
            return
        # What the host writes there it writes as the group's uid already; the whole walk is for what an
        # older version, a restore or the quota's adoption left, so once per group per host is enough.
        if group_id not in self._handed:
            for opener in (self.group, self.claude):
                with opener(group_id) as tree:
                    tree.chown_all(uid)
            self._handed.add(group_id)
        if is_admin:
            with self.global_tree() as tree:
                tree.chown_all(uid)
        if session_tree is not None:
            session_tree.chown_all(uid, keep=keep)
