"""Backups: a consistent online snapshot of a NanoClaw home, and restoring it onto a fresh one.

Databases are copied with SQLite's online backup API (consistent while the host
writes); memory folders, Claude Code's per-group state and config.env are copied
as files, and so is the vault's encrypted secrets file — without its key,
which you keep apart (restoring secrets needs both). Sockets, locks, logs and
runtime scratch are left out. The archive holds conversations and memory: it
is written mode 0600.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
from pathlib import Path

from nanoclaw import db
from nanoclaw.config import Settings
from nanoclaw.errors import NanoClawError
from nanoclaw.host.folders import GLOBAL, Folders, group_owners
from nanoclaw.logs import get_logger
from nanoclaw.safefs import Entry, Tree, UnsafePath, copy_tree

log = get_logger("nanoclaw.backup")
# The host's scratch and the quota images (their files are copied one by one, from the mounted trees).
# `pool`: the slot folders of pooled sandboxes, where adopted sessions' folders are mounted (sandbox-written,
# backed up through their own trees with the sessions).
SKIP_STATE = {"proxy", "bwrap-etc", "vault-certs", "ca-bundle.pem", "seccomp.bpf", "seccomp-oci.json", "volumes",
              "apple-env", "claude", "pool"}
VAULT_FILE = "vault.json"  # the vault's encrypted secrets; its key (vault.key) is never in an archive
# Agents write these trees: a sparse file of a terabyte or a FIFO there must not hang or bloat a backup.
MAX_BACKUP_FILE = 1 << 30


def backup(settings: Settings, archive: Path, config_dir: Path | None = None) -> dict[str, int]:
    """Write `archive` (.tar.gz) from the home of `settings`; returns counts of what went in."""
    home = settings.home
    if not (home / "nanoclaw.db").is_file():
        raise NanoClawError(f"{home} is not a NanoClaw home (no nanoclaw.db)")
    counts = {"databases": 0, "files": 0, "skipped": 0}
    conn = db.connect(settings.db_path)
    folders = Folders.for_settings(settings, group_owners(conn, settings))
    try:
        with tempfile.TemporaryDirectory(prefix="nanoclaw-backup-") as tmp:
            snapshot = Path(tmp) / "nanoclaw-home"
            snapshot.mkdir()
            for name in ("nanoclaw.db", *(f"state/{p.name}" for p in sorted((home / "state").glob("*.db")))):
                (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
                _copy_db(str(home / name), snapshot / name)  # the host's own files
                counts["databases"] += 1
            groups = sorted(p.name for p in settings.groups_dir.iterdir() if p.is_dir()) \
                if settings.groups_dir.is_dir() else []
            for group in groups:
                _backup_group(folders, group, snapshot, counts)
            _copy_host_state(home / "state", snapshot / "state", counts)
            if (home / "config.env").is_file():
                shutil.copy2(home / "config.env", snapshot / "config.env")
                counts["files"] += 1
            if config_dir is not None and (config_dir / VAULT_FILE).is_file():
                shutil.copy2(config_dir / VAULT_FILE, snapshot / VAULT_FILE)
                counts["files"] += 1
            (snapshot / "BACKUP").write_text(f"nanoclaw backup of {home} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
                                             + (f"{counts['skipped']} special, sparse or huge files left out\n"
                                                if counts["skipped"] else ""))
            archive.parent.mkdir(parents=True, exist_ok=True)
            partial = archive.with_name(archive.name + ".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                tar.add(snapshot, arcname="nanoclaw-home")
            partial.replace(archive)  # a crash mid-backup never leaves a truncated archive under the real name
    finally:
        folders.close()
        conn.close()
    return counts


def _backup_group(folders: Folders, group: str, snapshot: Path, counts: dict[str, int]) -> None:
    """A group's folder, Claude state and session databases, read through its trees (never a link followed)."""
    def skip(path: str, entry: Entry) -> bool:
        if entry.kind in ("fifo", "socket", "device") or (entry.kind == "file" and entry.size > MAX_BACKUP_FILE):
            counts["skipped"] += 1
            return True
        return False

    try:
        trees = [(folders.global_tree() if group == GLOBAL else folders.group(group), snapshot / "groups" / group)]
        if group != GLOBAL:
            trees.append((folders.claude(group), snapshot / "state" / "claude" / group))
    except (KeyError, UnsafePath) as exc:  # a folder of no group, or not a folder
        log.warning("backup.group_skipped", group=group, error=str(exc))
        return
    def too_deep(path: str) -> None:
        counts["skipped"] += 1

    for tree, target in trees:
        with tree, _fresh_tree(target) as copy:
            try:
                counts["files"] += copy_tree(tree, copy, skip=skip, too_deep=too_deep)
            except UnsafePath as exc:  # wider than any real folder
                counts["skipped"] += 1
                log.warning("backup.tree_cut", folder=str(tree.path), error=str(exc))
    if group == GLOBAL:
        return
    with folders.sessions_of(group) as sessions:
        for entry in sessions.list():
            if entry.kind != "dir" or ".quarantined-" in entry.name:
                continue
            try:
                with sessions.subtree(entry.name) as session:
                    for name in ("inbound.db", "outbound.db"):
                        if _plain_db(session, name):
                            target = snapshot / "sessions" / group / entry.name / name
                            target.parent.mkdir(parents=True, exist_ok=True)
                            _copy_db(session.proc_path(name), target)
                            counts["databases"] += 1
            except UnsafePath:
                counts["skipped"] += 1


def _plain_db(tree: Tree, name: str) -> bool:
    """A database and its -wal/-shm are plain files with one name each (else it is not read at all)."""
    for suffix in ("", "-wal", "-shm"):
        st = tree.lstat(name + suffix)
        if st is None:
            if not suffix:
                return False
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return False
    return True


def _fresh_tree(path: Path) -> Tree:
    path.mkdir(parents=True, exist_ok=True)
    return Tree.open(path)


def _copy_host_state(source: Path, target: Path, counts: dict[str, int]) -> None:
    """The host's own files in state/ (positions, the web chat's uploads…); databases went through SQLite."""
    if not source.is_dir():
        return
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if (Path(d) == source and n in SKIP_STATE)
                                             or n.endswith(".sock") or (Path(d) == source and _is_db_file(n))])
    counts["files"] += sum(len(files) for _, _, files in os.walk(target))


def _is_db_file(name: str) -> bool:
    """A live SQLite file: copied above through the backup API, never as bytes mid-write."""
    return name.endswith((".db", ".db-wal", ".db-shm", ".db-journal"))


def _copy_db(source: str, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def restore(archive: Path, home: Path, force: bool = False, config_dir: Path | None = None) -> dict[str, int]:
    """Unpack `archive` into `home`, which must be empty (or `force`, which moves the old home aside).

    The archive is unpacked and checked first; the home is touched only once that worked.
    """
    if not archive.is_file():
        raise NanoClawError(f"no backup at {archive}")
    if (home / "nanoclaw.db").exists() and not force:
        raise NanoClawError(f"{home} already holds a NanoClaw home; use --force to move it aside first")
    home.parent.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".nanoclaw-restore-", dir=home.parent) as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [m for m in tar.getmembers() if m.name.startswith("nanoclaw-home")]
                if not members:
                    raise NanoClawError(f"{archive} is not a NanoClaw backup")
                tar.extractall(tmp, members=members, filter=lambda m, p: _data_or_skip(m, p, skipped))
        except (tarfile.TarError, OSError) as exc:
            raise NanoClawError(f"cannot restore {archive}: {exc}") from exc
        unpacked = Path(tmp) / "nanoclaw-home"
        if not (unpacked / "nanoclaw.db").is_file():
            raise NanoClawError(f"{archive} holds no nanoclaw.db")
        # A home named with NANOCLAW_HOME keeps its keys inside it (HOME/config): they stay with the home
        # restored, never go aside with the old one or into the temporary folder's cleanup.
        inside = _relative(config_dir, home)
        keys = unpacked / inside if inside is not None else config_dir
        if inside is not None and any((unpacked / Path(*inside.parts[:i + 1])).is_symlink()
                                      for i in range(len(inside.parts))):
            raise NanoClawError(f"{archive} holds a link where the home's keys go ({inside}); not restored")
        if inside is not None and (home / inside).exists():
            keys.parent.mkdir(parents=True, exist_ok=True)
            (home / inside).rename(keys)
        try:
            if home.exists() and any(home.iterdir()):
                home.rename(home.with_name(f"{home.name}.before-restore-{int(time.time())}"))
            elif home.exists():
                home.rmdir()
            vault = unpacked / VAULT_FILE
            restored_vault = 0
            if vault.is_file():
                if keys is not None and not (keys / VAULT_FILE).exists():
                    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
                    shutil.copy2(vault, keys / VAULT_FILE)
                    (keys / VAULT_FILE).chmod(0o600)
                    restored_vault = 1
                vault.unlink()
            unpacked.rename(home)
        except BaseException:
            if inside is not None and keys is not None and keys.exists() and not (home / inside).exists():
                (home / inside).parent.mkdir(parents=True, exist_ok=True)
                keys.rename(home / inside)  # the keys go back where they were
            raise
    home.chmod(0o700)
    if skipped:
        log.warning("restore.skipped", count=len(skipped), first=skipped[0])
    return {"databases": len(list(home.glob("sessions/*/*/*.db"))) + 1, "vault": restored_vault,
            "skipped": len(skipped)}


def _relative(path: Path | None, home: Path) -> Path | None:
    """`path` relative to `home` when it lies inside it."""
    if path is None:
        return None
    try:
        return path.resolve().relative_to(home.resolve())
    except ValueError:
        return None


def _data_or_skip(member: tarfile.TarInfo, path: str, skipped: list[str]) -> tarfile.TarInfo | None:
    """tarfile's "data" filter (no absolute paths, no .., no devices, no links out). A link an agent made to
    an absolute path in its sandbox is left out; a member whose own name leaves the home refuses the archive."""
    try:
        return tarfile.data_filter(member, path)
    except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
        skipped.append(member.name)
        return None
