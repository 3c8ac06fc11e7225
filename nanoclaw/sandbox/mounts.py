"""Extra host folders for an agent group, checked against the owner's mount allow-list.

The allow-list lives in `~/.config/nanoclaw/mount-allowlist.json`, outside
every mount, so no agent can widen it:

    {"allowed": [{"path": "~/projects", "writable": true}, {"path": "/srv/photos"}],
     "blocked": ["*.sqlite"]}

A folder may be mounted when, with symlinks resolved, it is one of `allowed`
or inside one; read-only unless that entry says writable. Blocked names always
win, anywhere in the path or up to three levels inside the folder, as do the NanoClaw
home and config and anything that contains them.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from nanoclaw.config import Settings, read_json_file
from nanoclaw.errors import ConfigError, NanoClawError

ALLOWLIST_FILE = "mount-allowlist.json"
MOUNT_ROOT = "/workspace/extra"
BLOCKED = (
    ".ssh", ".gnupg", ".aws", ".config/gcloud", ".kube", ".docker", ".env*", "*.pem", "*.key", "id_*",
    "credentials*", ".netrc", ".git-credentials", ".password-store", "*.kdbx", ".azure", ".pgpass",
)
SCAN_DEPTH, SCAN_LIMIT = 3, 20_000  # how deep and how much of a folder is searched for blocked names
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


class MountRefused(NanoClawError):
    """A folder the allow-list does not let an agent group have.

    The message is for the owner (it may name blocked files inside the folder);
    `public` is what an agent may be told: nothing about what exists where.
    """

    HIDDEN = "the owner's mount rules do not allow this folder (the owner was told why)"

    def __init__(self, detail: str, public: str | None = None) -> None:
        super().__init__(detail)
        self.public = public if public is not None else self.HIDDEN


@dataclass(frozen=True)
class AllowedRoot:
    path: Path
    writable: bool = False


@dataclass(frozen=True)
class Allowlist:
    allowed: tuple[AllowedRoot, ...] = ()
    blocked: tuple[str, ...] = BLOCKED
    protected: tuple[Path, ...] = field(default=())  # the NanoClaw home and config: never mountable

    @classmethod
    def load(cls, path: Path, protected: tuple[Path, ...] = ()) -> Allowlist:
        """The allow-list at `path`; an empty one (nothing mountable) when the file does not exist."""
        protected = tuple(Path(os.path.realpath(p)) for p in (*protected, path.parent))
        if not path.is_file():
            return cls(protected=protected)
        data = read_json_file(path)
        if not isinstance(data, dict) or not isinstance(data.get("allowed", []), list):
            raise ConfigError(f'{path}: expected {{"allowed": [{{"path": "...", "writable": false}}], "blocked": [...]}}')
        roots = []
        for entry in data.get("allowed", []):
            entry = {"path": entry} if isinstance(entry, str) else entry
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise ConfigError(f"{path}: each allowed entry needs a path, got {entry!r}")
            roots.append(AllowedRoot(Path(os.path.realpath(os.path.expanduser(entry["path"]))),
                                     bool(entry.get("writable", False))))
        extra = data.get("blocked", [])
        if not isinstance(extra, list) or not all(isinstance(p, str) for p in extra):
            raise ConfigError(f"{path}: blocked must be a list of name patterns")
        return cls(tuple(roots), (*BLOCKED, *extra), protected)

    @classmethod
    def for_settings(cls, settings: Settings) -> Allowlist:
        """The allow-list as it applies to this NanoClaw home (which is itself never mountable)."""
        return cls.load(settings.mount_allowlist, protected=(settings.home,))

    def check(self, raw: str, writable: bool = False) -> Path:
        """The resolved folder if it may be mounted (writable only if asked and allowed); else MountRefused."""
        if not raw or "\0" in raw:
            raise MountRefused("give the folder's full path", public="give the folder's full path")
        given = Path(os.path.expanduser(raw))
        if not given.is_absolute():
            raise MountRefused(f"{raw}: give an absolute path (or ~/…)", public="give an absolute path (or ~/…)")
        resolved = Path(os.path.realpath(given))
        if not resolved.is_dir():
            raise MountRefused(f"{raw}: no such folder")
        for candidate in (given, resolved):
            hit = self._blocked_name(candidate)
            if hit:
                raise MountRefused(f"{raw}: {hit!r} is blocked (secrets live there); mount a folder without it")
        for inside in _entries(resolved):
            hit = self._blocked_name(Path(inside))
            if hit:
                raise MountRefused(f"{raw} contains {inside!r}, which is blocked; mount a folder below it instead")
        for p in self.protected:
            if resolved == p or resolved in p.parents or p in resolved.parents:
                raise MountRefused(f"{raw}: NanoClaw's own home and configuration are never mounted")
        root = self._root_for(resolved)
        if root is None:
            listed = ", ".join(str(r.path) for r in self.allowed) or "nothing yet"
            raise MountRefused(f"{raw} is not in the mount allow-list ({listed}); the owner adds folders "
                               f"to {ALLOWLIST_FILE} in NanoClaw's config folder")
        if writable and not root.writable:
            raise MountRefused(f"{raw} may only be mounted read-only (the allow-list entry {root.path} is not writable)",
                               public="this folder may only be mounted read-only")
        return resolved

    def _root_for(self, resolved: Path) -> AllowedRoot | None:
        matches = [r for r in self.allowed if resolved == r.path or r.path in resolved.parents]
        return max(matches, key=lambda r: len(r.path.parts), default=None)  # the closest entry decides

    def _blocked_name(self, path: Path) -> str | None:
        parts = path.parts
        for pattern in self.blocked:
            pieces = pattern.split("/")
            for i in range(len(parts) - len(pieces) + 1):
                if all(fnmatch.fnmatchcase(parts[i + k].lower(), pieces[k].lower()) for k in range(len(pieces))):
                    return pattern
        return None


def _entries(folder: Path, depth: int = SCAN_DEPTH, limit: int = SCAN_LIMIT) -> list[str]:
    """Paths inside `folder`, relative, a few levels deep (bounded: a mount of a huge tree stays quick)."""
    found: list[str] = []
    level = [""]
    for _ in range(depth):
        below = []
        for rel in level:
            try:
                with os.scandir(folder / rel) as it:
                    for entry in it:
                        path = os.path.join(rel, entry.name)
                        found.append(path)
                        if entry.is_dir(follow_symlinks=False):
                            below.append(path)
                        if len(found) >= limit:
                            return found
            except OSError:
                continue
        level = below
    return found


def mount_name(raw: str | None, path: Path) -> str:
    """The name under /workspace/extra/: given, or the folder's own, made safe."""
    name = (raw or path.name or "root").strip().lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", name).strip("-.")[:40].strip("-.") or "folder"
    if not NAME.fullmatch(name):
        raise MountRefused(f"mount name {raw!r}: use letters, digits, '.', '-' or '_' (at most 40)",
                           public="a mount name has letters, digits, '.', '-' or '_' (at most 40)")
    return name
