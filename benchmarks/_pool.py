"""The pooled first reply: a new session's first message answered by a pre-warmed sandbox (host/pool.py)."""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

from benchmarks._harness import channel, make_host, temp_home, wire
from nanoclaw.host.app import Host

KEY = ("main", "bench")  # the agent group and chat kind the timing channel's chats have


async def pool_warm(host: Host, timeout: float = 120.0) -> float:
    """Wait until a pooled sandbox for the timing chats is ready and the pool rests; its resident memory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = [s for s in host.pool.slots.values() if s.key == KEY and s.ready]
        filling = host.pool._filler is not None and not host.pool._filler.done()  # noqa: SLF001
        if ready and not filling and not host.supervisor.busy() and host.sessions.has_blank(KEY[0]):
            host.pool.sample()
            return ready[0].rss_mb
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the pool had no ready sandbox within {timeout:g} s ({host.status()['pool']})")


async def pooled_first_replies(samples: int, **overrides: Any) -> tuple[list[float], float]:
    """Milliseconds from a new session's first message to its reply with the pool warm; a pooled sandbox's RSS."""
    home = temp_home()
    # Two: the host's own terminal chat is wired too, and its kind may be warmed first.
    host = make_host(home, pool_size=2, max_sandboxes=samples + 4, **overrides)
    for i in range(samples):
        wire(host, f"pooled{i}")
    await host.start()
    try:
        ch = channel(host)
        times, idle_rss = [], 0.0
        for i in range(samples):
            idle_rss = max(idle_rss, await pool_warm(host))
            adopted = host.pool.adoptions
            times.append(await ch.round_trip(f"pooled{i}"))
            if host.pool.adoptions != adopted + 1:
                raise RuntimeError("the new session did not adopt the pooled sandbox")
        return times, idle_rss
    finally:
        await host.stop()
        shutil.rmtree(home.parent, ignore_errors=True)
