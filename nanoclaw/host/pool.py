"""Pre-warmed sandboxes: a new runner's first reply as fast as any other.

A pooled sandbox is started for one agent group and one kind of chat (its
channel type), because everything a runner is given depends on those two only:
its uid, mounts, limits and image are the group's, its configuration and the
system prompt the group's and the chat kind's. It is started exactly as a
session's sandbox would be, except that `/workspace` is an empty slot folder
and its proxy socket acts for nobody. The runner imports its provider and
does what needs no session (the claude provider starts Claude Code and
connects to it), says it is ready, and waits.

Once it is ready, the host mounts a blank session folder (made ahead for the
group) and its nested mounts on the slot folder, from where they propagate into
the sandbox (sandbox/attach.py), and the runner opens it (protocol/adoption.py).
A session with no runner *adopts* a ready sandbox of its group and chat kind
(`adopt`): a new session takes the held folder as its own (nothing to mount or
open on its first message); an existing session's folder is mounted over it.
The host binds the proxy socket to the session and tells the runner to go. Until then
the sandbox holds no session data and its proxy token opens nothing. A
sandbox is taken out of the pool before it is adopted, so it serves at most
one session, and it ends with that session's runner.

The pool refills in the background, one sandbox at a time, only while no
runner is in the middle of a turn, at a lower CPU priority, within the sandbox
cap (a session that needs a slot evicts a pooled sandbox) and within the
memory budget. Size: `NANOCLAW_POOL_SIZE`; -1 (default) sizes it from free
memory, 0 turns it off. Pooling needs a runtime that can take mounts after it
started (bwrap on a root host); elsewhere the pool stays empty and says why.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from nanoclaw.config import Settings
from nanoclaw.errors import SandboxUnavailable
from nanoclaw.db import sessions as session_rows
from nanoclaw.host.memory import MemoryBudget, meminfo_mb
from nanoclaw.db.sessions import Session
from nanoclaw.host.sessions import SessionManager
from nanoclaw.protocol.host_end import HostEnd
from nanoclaw.logs import get_logger
from nanoclaw.sandbox import attach, processes
from nanoclaw.sandbox.attach import SlotPoint
from nanoclaw.sandbox.base import Runtime, SandboxProcess, SandboxSpec
from nanoclaw.sandbox.quota import mounted_points

log = get_logger("nanoclaw.host.pool")
AUTO_MAX = 2  # the auto size: a small pool, if free memory allows
AUTO_MEMORY_SHARE = 0.1  # of the free memory, at most, for the auto-sized pool
READY_TIMEOUT = 120.0
RETRY_AFTER = 60.0  # a chat kind whose sandboxes die before they are ready rests this long

Key = tuple[str, str]  # (agent group, channel type)


@dataclass
class Slot:
    name: str
    key: Key
    point: SlotPoint
    provider: str
    started_at: float = field(default_factory=time.monotonic)
    process: SandboxProcess | None = None
    ready: bool = False
    adopted_by: str | None = None
    rss_mb: float = 0.0
    killed: bool = False
    reaper: asyncio.Task[None] | None = field(default=None, repr=False)
    held: tuple[str, HostEnd] | None = field(default=None, repr=False)  # a blank folder on its /workspace
    claimed_by: str | None = None  # the new session that took the held folder (and is to adopt the sandbox)


@dataclass
class ProxySlots:
    """The vault proxy's side of pooled sandboxes (host/app.py provides it)."""

    open: Callable[[str, str], Awaitable[Path]]  # (slot name, agent group) → its socket
    token: Callable[[str], str | None]
    bind: Callable[[str, str], None]  # (slot name, session id)
    close: Callable[[str], Awaitable[None]]


class Pool:
    def __init__(self, settings: Settings, runtime: Runtime, sessions: SessionManager, proxy: ProxySlots,
                 label: str, memory: MemoryBudget, *, occupied: Callable[[], int], busy: Callable[[], bool],
                 live_mb: Callable[[], float]) -> None:
        self.settings = settings
        self.runtime = runtime
        self.sessions = sessions
        self.proxy = proxy
        self.label = label
        self.memory = memory
        self.occupied = occupied  # live and starting runners (the pool's own come on top)
        self.busy = busy  # a runner is in the middle of a turn
        self.live_mb = live_mb
        self.dir = settings.state_dir / "pool"
        self.slots: dict[str, Slot] = {}
        self.adoptions = 0
        self.why_off = self._why_off()
        self._filler: asyncio.Task[None] | None = None
        sessions.slot_blank = self._claim_blank
        self._reapers: set[asyncio.Task[None]] = set()
        self._resting: dict[Key, float] = {}
        self._closing = False

    def _why_off(self) -> str | None:
        if self.settings.pool_size == 0:
            return "NANOCLAW_POOL_SIZE=0"
        if not self.runtime.adoptable:
            return f"the {self.runtime.name} runtime cannot take a session's folder after it started"
        ok, why = attach.available()
        return None if ok else why

    # -- what the host sees ------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Sandboxes the pool holds (starting or ready), which count against the sandbox cap."""
        return len(self.slots)

    def target(self) -> int:
        if self.why_off is not None:
            return 0
        if self.settings.pool_size > 0:
            return self.settings.pool_size
        estimate = self.memory.estimate(self.settings.provider or "mock")
        return max(0, min(AUTO_MAX, int(meminfo_mb("MemAvailable") * AUTO_MEMORY_SHARE // estimate)))

    def memory_mb(self) -> float:
        return sum(s.rss_mb for s in self.slots.values())

    def sample(self) -> None:
        for slot in self.slots.values():
            if slot.process is not None:
                slot.rss_mb = processes.tree_rss_mb(slot.process.pid)
                if slot.ready:
                    self.memory.observe(slot.provider, slot.rss_mb)

    def describe(self) -> list[dict[str, object]]:
        return [{"group": s.key[0], "chat": s.key[1], "provider": s.provider, "ready": s.ready,
                 "pid": s.process.pid if s.process else None, "rss_mb": round(s.rss_mb, 1),
                 "age": round(time.monotonic() - s.started_at, 1)} for s in self.slots.values()]

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self.why_off is not None:
            log.info("pool.off", reason=self.why_off)
            return
        self._clear_leftovers()
        try:
            attach.slot_filesystem(self.dir)
        except SandboxUnavailable as exc:
            self.why_off = str(exc)
            log.error("pool.off", reason=self.why_off)
            return
        self.kick()

    def kick(self) -> None:
        """Refill in the background (a no-op while a refill runs or the pool is off)."""
        if self.why_off is None and not self._closing and (self._filler is None or self._filler.done()):
            self._filler = asyncio.create_task(self._fill())

    async def stop(self) -> None:
        self._closing = True
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)
        for slot in list(self.slots.values()):
            self._kill(slot)
        if self._reapers:  # adopted sandboxes end with their runners (the supervisor stops those first)
            await asyncio.wait(list(self._reapers), timeout=10)
        self._clear_leftovers()
        if self.why_off is None:
            attach.release_filesystem(self.dir)

    def _clear_leftovers(self) -> None:
        """Mounts on slot folders of an earlier host (killed without stopping) are let go."""
        if not self.dir.is_dir():
            return
        prefix = str(self.dir) + os.sep
        for point in sorted((p for p in mounted_points() if p.startswith(prefix)), reverse=True):
            SlotPoint.detach(Path(point))  # nested ones first
        for entry in self.dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                SlotPoint.release_path(entry / "ws")

    # -- filling -------------------------------------------------------------------------------

    def _wanted(self) -> list[Key]:
        """The chat kinds to warm, most recently active first, round-robin up to the pool's size."""
        now = time.monotonic()
        kinds = [k for k in session_rows.chat_kinds(self.sessions.conn) if self._resting.get(k, 0) <= now]
        target = self.target()
        if not kinds or target <= 0:
            return []
        have: dict[Key, int] = {}
        for slot in self.slots.values():
            have[slot.key] = have.get(slot.key, 0) + 1
        wanted = []
        for i in range(target):
            key = kinds[i % len(kinds)]
            if have.get(key, 0) > 0:
                have[key] -= 1
            else:
                wanted.append(key)
        return wanted[: max(0, target - len(self.slots))]

    def _room_for(self, provider: str) -> bool:
        if self.occupied() + len(self.slots) >= self.settings.max_sandboxes:
            return False
        used = self.live_mb() + self.memory_mb()
        return self.memory.room(used) >= self.memory.estimate(provider)

    async def _fill(self) -> None:
        while not self._closing:
            if self.busy():  # warming up costs CPU (even deciding what to warm): never while a person waits
                await asyncio.sleep(0.25)
                continue
            wanted = self._wanted()
            groups = {key[0] for key in [*wanted, *(s.key for s in self.slots.values())]}
            blank = next((g for g in sorted(groups) if not self.sessions.has_blank(g)), None)
            if blank is None and not wanted:
                return
            if blank is not None:
                # A new session's folder made ahead too: its databases cost more than the rest of a reply.
                self.sessions.folders.mount(blank)
                await asyncio.to_thread(self.sessions.make_blank, blank)
                continue
            key = wanted[0]
            provider = self.sessions.provider_of(key[0])
            if not self._room_for(provider):
                return
            try:
                await self._start_slot(key, provider)
            except Exception as exc:
                log.error("pool.start_failed", group=key[0], chat=key[1], error=f"{type(exc).__name__}: {exc}")
                self._resting[key] = time.monotonic() + RETRY_AFTER

    async def _start_slot(self, key: Key, provider: str) -> None:
        name = f"pool-{secrets.token_hex(6)}"
        slot = Slot(name, key, SlotPoint(self.dir / name / "ws"), provider)
        self.slots[name] = slot
        try:
            socket = await self.proxy.open(name, key[0])
            spec = self.sessions.slot_spec(key[0], key[1], self.label, name, slot.point.path, socket,
                                           self.proxy.token(name))
            slot.process = await _uncancelled_start(self.runtime, spec)
            if slot.killed:  # evicted while it started
                slot.process.kill()
        except BaseException:
            self.slots.pop(name, None)
            slot.point.release()
            await self.proxy.close(name)
            raise
        slot.reaper = asyncio.create_task(self._reap(slot))
        self._reapers.add(slot.reaper)
        slot.reaper.add_done_callback(self._reapers.discard)
        try:
            slot.ready = await asyncio.wait_for(slot.process.ready(), READY_TIMEOUT)
        except asyncio.TimeoutError:
            slot.ready = False
        if not slot.ready and slot.adopted_by is None:
            log.warning("pool.not_ready", group=key[0], chat=key[1], seconds=round(time.monotonic() - slot.started_at, 1))
            self._resting[key] = time.monotonic() + RETRY_AFTER
            self._kill(slot)
            return
        if not slot.killed and slot.adopted_by is None:
            self._hold_blank(slot)
        slot.rss_mb = processes.tree_rss_mb(slot.process.pid)
        self.memory.observe(provider, slot.rss_mb)
        log.info("pool.ready", group=key[0], chat=key[1], pool=len(self.slots),
                 seconds=round(time.monotonic() - slot.started_at, 2), rss_mb=round(slot.rss_mb, 1))

    def _hold_blank(self, slot: Slot) -> None:
        """A blank session folder on the ready sandbox's /workspace, opened by its runner ahead: the new session
        that takes it (SessionManager._take_blank) finds its folder made and the runner on it, nothing to mount."""
        held = self.sessions.hold_blank(slot.key[0])
        if held is None or slot.process is None:
            return
        slot.held = held  # from now on dropped with the sandbox, unless a session takes it
        try:
            self.sessions.attach_folder(slot.key[0], held[1], slot.point)
            slot.process.hold_folder()
        except Exception as exc:
            log.error("pool.hold_failed", group=slot.key[0], chat=slot.key[1], error=f"{type(exc).__name__}: {exc}")
            self._kill(slot)

    def _claim_blank(self, session: Session) -> tuple[str, HostEnd] | None:
        """For a new session's folder: the blank a ready sandbox of its group and chat kind holds (then that
        sandbox is the one it adopts)."""
        if not self.slots:
            return None
        key = (session.agent_group_id, self.sessions.channel_type(session.id))
        slot = next((s for s in self.slots.values()
                     if s.key == key and s.ready and s.held and s.claimed_by is None and s.process), None)
        if slot is None:
            return None
        slot.claimed_by = session.id
        return slot.held

    async def _reap(self, slot: Slot) -> None:
        assert slot.process is not None
        code = await slot.process.wait()
        self.slots.pop(slot.name, None)
        slot.point.release()
        if slot.held is not None:  # mounted no more: removable (a no-op if a session took it)
            self.sessions.drop_held(slot.key[0], *slot.held)
            slot.held = None
        await self.proxy.close(slot.name)
        if slot.adopted_by is None and not self._closing:
            log.info("pool.sandbox_ended", group=slot.key[0], chat=slot.key[1], code=code)
            self.kick()

    # -- taking ----------------------------------------------------------------------------------

    def _key_of(self, session_id: str) -> Key:
        return (self.sessions.get(session_id).agent_group_id, self.sessions.channel_type(session_id))

    def _ready_for(self, session_id: str) -> Slot | None:
        if self.why_off is not None or not self.slots:
            return None
        claimed = next((s for s in self.slots.values() if s.claimed_by == session_id and s.process), None)
        if claimed is not None:
            return claimed
        key = self._key_of(session_id)
        return next((s for s in self.slots.values()
                     if s.key == key and s.ready and s.process and s.claimed_by is None), None)

    def has_ready(self, session_id: str) -> bool:
        return self._ready_for(session_id) is not None

    async def adopt(self, session_id: str) -> SandboxProcess | None:
        """A ready sandbox of the session's group and chat kind, now serving the session; None if none."""
        slot = self._ready_for(session_id)
        if slot is None or slot.process is None:
            return None
        session = self.sessions.get(session_id)
        key = slot.key
        del self.slots[slot.name]  # out of the pool first: no second session can take it
        slot.adopted_by = session_id
        # A new session took the folder this sandbox holds: nothing to mount, the runner has it open. Any other
        # session's folder is mounted over /workspace, and the runner opens it.
        fresh = slot.held is not None and slot.claimed_by == session_id and self.sessions.end(session_id) is slot.held[1]
        try:
            if not fresh:
                self.sessions.attach_session(session, slot.point)
            self.proxy.bind(slot.name, session_id)
            slot.process.adopt(remounted=not fresh)
            # What every start does for the group (memory repaired, skills copied afresh; the agent may have
            # changed them since this sandbox started), while the runner takes its first turn.
            self.sessions.group_ready(key[0])
        except Exception as exc:
            log.error("pool.adopt_failed", session=session_id, error=f"{type(exc).__name__}: {exc}")
            slot.process.kill()
            return None
        self.adoptions += 1
        log.info("pool.adopted", session=session_id, group=key[0], chat=key[1],
                 waited=round(time.monotonic() - slot.started_at, 1))
        self.kick()
        return slot.process

    def evict(self, count: int = 1) -> int:
        """Give sandboxes up (the cap or the memory budget wants them); not-ready ones first."""
        victims = sorted(self.slots.values(), key=lambda s: (s.ready, s.started_at))[:count]
        for slot in victims:
            self._kill(slot)
            log.info("pool.evicted", group=slot.key[0], chat=slot.key[1])
        return len(victims)

    def retire_group(self, group_id: str) -> None:
        """The group changed (image, MCP servers): its pooled sandboxes would start stale."""
        for slot in [s for s in self.slots.values() if s.key[0] == group_id]:
            self._kill(slot)
        self.kick()

    def _kill(self, slot: Slot) -> None:
        """Stop a pooled sandbox; its reaper (or its start, if still starting) cleans up after it."""
        self.slots.pop(slot.name, None)
        slot.killed = True
        if slot.process is not None:
            slot.process.kill()


async def _uncancelled_start(runtime: Runtime, spec: SandboxSpec) -> SandboxProcess:
    """Start a sandbox; if cancelled meanwhile (the host stops), the started sandbox is stopped, not left behind."""
    start = asyncio.ensure_future(runtime.start(spec))
    try:
        return await asyncio.shield(start)
    except asyncio.CancelledError:
        try:
            process = await start
        except Exception:
            raise asyncio.CancelledError from None
        process.kill()
        await process.wait()
        raise
