"""Runner lifecycle through real sandboxes: one runner per session, the global cap, idle exit, heartbeats, retries."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from nanoclaw.host.app import Host
from nanoclaw.sandbox.base import SandboxProcess, SandboxSpec
from nanoclaw.sandbox.bwrap import BwrapRuntime
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel

pytestmark = pytest.mark.sandbox


class CountingRuntime(BwrapRuntime):
    """The real bwrap runtime, counting starts and the most sandboxes alive at once."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.starts: list[str] = []
        self.alive = 0
        self.peak = 0

    async def start(self, spec: SandboxSpec) -> SandboxProcess:
        self.starts.append(spec.name)
        await asyncio.sleep(0.05)  # widen the window for concurrent wakes
        process = await super().start(spec)
        self.alive += 1
        self.peak = max(self.peak, self.alive)
        original_wait = process.wait

        async def wait() -> int:
            code = await original_wait()
            self.alive -= 1
            return code

        process.wait = wait  # type: ignore[method-assign]
        return process


async def make_host(tmp_path: Path, **overrides: object) -> tuple[Host, CountingRuntime]:
    settings = make_settings(tmp_path / "home", **overrides)
    runtime = CountingRuntime(settings.state_dir, settings.logs_dir / "runners")
    host = Host(settings, runtime=runtime, channels=[FakeChannel])
    await host.start()
    return host, runtime


def runner_pid(bwrap_pid: int) -> int:
    """The python runner inside the sandbox, seen from the host's PID namespace."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"nanoclaw.runner" in cmdline and not cmdline.startswith(b"/usr/bin/bwrap") and _descends(int(entry), bwrap_pid):
                return int(entry)
        time.sleep(0.02)
    raise AssertionError("runner process not found")


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


async def test_concurrent_wakes_share_one_start(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path)
    try:
        session = host.sessions.resolve("main", None, None, "agent-shared")
        host.sessions.end(session.id).append(id="x1", kind="chat", text="hi", trigger=True)
        await asyncio.gather(*(host.supervisor.wake(session.id) for _ in range(10)))
        assert runtime.starts == [session.id]
        assert list(host.supervisor.live) == [session.id]
    finally:
        await host.stop()


async def test_global_limit_queues_fairly_and_answers_everyone(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path, max_sandboxes=2)
    try:
        ch = fake(host)
        for i in range(5):
            wire(host, f"chat{i}", trigger="always")
        for i in range(5):
            await ch.say(f"hello {i}", chat=f"chat{i}")
        sent = await ch.wait_sent(5, timeout=30)
        assert sorted(s.route.platform_id for s in sent) == [f"chat{i}" for i in range(5)]
        assert runtime.peak <= 2
        # Queued sessions started in the order they asked.
        assert runtime.starts[2:] == [host.router.sessions.resolve("main", _mg(host, f"chat{i}"), None, "per-thread").id for i in range(2, 5)]
    finally:
        await host.stop()


def _mg(host: Host, chat: str) -> int:
    return host.conn.execute("SELECT id FROM messaging_groups WHERE platform_id = ?", (chat,)).fetchone()[0]


async def test_idle_runner_exits_and_a_new_message_starts_another(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path, idle_timeout=0.5)
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("first")
        await ch.wait_sent(1)
        for _ in range(100):
            if not host.supervisor.live:
                break
            await asyncio.sleep(0.05)
        assert not host.supervisor.live
        await ch.say("second")
        sent = await ch.wait_sent(2)
        assert "second" in sent[1].text
        assert len(runtime.starts) == 2
    finally:
        await host.stop()


async def test_killed_runner_is_retried_and_answers_once(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path)
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("[mock:sleep=1.5] slow question", message_id="slow")
        for _ in range(200):
            if any(on for _, on in ch.typing):
                break
            await asyncio.sleep(0.02)
        assert any(on for _, on in ch.typing), "runner never took the message"
        os.kill(runner_pid(host.supervisor.live[next(iter(host.supervisor.live))].process.pid), signal.SIGKILL)
        assert await ch.wait_processed("slow", timeout=20) == "done"
        await asyncio.sleep(0.5)
        assert len(ch.sent) == 1 and "slow question" in ch.sent[0].text
        assert len(runtime.starts) == 2
    finally:
        await host.stop()


async def test_crash_once_then_success(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path)
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("[mock:crash-once] flaky", message_id="flaky")
        assert await ch.wait_processed("flaky") == "done"
        assert [s.text.count("flaky") for s in ch.sent] == [1]
        row = host.sessions.end(host.router.sessions.resolve("main", _mg(host, "chat1"), None, "per-thread").id).messages([2])[0]
        assert row.attempts == 1
    finally:
        await host.stop()


async def test_always_failing_message_gives_up_and_tells_the_person(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path, max_attempts=3)
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("[mock:crash] doomed", message_id="doomed")
        assert await ch.wait_processed("doomed", timeout=30) == "failed"
        assert len(runtime.starts) == 3
        assert len(ch.sent) == 1 and "could not process your message after 3 attempts" in ch.sent[0].text
        # The next message is answered normally: the failed one is not retried again.
        await ch.say("are you there?", message_id="next")
        assert await ch.wait_processed("next") == "done"
        assert "are you there?" in ch.sent[-1].text and "doomed" not in ch.sent[-1].text
    finally:
        await host.stop()


async def test_a_turn_over_its_wall_time_limit_is_stopped_and_the_person_told(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path, turn_timeout=1.5, max_attempts=1)
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("[mock:sleep=60] think forever", message_id="forever")  # responsive: heartbeats go on
        # Failed within 30 s of a 60 s turn: the limit stopped it (no wall-clock bound of our own).
        assert await ch.wait_processed("forever", timeout=30) == "failed"
        assert "worked longer than the limit of 1.5 s" in ch.sent[-1].text
        await ch.say("and now a quick one", message_id="quick")  # the next turn starts its own clock
        assert await ch.wait_processed("quick", timeout=30) == "done"
    finally:
        await host.stop()


async def test_stale_heartbeat_gets_the_runner_killed(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path, heartbeat_timeout=1.0, max_attempts=2)
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("[mock:hang=60] frozen", message_id="frozen")
        assert await ch.wait_processed("frozen", timeout=30) == "failed"  # killed: the 60 s hang had not ended
        assert "stopped responding" in ch.sent[-1].text
    finally:
        await host.stop()


async def test_a_session_whose_checkpoint_fails_does_not_stop_the_heartbeat_checks(tmp_path: Path) -> None:
    """The host's timer checkpoints every live session; one damaged database must not end the timer (and with
    it the heartbeat checks and the poll fallback of every session)."""
    host, runtime = await make_host(tmp_path, heartbeat_timeout=1.0, max_attempts=2)
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("warm up", message_id="first")
        assert await ch.wait_processed("first", timeout=30) == "done"
        (session_id,) = host.supervisor.live
        end = host.sessions.end(session_id)

        def damaged() -> None:
            raise sqlite3.DatabaseError("database disk image is malformed")

        end.checkpoint = damaged  # type: ignore[method-assign]
        await asyncio.sleep(0.5)  # a few ticks meet the error
        await ch.say("[mock:hang=60] frozen", message_id="frozen")
        assert await ch.wait_processed("frozen", timeout=30) == "failed"  # the timer still saw it stop beating
        assert "stopped responding" in ch.sent[-1].text
    finally:
        await host.stop()


async def test_startup_stops_orphan_sandboxes_of_an_earlier_host(tmp_path: Path) -> None:
    import dataclasses
    import sys

    from tests.security.probe import popen_sandbox

    settings = make_settings(tmp_path / "home")
    first = Host(settings, channels=[FakeChannel])
    session = first.sessions.resolve("main", None, None, "agent-shared")
    spec = first.sessions.sandbox_spec(session, first.label)
    orphan_spec = dataclasses.replace(spec, argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    # Started outside any host (its parent is this test): what a crashed host would leave behind.
    orphan = popen_sandbox(first.runtime, orphan_spec, start_new_session=True)
    other_home = popen_sandbox(first.runtime, dataclasses.replace(orphan_spec, label="nc-someone-else"),
                               start_new_session=True)
    try:
        await asyncio.sleep(0.3)
        await first.stop()
        assert orphan.poll() is None
        host = Host(settings, channels=[FakeChannel])
        await host.start()
        try:
            assert orphan.wait(timeout=5) == -signal.SIGKILL
            assert other_home.poll() is None  # sandboxes of another NanoClaw home are left alone
        finally:
            await host.stop()
    finally:
        other_home.kill()
        orphan.kill()


async def test_a_poisonous_message_does_not_sink_the_ones_batched_with_it(tmp_path: Path) -> None:
    host, runtime = await make_host(tmp_path, max_attempts=2)
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("[mock:sleep=0.5] first", message_id="first")
        await ch.say("innocent question", message_id="innocent")  # both wait while "first" runs…
        await ch.say("[mock:crash] poison", message_id="poison")  # …and are batched with the poison
        assert await ch.wait_processed("poison", timeout=30) == "failed"
        assert await ch.wait_processed("innocent", timeout=30) == "done"
        answered = " ".join(s.text for s in ch.sent)
        assert "innocent question" in answered and "could not process your message" in answered
    finally:
        await host.stop()
