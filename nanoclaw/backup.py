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
import tarfile
import tempfile
import time
from pathlib import Path

from nanoclaw.errors import NanoClawError

SKIP_STATE = {"proxy", "bwrap-etc", "vault-certs", "ca-bundle.pem", "seccomp.bpf", "seccomp-oci.json"}
VAULT_FILE = "vault.json"  # the vault's encrypted secrets; its key (vault.key) is never in an archive


def backup(home: Path, archive: Path, config_dir: Path | None = None) -> dict[str, int]:
    """Write `archive` (.tar.gz) from `home`; returns counts of what went in."""
    if not (home / "nanoclaw.db").is_file():
        raise NanoClawError(f"{home} is not a NanoClaw home (no nanoclaw.db)")
    counts = {"databases": 0, "files": 0}
    with tempfile.TemporaryDirectory(prefix="nanoclaw-backup-") as tmp:
        snapshot = Path(tmp) / "nanoclaw-home"
        snapshot.mkdir()
        state_dbs = sorted((home / "state").glob("*.db"))  # e.g. the web chat's transcript
        for db in [home / "nanoclaw.db", *sorted(home.glob("sessions/*/*/*.db")), *state_dbs]:
            if ".quarantined-" in str(db):
                continue
            target = snapshot / db.relative_to(home)
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_db(db, target)
            counts["databases"] += 1
        for folder in ("groups", "state"):
            source = home / folder
            if source.is_dir():
                shutil.copytree(source, snapshot / folder, symlinks=True, dirs_exist_ok=True,
                                ignore=lambda d, names: [n for n in names if n in SKIP_STATE or n.endswith(".sock")
                                                         or (Path(d) == home / "state" and _is_db_file(n))])
                counts["files"] += sum(len(files) for _, _, files in os.walk(snapshot / folder))
        if (home / "config.env").is_file():
            shutil.copy2(home / "config.env", snapshot / "config.env")
            counts["files"] += 1
        if config_dir is not None and (config_dir / VAULT_FILE).is_file():
            shutil.copy2(config_dir / VAULT_FILE, snapshot / VAULT_FILE)
            counts["files"] += 1
        (snapshot / "BACKUP").write_text(f"nanoclaw backup of {home} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(archive.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(snapshot, arcname="nanoclaw-home")
        partial.replace(archive)  # a crash mid-backup never leaves a truncated archive under the real name
    return counts


def _is_db_file(name: str) -> bool:
    """A live SQLite file: copied above through the backup API, never as bytes mid-write."""
    return name.endswith((".db", ".db-wal", ".db-shm", ".db-journal"))


def _copy_db(source: Path, target: Path) -> None:
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
    with tempfile.TemporaryDirectory(prefix=".nanoclaw-restore-", dir=home.parent) as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [m for m in tar.getmembers() if m.name.startswith("nanoclaw-home")]
                if not members:
                    raise NanoClawError(f"{archive} is not a NanoClaw backup")
                tar.extractall(tmp, members=members, filter="data")  # refuses absolute paths, .. and devices
        except (tarfile.TarError, OSError) as exc:
            raise NanoClawError(f"cannot restore {archive}: {exc}") from exc
        unpacked = Path(tmp) / "nanoclaw-home"
        if not (unpacked / "nanoclaw.db").is_file():
            raise NanoClawError(f"{archive} holds no nanoclaw.db")
        if home.exists() and any(home.iterdir()):
            home.rename(home.with_name(f"{home.name}.before-restore-{int(time.time())}"))
        elif home.exists():
            home.rmdir()
        vault = unpacked / VAULT_FILE
        restored_vault = 0
        if vault.is_file():
            if config_dir is not None and not (config_dir / VAULT_FILE).exists():
                config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                shutil.copy2(vault, config_dir / VAULT_FILE)
                (config_dir / VAULT_FILE).chmod(0o600)
                restored_vault = 1
            vault.unlink()
        unpacked.rename(home)
    home.chmod(0o700)
    return {"databases": len(list(home.glob("sessions/*/*/*.db"))) + 1, "vault": restored_vault}
