"""Runners: at most one per session, a global cap with a fair queue, heartbeats, retries (DESIGN §4)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

from nanoclaw.config import Settings
from nanoclaw.host.memory import MemoryBudget
from nanoclaw.host.sessions import SessionManager
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import InboundMessage
from nanoclaw.sandbox import processes
from nanoclaw.sandbox.base import Runtime, SandboxProcess

if TYPE_CHECKING:
    from nanoclaw.host.pool import Pool

log = get_logger("nanoclaw.host.supervisor")

Activity = Callable[[str], None]
GiveUp = Callable[[str, list[InboundMessage], str], Awaitable[None]]


@dataclass
class LiveRunner:
    session_id: str
    process: SandboxProcess
    started_at: float
    stale: bool = False
    stopping: bool = False
    turn_since: float | None = None  # when the host saw it take the turn it is working on
    why_killed: str | None = None
    last_activity: float = 0.0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    bell_fd: int | None = None  # its doorbell, watched by the event loop while it lives
    provider: str = "mock"
    adopted: bool = False  # a pooled sandbox took the session
    rss_mb: float = 0.0  # its sandbox's resident memory, sampled
    expecting: bool = False  # woken for new work it has not finished yet (its turn may not have begun)


MEMORY_SAMPLE_INTERVAL = 5.0
EXPECTING_FOR = 30.0  # seconds a runner woken for work counts as busy before the host sees it take a turn


class Supervisor:
    def __init__(
        self, settings: Settings, runtime: Runtime, sessions: SessionManager, label: str,
        on_activity: Activity, on_give_up: GiveUp,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.sessions = sessions
        self.label = label
        self.on_activity = on_activity
        self.on_give_up = on_give_up
        # Runs before each sandbox start (e.g. opening the session's proxy socket).
        self.prepare: Callable[[str], Awaitable[None]] | None = None
        self.live: dict[str, LiveRunner] = {}
        self.starts = 0
        self._starting: dict[str, asyncio.Future[None]] = {}
        self._queue: deque[str] = deque()
        self._retry_at: dict[str, asyncio.TimerHandle] = {}
        self._clean_exits: dict[str, int] = {}
        self._timer: asyncio.Task[None] | None = None
        self._closing = False
        self.memory = MemoryBudget(settings.memory_budget_mb)
        self.pool: Pool | None = None  # pre-warmed sandboxes (host/pool.py), set by the host
        self._sampled_at = 0.0

    @property
    def queued(self) -> list[str]:
        return list(self._queue)

    async def wake(self, session_id: str) -> None:
        """Make sure a runner will see the session's new rows: ring it, or start one."""
        if session_id in self.live:
            runner = self.live[session_id]
            runner.last_activity = time.monotonic()
            runner.expecting = True
            self.sessions.end(session_id).ring()
            return
        starting = self._starting.get(session_id)
        if starting is not None:
            await asyncio.shield(starting)
            return
        if session_id in self._queue or session_id in self._retry_at or self._closing:
            return
        if not self._has_room(session_id):
            self._queue.append(session_id)
            log.info("runner.queued", session=session_id, queue=len(self._queue))
            self._make_room()
            return
        await self._start(session_id)

    async def prestart(self, session_id: str) -> None:
        """Start a session's runner ahead of its work (a scheduled task due soon), if there is room now."""
        if (session_id in self.live or session_id in self._starting or session_id in self._queue
                or session_id in self._retry_at or self._closing or not self._has_room(session_id)):
            return
        log.info("runner.prestart", session=session_id)
        await self._start(session_id, expecting=False)

    # -- room: the sandbox cap and the memory budget -----------------------------------------

    def occupied(self) -> int:
        return len(self.live) + len(self._starting)

    def busy(self) -> bool:
        """Whether someone waits for a runner: a turn runs, or work was handed to a runner not done with it yet."""
        # Work handed over counts for a while only: a wake that brought no turn must not hold the pool forever.
        recent = time.monotonic() - EXPECTING_FOR
        return (any(r.turn_since is not None or (r.expecting and r.last_activity > recent) for r in self.live.values())
                or bool(self._starting))

    def live_mb(self) -> float:
        # A runner not sampled yet counts at its provider's estimate, so starts between samples are not free.
        return sum(r.rss_mb or self.memory.estimate(r.provider) for r in self.live.values())

    def _has_room(self, session_id: str) -> bool:
        """Room for one more runner: pooled sandboxes give way to it, idle runners are asked to go."""
        if self.occupied() >= self.settings.max_sandboxes:
            return False
        pool = self.pool
        if pool is not None and pool.has_ready(session_id):
            return True  # adoption: no new sandbox, no more memory
        if pool is not None and self.occupied() + pool.size >= self.settings.max_sandboxes:
            pool.evict(1)
        need = self.memory.estimate(self.sessions.provider_of(self.sessions.get(session_id).agent_group_id))
        while self.memory.room(self.live_mb() + (pool.memory_mb() if pool else 0.0)) < need:
            if pool is None or not pool.evict(1):
                # Nothing pooled left to give: wait for an idle runner to go (never one mid-turn), unless
                # none lives to wait for.
                return not self.live
        return True

    async def _start(self, session_id: str, expecting: bool = True) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._starting[session_id] = done
        try:
            self.sessions.end(session_id)  # opened before the sandbox exists
            process = await self.pool.adopt(session_id) if self.pool is not None else None
            adopted = process is not None
            if process is None:
                if self.prepare is not None:
                    await self.prepare(session_id)
                spec = self.sessions.sandbox_spec(self.sessions.get(session_id), self.label)
                process = await self.runtime.start(spec)
            end = self.sessions.end(session_id)  # (a folder found damaged while preparing was replaced)
        except Exception as exc:
            log.error("runner.start_failed", session=session_id, error=f"{type(exc).__name__}: {exc}")
            del self._starting[session_id]
            done.set_result(None)
            await self._handle_exit(session_id, crashed=True, reason=f"the sandbox could not start ({exc})")
            return
        if self._closing:  # the host stopped while this sandbox was starting: it must not outlive the host
            process.kill()
            await process.wait()
            del self._starting[session_id]
            done.set_result(None)
            return
        self.starts += 1
        provider = self.sessions.provider_of(self.sessions.get(session_id).agent_group_id)
        runner = LiveRunner(session_id, process, time.monotonic(), last_activity=time.monotonic(),
                            provider=provider, adopted=adopted, expecting=expecting)
        self.live[session_id] = runner
        if end.bell_out is not None:
            runner.bell_fd = end.bell_out.fileno()
            loop.add_reader(runner.bell_fd, self._on_bell, session_id)
        runner.watcher = asyncio.create_task(self._watch(runner))
        del self._starting[session_id]
        done.set_result(None)
        self._ensure_timers()
        log.info("runner.started", session=session_id, pid=process.pid, live=len(self.live), adopted=adopted)

    def _on_bell(self, session_id: str) -> None:
        end = self.sessions.end(session_id)
        if end.bell_out is not None:
            end.bell_out.drain()
        self.on_activity(session_id)

    async def _watch(self, runner: LiveRunner) -> None:
        code = await runner.process.wait()
        if runner.bell_fd is not None:
            asyncio.get_running_loop().remove_reader(runner.bell_fd)
        self.live.pop(runner.session_id, None)
        log.info("runner.exited", session=runner.session_id, code=code, stale=runner.stale)
        if self._closing:  # the session folders are closed (and their quota images let go): touch nothing
            return
        self.on_activity(runner.session_id)  # what it wrote last
        if not self._closing:
            crashed = code != 0 or runner.stale
            reason = runner.why_killed or f"the agent process failed (exit {code})"
            await self._handle_exit(runner.session_id, crashed=crashed, reason=reason)
            await self._start_queued()

    async def _handle_exit(self, session_id: str, *, crashed: bool, reason: str) -> None:
        end = self.sessions.end(session_id)
        unfinished = end.unfinished()
        if not unfinished:
            self._clean_exits.pop(session_id, None)
            return
        if not crashed:
            # An idle exit racing a new message: start again, but never loop forever.
            count = self._clean_exits[session_id] = self._clean_exits.get(session_id, 0) + 1
            if count <= 3:
                await self.wake(session_id)
                return
            reason = "the agent exited without answering"
        self._clean_exits.pop(session_id, None)
        end.bump_attempts([m.seq for m in unfinished])
        unfinished = end.messages([m.seq for m in unfinished])
        failed = [m for m in unfinished if m.attempts >= self.settings.max_attempts]
        if failed:
            end.give_up([m.seq for m in failed])
            log.warning("message.gave_up", session=session_id, count=len(failed), attempts=failed[0].attempts)
            await self.on_give_up(session_id, failed, reason)
        retry = [m for m in unfinished if m.attempts < self.settings.max_attempts]
        if retry:
            delay = self.settings.retry_backoff * 2 ** (max(m.attempts for m in retry) - 1)
            log.info("runner.retry", session=session_id, delay=round(delay, 3), attempt=retry[0].attempts + 1)
            self._retry_at[session_id] = asyncio.get_running_loop().call_later(delay, self._retry, session_id)

    def _retry(self, session_id: str) -> None:
        self._retry_at.pop(session_id, None)
        asyncio.ensure_future(self.wake(session_id))

    def _make_room(self, wanted: int | None = None) -> None:
        """Ask idle runners to exit while sessions wait for a slot, longest idle first (never one mid-turn)."""
        if wanted is None:
            wanted = len(self._queue) - sum(1 for r in self.live.values() if r.stopping)
        idle = [r for r in self.live.values() if not r.stopping and r.turn_since is None
                and not self.sessions.end(r.session_id).unfinished()]
        for runner in sorted(idle, key=lambda r: r.last_activity)[: max(wanted, 0)]:
            runner.stopping = True
            self.sessions.end(runner.session_id).request_stop()
            log.info("runner.stop_requested", session=runner.session_id, queue=len(self._queue))

    async def _start_queued(self) -> None:
        while self._queue and self._has_room(self._queue[0]):
            await self._start(self._queue.popleft())
        if self.pool is not None and not self._queue:
            self.pool.kick()

    def measure(self) -> None:
        """The resident memory of each live runner's sandbox and of the pool's."""
        self._sampled_at = time.monotonic()
        for runner in self.live.values():
            runner.rss_mb = processes.tree_rss_mb(runner.process.pid)
            self.memory.observe(runner.provider, runner.rss_mb)
        if self.pool is not None:
            self.pool.sample()

    def sample_memory(self) -> None:
        """Measure; over the budget, the pool shrinks first, then the idle runners used least recently go."""
        self.measure()
        over = -self.memory.room(self.live_mb() + (self.pool.memory_mb() if self.pool else 0.0))
        while over > 0 and self.pool is not None and self.pool.evict(1):
            over = -self.memory.room(self.live_mb() + self.pool.memory_mb())
        if over > 0:
            ordered = sorted((r for r in self.live.values() if not r.stopping and r.turn_since is None),
                             key=lambda r: r.last_activity)
            count, freed = 0, 0.0
            for runner in ordered:
                if freed >= over:
                    break
                count += 1
                freed += runner.rss_mb
            log.warning("memory.over_budget", used_mb=round(self.live_mb()), budget_mb=round(self.memory.budget_mb))
            self._make_room(count)

    def _ensure_timers(self) -> None:
        # The timer runs only while runners live: an idle host does no periodic work.
        if self._closing:
            return
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        """The slow poll fallback (correctness never depends on a doorbell) and the heartbeat check."""
        interval = min(self.settings.host_poll_interval, max(0.05, self.settings.heartbeat_timeout / 4))
        while self.live:
            await asyncio.sleep(interval)
            for session_id in list(self.live):
                self.on_activity(session_id)
                try:
                    self.sessions.end(session_id).checkpoint()
                except sqlite3.Error as exc:  # one damaged session must not stop the heartbeat checks
                    log.warning("session.checkpoint_failed", session=session_id, error=str(exc))
            self._check_heartbeats()
            since = time.monotonic() - self._sampled_at
            # Sampling walks /proc: not while someone waits for a reply, unless it is long overdue.
            if since >= MEMORY_SAMPLE_INTERVAL and (not self.busy() or since >= 6 * MEMORY_SAMPLE_INTERVAL):
                self.sample_memory()
            if self._queue:
                self._make_room()

    def _check_heartbeats(self) -> None:
        """Kill runners whose heartbeat is older than the timeout; their exit triggers the retry."""
        now_wall, now = time.time(), time.monotonic()
        for runner in list(self.live.values()):
            beat = self.sessions.end(runner.session_id).heartbeat_mtime()
            beat_age = now_wall - beat if beat is not None else float("inf")
            age = min(beat_age, now - runner.started_at)
            if age > self.settings.heartbeat_timeout and not runner.stale:
                log.warning("runner.stale", session=runner.session_id, seconds=round(age, 1))
                self._stop_stale(runner, "it stopped responding")
            turn = now - runner.turn_since if runner.turn_since is not None else 0.0
            if turn > self.settings.turn_timeout and not runner.stale:
                log.warning("runner.turn_timeout", session=runner.session_id, seconds=round(turn, 1))
                self._stop_stale(runner, f"it worked longer than the limit of {self.settings.turn_timeout:g} s")

    @staticmethod
    def _stop_stale(runner: LiveRunner, why: str) -> None:
        runner.stale = True
        runner.why_killed = why
        runner.process.kill()

    def turn_changed(self, session_id: str, working: bool) -> None:
        """The wall-time limit of a turn counts from when the host saw the runner take it."""
        runner = self.live.get(session_id)
        if runner is None:
            return
        if not working:
            runner.turn_since = None
            runner.expecting = False
        elif runner.turn_since is None:
            runner.turn_since = time.monotonic()

    def retire_group(self, group_id: str) -> None:
        """Ask the group's live runners to exit when idle, so their next start picks up a new image."""
        if self.pool is not None:
            self.pool.retire_group(group_id)
        for runner in list(self.live.values()):
            if self.sessions.get(runner.session_id).agent_group_id == group_id and not runner.stopping:
                runner.stopping = True
                self.sessions.end(runner.session_id).request_stop()

    def kill(self, session_id: str) -> bool:
        runner = self.live.get(session_id)
        if runner:
            runner.process.kill()
        return runner is not None

    async def stop(self) -> None:
        self._closing = True
        for handle in self._retry_at.values():
            handle.cancel()
        if self._starting:  # a start in flight ends (and kills its sandbox) rather than outliving the host
            await asyncio.wait(list(self._starting.values()), timeout=30)
        for runner in list(self.live.values()):
            runner.process.kill()
        watchers = [r.watcher for r in self.live.values() if r.watcher]
        if watchers:
            await asyncio.wait(watchers, timeout=5)
        for runner in self.live.values():  # still tearing down: its doorbell closes with the host's ends
            if runner.bell_fd is not None:
                asyncio.get_running_loop().remove_reader(runner.bell_fd)
                runner.bell_fd = None
        if self._timer:
            self._timer.cancel()
