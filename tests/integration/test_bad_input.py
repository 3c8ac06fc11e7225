"""Bad input and broken storage: a clear error to the person or the log, the host keeps running."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nanoclaw.host.app import Host
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel
from tests.integration.hostproc import HostProcess

pytestmark = pytest.mark.sandbox


async def test_empty_huge_and_binary_messages(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    empty = await ch.say("   \n\t ")
    assert not empty.accepted and "empty" in (empty.error or "")
    huge = await ch.say("x" * 1_500_000)
    assert not huge.accepted and "too large" in (huge.error or "") and "1.0 MB" in (huge.error or "")
    binary = await ch.say("bin\x00ary\x01 data\ud800 ok")
    assert binary.accepted
    sent = await ch.wait_sent(1)
    assert "binary data" in sent[0].text.replace("\ufffd", "").replace("?", "")
    assert "\x00" not in sent[0].text
    status = host.status()
    assert status["live_runners"] == 1


async def test_unknown_slash_commands_pass_through_to_the_agent(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("/frobnicate now")
    sent = await ch.wait_sent(1)
    assert "/frobnicate now" in sent[0].text


async def test_deleted_group_folder_is_recreated(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    shutil.rmtree(host.settings.groups_dir / "main")
    await ch.say("still there?")
    sent = await ch.wait_sent(1)
    assert "still there?" in sent[0].text
    assert (host.settings.groups_dir / "main" / "CLAUDE.md").is_file()


async def test_corrupt_session_db_is_quarantined_and_the_chat_keeps_working(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    host = Host(settings, channels=[FakeChannel])
    await host.start()
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("before")
    await ch.wait_sent(1)
    session_dirs = list((settings.sessions_dir / "main").iterdir())
    await host.stop()

    (session_dirs[0] / "inbound.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (session_dirs[0] / f"inbound.db{suffix}").unlink(missing_ok=True)
    host = Host(settings, channels=[FakeChannel])
    await host.start()
    try:
        ch = fake(host)
        result = await ch.say("after")
        assert result.accepted
        sent = await ch.wait_sent(2)
        assert sent[0].text.startswith("⚠️ I could not read the earlier history")  # the person is told
        assert "after" in sent[1].text
        assert any(".quarantined-" in p.name for p in (settings.sessions_dir / "main").iterdir())
    finally:
        await host.stop()


async def test_missing_session_db_is_recreated(tmp_path: Path) -> None:
    host = Host(make_settings(tmp_path / "home"), channels=[FakeChannel])
    await host.start()
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("one")
    await ch.wait_sent(1)
    await host.stop()
    folder = next((host.settings.sessions_dir / "main").iterdir())
    for f in folder.glob("*.db*"):
        f.unlink()
    restarted = Host(host.settings, channels=[FakeChannel])
    await restarted.start()
    try:
        ch2 = fake(restarted)
        await ch2.say("two")
        sent = await ch2.wait_sent(1)
        assert "two" in sent[0].text
    finally:
        await restarted.stop()


@pytest.mark.slow
def test_full_disk_refuses_the_message_and_the_host_keeps_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "sessions").mkdir(parents=True)
    # The sessions folder is a 3 MB tmpfs inside the host's own mount namespace.
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f'mount -t tmpfs -o size=3m tmpfs "{home}/sessions" && exec "$0" "$@"']
    host = HostProcess(home, wrapper=wrapper).start()
    try:
        errors = []
        with host.client(timeout=30) as c:
            for i in range(8):
                reply = c.request("send", text=f"{i} " + "y" * 900_000, id=f"big{i}")
                if not reply["ok"]:
                    errors.append(reply["error"])
            assert errors, "the disk never filled"
            assert "could not store your message" in errors[0] and "full" in errors[0]
            assert c.request("status")["ok"]
    finally:
        host.stop()


async def test_a_locked_database_is_a_clear_refusal_not_a_crash(tmp_path: Path) -> None:
    import sqlite3

    host = Host(make_settings(tmp_path / "home"), channels=[FakeChannel])
    await host.start()
    try:
        wire(host, "chat1", trigger="always")
        host.conn.execute("PRAGMA busy_timeout = 200")  # fail fast for the test; 5 s in real use
        blocker = sqlite3.connect(host.settings.db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        ch = fake(host)
        try:
            result = await ch.say("while locked")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert not result.accepted and "could not store your message" in (result.error or "")
        assert "locked" in (result.error or "")
        after = await ch.say("after the lock")
        assert after.accepted
        assert "after the lock" in (await ch.wait_sent(1))[0].text
    finally:
        await host.stop()
