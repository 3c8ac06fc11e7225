"""Backup while the host runs, restore onto a fresh home, and the assistant carries on."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from nanoclaw.channels.web_store import WebChatStore
from tests.integration.hostproc import NANOCLAW, HostProcess

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NANOCLAW, *args], env=env, capture_output=True, text=True, timeout=60)


def test_backup_and_restore_onto_a_fresh_home(tmp_path: Path) -> None:
    old = HostProcess(tmp_path / "old").start()
    archive = tmp_path / "backups" / "nc.tar.gz"
    try:
        assert "hello before" in cli(old.env, "send", "hello before").stdout
        added = cli(old.env, "tasks", "add", "--cron", "0 7 * * *", "--prompt", "morning news")
        task_id = added.stdout.split()[1]
        (old.home / "groups" / "main" / "CLAUDE.md").write_text("# main\n- the owner likes tea\n")
        web_chat = WebChatStore(old.home / "state" / "web-chat.db")  # the running host has it open too
        web_chat.add(author="owner", kind="chat", text="kept in the web chat")
        web_chat.close()
        session_before = [line for line in cli(old.env, "status").stdout.splitlines() if "session s-" in line]
        added = subprocess.run([NANOCLAW, "secrets", "add", "demo", "--host", "api.example.test"], env=old.env,
                               input="sk-canary-backup", capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        made = cli(old.env, "backup", str(archive))  # online: the host keeps running
        assert made.returncode == 0, made.stderr
        assert b"sk-canary-backup" not in gzip.decompress(archive.read_bytes())  # the vault goes in encrypted
        with tarfile.open(archive) as tar:
            names = tar.getnames()
        assert "nanoclaw-home/vault.json" in names and not any(n.endswith("vault.key") for n in names)
        assert oct(archive.stat().st_mode & 0o777) == "0o600"
        refused = cli(old.env, "restore", str(archive))
        assert refused.returncode == 1 and "stop it before restoring" in refused.stderr
    finally:
        old.stop()

    new = HostProcess(tmp_path / "new")
    new.home.mkdir()
    (new.home / "config").mkdir(mode=0o700)  # a named home keeps its keys inside: HOME/config
    (new.home / "config" / "keep-me").write_text("the new home's own key")
    restored = cli(new.env, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "decrypt only with the vault.key" in restored.stdout
    assert (new.home / "config" / "keep-me").read_text() == "the new home's own key"  # not moved aside
    assert (new.home / "config" / "vault.json").is_file()
    shutil.copy2(old.home / "config" / "vault.key", new.home / "config" / "vault.key")  # kept apart
    assert "demo" in subprocess.run([NANOCLAW, "secrets", "list"], env=new.env, capture_output=True, text=True).stdout
    again = cli(new.env, "restore", str(archive))
    assert again.returncode == 1 and "--force" in again.stderr
    new.start()
    try:
        assert (new.home / "groups" / "main" / "CLAUDE.md").read_text().endswith("- the owner likes tea\n")
        assert task_id in cli(new.env, "tasks", "list").stdout
        web_chat = WebChatStore(new.home / "state" / "web-chat.db")
        assert [m["text"] for m in web_chat.history(None)] == ["kept in the web chat"]
        web_chat.close()
        assert "hello after" in cli(new.env, "send", "hello after").stdout
        session_after = [line for line in cli(new.env, "status").stdout.splitlines() if "session s-" in line]
        assert session_before[0].split()[1] == session_after[0].split()[1]  # the same conversation goes on
    finally:
        new.stop()


def test_a_crafted_archive_cannot_write_outside_the_home(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("nanoclaw-home/nanoclaw.db", b""), ("nanoclaw-home/../../escaped.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    env = {**HostProcess(tmp_path / "home").env}
    result = cli(env, "restore", str(archive))
    assert result.returncode == 1 and "outside the destination" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_an_archive_cannot_plant_a_link_where_a_named_homes_keys_go(tmp_path: Path) -> None:
    """HOME/config holds a named home's keys: a link there from the archive would send the vault elsewhere."""
    from nanoclaw.backup import restore
    from nanoclaw.errors import NanoClawError

    archive = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("nanoclaw-home/nanoclaw.db", b""), ("nanoclaw-home/vault.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("nanoclaw-home/config")
        link.type, link.linkname = tarfile.SYMTYPE, "groups"
        tar.addfile(link)
    home = tmp_path / "home"
    with pytest.raises(NanoClawError, match="link where the home's keys go"):
        restore(archive, home, config_dir=home / "config")
    assert not (tmp_path / "home" / "groups").exists()
