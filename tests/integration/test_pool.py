"""Pre-warmed sandboxes (host/pool.py) and the memory budget, with real bwrap sandboxes on a root host.

A new session adopts a ready pooled sandbox of its group and chat kind; before
that the sandbox holds no session data and its proxy socket refuses it; it
serves one session only and ends with that session's runner. The memory
budget retires the idle runner used least recently, never one mid-turn.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.db import agent_groups, messaging_groups, sessions
from nanoclaw.host.app import Host
from nanoclaw.host.pool import Slot
from nanoclaw.host.sessions import SessionManager
from nanoclaw.protocol.host_end import HOST_FILES
from nanoclaw.sandbox import processes
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel

pytestmark = pytest.mark.sandbox

SECRET = "sk-ant-pool-test-secret-0123456789"


@pytest.fixture
async def pooled(tmp_path: Path) -> AsyncIterator[Host]:
    settings = make_settings(tmp_path / "home", pool_size=2, extra={"ANTHROPIC_API_KEY": SECRET})
    host = Host(settings, channels=[FakeChannel])
    agent_groups.create(host.conn, "family", "Family")
    host.folders.ensure_group("family")
    wire(host, "fam", "family", trigger="always")
    wire(host, "chat1", trigger="always")
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


async def ready_slot(host: Host, group: str, chat_kind: str = "fake", timeout: float = 60.0,
                     other_than: set[str] | None = None) -> Slot:
    """Wait for a ready pooled sandbox of `group` for chats of `chat_kind`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for slot in host.pool.slots.values():
            if slot.key == (group, chat_kind) and slot.ready and slot.name not in (other_than or set()):
                return slot
        await asyncio.sleep(0.05)
    raise AssertionError(f"no ready pooled sandbox for {group}/{chat_kind}: {host.status()['pool']}")


def session_of(host: Host, chat: str) -> str:
    mg = messaging_groups.find(host.conn, "fake", chat)
    assert mg is not None
    return next(s.id for s in sessions.list_all(host.conn) if s.messaging_group_id == mg.id)


def in_sandbox(pid: int, *argv: str) -> str:
    """Run a command in the mount namespace of a sandbox's process (the host's view into it, as root)."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-m", *argv], capture_output=True, text=True, timeout=10)
    return out.stdout + out.stderr


def runner_pid(slot_or_pid: Slot | int) -> int:
    """The runner's Python inside a sandbox (the deepest process of its tree)."""
    pid = slot_or_pid if isinstance(slot_or_pid, int) else slot_or_pid.process.pid  # type: ignore[union-attr]
    tree = processes.descendants(pid)
    assert tree, f"sandbox {pid} has no processes"
    return tree[-1]


async def test_a_new_session_adopts_a_pooled_sandbox_and_the_pool_refills(pooled: Host) -> None:
    slot = await ready_slot(pooled, "family")
    pid = slot.process.pid  # type: ignore[union-attr]
    ch = fake(pooled)
    await ch.say("hello from the family", chat="fam")
    sent = await ch.wait_sent(1, timeout=30)
    assert "hello from the family" in sent[0].text
    session = session_of(pooled, "fam")
    runner = pooled.supervisor.live[session]
    assert runner.adopted and runner.process.pid == pid
    assert pooled.pool.adoptions == 1 and slot.name not in pooled.pool.slots
    # The pool makes a new one for the next family chat, a different sandbox.
    again = await ready_slot(pooled, "family", other_than={slot.name})
    assert again.process.pid != pid  # type: ignore[union-attr]
    status = pooled.status()
    assert status["pool"]["adopted"] == 1
    row = next(s for s in status["sessions"] if s["id"] == session)
    assert row["runner_rss_mb"] and row["runner_rss_mb"] > 5


async def test_a_pooled_sandbox_holds_no_session_data_nor_credentials_before_adoption(pooled: Host) -> None:
    ch = fake(pooled)
    await ch.say("the family's private words", chat="fam")  # a session of the group exists, with a folder
    await ch.wait_sent(1, timeout=30)
    slot = await ready_slot(pooled, "family")
    runner = runner_pid(slot)
    listing = in_sandbox(runner, "ls", "-a", "/workspace")
    # What it holds is a blank session folder, made for the next new session of the group: empty databases,
    # nothing of any session's.
    assert set(listing.split()) <= {".", "..", "agent", "global", "run", "inbox", "outbox", "bell.in", "bell.out",
                                    *HOST_FILES, "outbound.db", "outbound.db-wal", "outbound.db-shm"}, listing
    assert slot.held is not None and slot.held[0].startswith(SessionManager.HELD_PREFIX)
    held = slot.held[1]
    assert held.conn.execute("SELECT count(*) FROM messages_in").fetchone()[0] == 0
    assert held.conn.execute("SELECT count(*) FROM o.messages_out").fetchone()[0] == 0
    # No session's folder is mounted, nor any other host path of the home.
    mountinfo = Path(f"/proc/{runner}/mountinfo").read_text()
    targets = [line.split()[4] for line in mountinfo.splitlines()]
    assert "/workspace" in targets and "/workspace/agent" in targets
    assert not [t for t in targets if t.startswith("/workspace/")
                and t.split("/")[2] not in ("agent", "global", *HOST_FILES)], targets
    assert session_of(pooled, "fam") not in mountinfo
    workspace = [line for line in mountinfo.splitlines() if line.split()[4] == "/workspace"][-1]
    assert slot.held[0] in workspace, workspace  # the held blank, mounted over the slot's empty folder
    # No credential in any process of the sandbox: not the model key, not another session's token.
    session = session_of(pooled, "fam")
    session_token = pooled.proxy.token(session)
    assert session_token
    for pid in [slot.process.pid, *processes.descendants(slot.process.pid)]:  # type: ignore[union-attr]
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert SECRET.encode() not in environ and session_token.encode() not in environ
    # The words of the family's session are nowhere the pooled sandbox can read.
    found = in_sandbox(runner, "grep", "-rl", "the family's private words", "/workspace", "/home", "/tmp")
    assert "the family's private words" not in found and "/workspace" not in found, found


async def test_the_proxy_refuses_a_pooled_sandbox_until_adoption(pooled: Host) -> None:
    slot = await ready_slot(pooled, "family")
    token = pooled.proxy.token(slot.name)
    assert token
    reader, writer = await asyncio.open_unix_connection(str(pooled.proxy.socket_dir / f"{slot.name}.sock"))
    writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: api.anthropic.com\r\nx-api-key: " + token.encode()
                 + b"\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
    await writer.drain()
    head = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 403"), head[:200]
    assert b"serves no session yet" in head


async def test_an_adopted_sandbox_serves_one_session_and_ends_with_it(pooled: Host) -> None:
    ch = fake(pooled)
    first = await ready_slot(pooled, "family")
    await ch.say("one", chat="fam")
    await ch.wait_sent(1, timeout=30)
    session = session_of(pooled, "fam")
    runner = pooled.supervisor.live[session]
    assert runner.process is first.process
    # The runner exits (as at its idle timeout): its sandbox is gone, never back in the pool.
    pooled.supervisor.kill(session)
    assert runner.watcher is not None
    await asyncio.wait_for(asyncio.shield(runner.watcher), 30)
    assert first.process.pid not in [s.process.pid for s in pooled.pool.slots.values() if s.process]  # type: ignore[union-attr]
    assert not Path(f"/proc/{first.process.pid}").exists() or \
        Path(f"/proc/{first.process.pid}/stat").read_text().split()[2] == "Z"  # type: ignore[union-attr]
    # A second session of the same kind gets another sandbox.
    wire(pooled, "fam2", "family", trigger="always")
    await ready_slot(pooled, "family", other_than={first.name})
    await ch.say("two", chat="fam2")
    await ch.wait_sent(2, timeout=30)
    other = pooled.supervisor.live[session_of(pooled, "fam2")]
    assert other.process is not first.process and other.process.pid != first.process.pid  # type: ignore[union-attr]
    # The first session's next message starts (or adopts) a sandbox of its own, not the second's.
    await ch.say("three", chat="fam")
    sent = await ch.wait_sent(3, timeout=30)
    assert "three" in sent[-1].text
    assert pooled.supervisor.live[session].process is not other.process


async def test_a_new_session_takes_the_folder_its_sandbox_holds_an_older_one_is_mounted_over_it(pooled: Host) -> None:
    ch = fake(pooled)
    slot = await ready_slot(pooled, "family")
    assert slot.held is not None
    held_name, held_end = slot.held
    sessions_dir = pooled.settings.sessions_dir / "family"
    await ch.say("first words", chat="fam")
    assert "first words" in (await ch.wait_sent(1, timeout=30))[0].text
    session = session_of(pooled, "fam")
    runner = pooled.supervisor.live[session]
    assert runner.process is slot.process
    # The held blank became the session's folder, with the end its runner had open: nothing was mounted.
    assert pooled.sessions.end(session) is held_end
    assert (sessions_dir / session).is_dir() and not (sessions_dir / held_name).exists()
    # The runner exits; the session's next message is answered by another pooled sandbox, its folder mounted
    # over the blank that one held, which goes when that sandbox ends.
    pooled.supervisor.kill(session)
    assert runner.watcher is not None
    await asyncio.wait_for(asyncio.shield(runner.watcher), 30)
    second = await ready_slot(pooled, "family", other_than={slot.name})
    assert second.held is not None
    second_held = second.held[0]
    await ch.say("second words", chat="fam")
    reply = (await ch.wait_sent(2, timeout=30))[-1].text
    assert "second words" in reply  # read from the session's own folder, mounted over the blank
    again = pooled.supervisor.live[session]
    assert again.adopted and again.process is second.process
    assert (sessions_dir / second_held).is_dir()  # still mounted below the session's folder
    pooled.supervisor.kill(session)
    assert again.watcher is not None
    await asyncio.wait_for(asyncio.shield(again.watcher), 30)
    for _ in range(100):
        if not (sessions_dir / second_held).exists():
            break
        await asyncio.sleep(0.05)
    assert not (sessions_dir / second_held).exists()  # a sandbox saw it: removed, never a blank again


async def test_a_held_blank_is_removed_without_following_what_was_planted_in_it(pooled: Host, tmp_path: Path) -> None:
    """A sandbox saw the blank it held: when it ends unadopted the folder goes, links in it removed, not followed."""
    slot = await ready_slot(pooled, "family")
    assert slot.held is not None
    folder = pooled.settings.sessions_dir / "family" / slot.held[0]
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep").write_text("keep me")
    os.symlink(canary, folder / "outbox" / "evil-dir")  # what a sandbox writing there could plant
    os.symlink(canary / "keep", folder / "inbox" / "evil-file")
    os.mkfifo(folder / "inbox" / "evil-fifo")
    pooled.pool.evict(len(pooled.pool.slots))
    for _ in range(200):
        if not folder.exists():
            break
        await asyncio.sleep(0.05)
    assert not folder.exists()
    assert (canary / "keep").read_text() == "keep me" and sorted(p.name for p in canary.iterdir()) == ["keep"]


async def test_a_blank_an_earlier_host_let_a_sandbox_hold_is_removed_not_reused(pooled: Host) -> None:
    slot = await ready_slot(pooled, "family")
    assert slot.held is not None
    parent = pooled.settings.sessions_dir / "family"
    leftover = parent / ".held-0123456789ab"  # an earlier host was killed while a sandbox held it
    (leftover / "inbox").mkdir(parents=True)
    pooled.sessions.make_blank("family")
    assert not leftover.exists()
    assert (parent / slot.held[0]).is_dir()  # the one this host's sandbox holds stays
    assert not any(name == leftover.name for name, _ in pooled.sessions._blanks.get("family", []))  # noqa: SLF001


async def test_the_session_sees_its_folder_and_the_groups_after_adoption(pooled: Host) -> None:
    await ready_slot(pooled, "family")
    ch = fake(pooled)
    await ch.say("[mock:sh=id -u; ls /workspace; cat /workspace/agent/CLAUDE.md | head -1; touch /workspace/inbound.db && echo WROTE]",
                 chat="fam")
    text = (await ch.wait_sent(1, timeout=30))[0].text
    session = session_of(pooled, "fam")
    assert pooled.supervisor.live[session].adopted
    uid = pooled.folders.owner_of("family")
    assert str(uid if uid is not None else 1000) in text.split()
    assert "inbound.db" in text and "outbound.db" in text and "agent" in text
    assert "# Andy — family" in text  # the group's memory, mounted at adoption as at a start
    assert "WROTE" not in text  # the host's file is read-only inside, as in a sandbox started for the session


async def test_over_the_memory_budget_the_idle_runner_used_least_recently_goes(tmp_path: Path) -> None:
    host = Host(make_settings(tmp_path / "home", pool_size=0, max_sandboxes=8), channels=[FakeChannel])
    for chat in ("a", "b", "d", "c"):
        wire(host, chat, trigger="always")
    await host.start()
    try:
        ch = fake(host)
        for i, chat in enumerate(("a", "b", "d")):
            await ch.say(f"hi {chat}", chat=chat)
            await ch.wait_sent(i + 1, timeout=30)
        ids = {chat: session_of(host, chat) for chat in "abd"}
        host.supervisor.measure()
        live = host.supervisor.live
        used = sum(live[ids[c]].rss_mb for c in "abd")
        assert all(live[ids[c]].rss_mb > 5 for c in "abd"), {c: live[ids[c]].rss_mb for c in "abd"}
        # Room for the three, not for a fourth.
        host.supervisor.memory.budget_mb = used + 0.5 * host.supervisor.memory.estimate("mock")
        # `a`, used least recently, is mid-turn: it must not be the one retired.
        await ch.say("[mock:sleep=4] slow a", chat="a")
        deadline = time.monotonic() + 10
        while live[ids["a"]].turn_since is None:
            assert time.monotonic() < deadline, "a never took its turn"
            await asyncio.sleep(0.02)
        b, d = live[ids["b"]], live[ids["d"]]
        await ch.say("hi c", chat="c")
        sent = await ch.wait_sent(4, timeout=30)
        assert any("hi c" in s.text for s in sent)
        assert b.stopping and ids["b"] not in live  # the idle one used least recently went
        assert not d.stopping and ids["d"] in live
        assert ids["a"] in live and not live[ids["a"]].stopping
        sent = await ch.wait_sent(5, timeout=30)
        assert any("slow a" in s.text for s in sent)  # a's turn finished
        # `b` resumes its session later, as today.
        await ch.say("back b", chat="b")
        sent = await ch.wait_sent(6, timeout=30)
        assert any("back b" in s.text for s in sent)
    finally:
        await host.stop()


async def test_a_pooled_sandbox_warms_up_at_a_lower_priority_and_runs_at_normal_priority_once_adopted(
        pooled: Host) -> None:
    slot = await ready_slot(pooled, "family")
    pid = slot.process.pid  # type: ignore[union-attr]

    def priorities() -> set[int]:
        """The nice value of every thread of every process of the sandbox."""
        seen = set()
        for p in [pid, *processes.descendants(pid)]:
            for tid in os.listdir(f"/proc/{p}/task"):
                seen.add(int(Path(f"/proc/{p}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[16]))
        return seen

    assert priorities() == {processes.POOLED_NICE}
    ch = fake(pooled)
    await ch.say("now", chat="fam")
    await ch.wait_sent(1, timeout=30)
    assert pooled.supervisor.live[session_of(pooled, "fam")].process.pid == pid
    assert priorities() == {0}
