"""A compromised runner owns its session folder: it must not be able to make the host touch host files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nanoclaw.host.app import Host
from nanoclaw.protocol.doorbell import Doorbell
from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.host_end import HostEnd
from tests.conftest import fake, wire

pytestmark = pytest.mark.sandbox


@pytest.mark.parametrize("victim", ["outbound.db-shm", "outbound.db-wal", "outbound.db", "inbound.db-wal"])
def test_database_files_replaced_by_links_are_refused(tmp_path: Path, victim: str) -> None:
    folder = SessionFolder(tmp_path / "session")
    HostEnd(folder).close()
    target = tmp_path / "host-file"
    target.write_text("precious")
    path = folder.root / victim
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    with pytest.raises(PermissionError, match="not a plain file"):
        HostEnd(folder)
    assert target.read_text() == "precious"


def test_hard_links_are_refused(tmp_path: Path) -> None:
    folder = SessionFolder(tmp_path / "session")
    HostEnd(folder).close()
    os.link(folder.outbound_db, tmp_path / "second-name")
    with pytest.raises(PermissionError):
        HostEnd(folder)


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_doorbell_replaced_by_a_link_or_file_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "host-file"
    target.write_text("precious")
    bell = tmp_path / "bell.in"
    if kind == "symlink":
        bell.symlink_to(target)
    else:
        bell.write_text("")
    with pytest.raises((PermissionError, OSError)):
        Doorbell(bell)
    assert target.read_text() == "precious"


async def test_tampering_by_a_live_runner_does_not_reach_the_host(host: Host, tmp_path: Path) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("hello")
    await ch.wait_sent(1)
    session_id = next(iter(host.supervisor.live))
    folder = host.sessions.folder(host.sessions.get(session_id))
    target = tmp_path / "host-file"
    target.write_text("precious")
    before = target.stat().st_mtime_ns
    # What a compromised runner could do to its own folder while the host has it open.
    for name in ("outbound.db-shm", "bell.out", "bell.in"):
        (folder.root / name).unlink()
        (folder.root / name).symlink_to(target)
    await ch.say("still answering?")
    await host.delivery.drain(session_id)
    assert target.read_text() == "precious" and target.stat().st_mtime_ns == before


LINKED = ("inbound.db", "inbound.db-wal", "inbound.db-shm", "outbound.db", "outbound.db-wal", "outbound.db-shm",
          "bell.in", "bell.out")


async def test_links_left_by_a_runner_are_refused_when_a_restarted_host_reopens_the_folder(tmp_path: Path) -> None:
    """The host opens the folder by name again after a restart: every file a runner swapped for a link to a
    host file is refused there, the folder is set aside (quarantined) and the conversation goes on."""
    from nanoclaw.host.router import QUARANTINE_NOTICE
    from tests.conftest import make_settings
    from tests.fakes.channel import FakeChannel

    settings = make_settings(tmp_path / "home")
    first = Host(settings, channels=[FakeChannel])
    await first.start()
    try:
        wire(first, "chat1", trigger="always")
        await fake(first).say("hello", message_id="m1")
        await fake(first).wait_sent(1)
        session_id = next(iter(first.supervisor.live))
        folder = first.sessions.folder(first.sessions.get(session_id))
    finally:
        await first.stop()
    target = tmp_path / "host-file"
    target.write_text("precious")
    before = target.stat()
    for name in LINKED:  # what the runner could leave behind, replaced while the host was down
        (folder.root / name).unlink(missing_ok=True)
        (folder.root / name).symlink_to(target)
    second = Host(settings, channels=[FakeChannel])
    await second.start()
    try:
        ch = fake(second)
        await ch.say("after the restart", message_id="m2")
        assert await ch.wait_processed("m2", timeout=30) == "done"
        texts = [s.text for s in ch.sent]
        assert QUARANTINE_NOTICE in texts and any("after the restart" in t for t in texts), texts
        aside = [p for p in folder.root.parent.iterdir() if p.name.startswith(f"{session_id}.quarantined-")
                 or "quarantined" in p.name]
        assert aside, list(folder.root.parent.iterdir())  # set aside for the owner, links and all
        assert all(not (folder.root / name).is_symlink() for name in LINKED)  # the new folder is the host's own
    finally:
        await second.stop()
    after = target.stat()
    assert target.read_text() == "precious" and (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns,
                                                                                       before.st_size)
