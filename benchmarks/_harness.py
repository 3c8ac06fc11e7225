"""Shared pieces of the benchmarks: a timing channel and a host in a temporary home."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nanoclaw.channels.base import Capabilities, Channel, InboundEvent, OutgoingMessage, SendResult
from nanoclaw.config import Settings
from nanoclaw.db import messaging_groups, wirings
from nanoclaw.host.app import Host

_ids = itertools.count(1)
# Benchmarks never touch the owner's ~/.config/nanoclaw (vault key, CA, policies).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="nanoclaw-bench-config-")


class TimingChannel(Channel):
    """Records when each reply reaches the platform; `expect()` returns a future for the next one."""

    type = "bench"
    capabilities = Capabilities()

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.text_waiters: list[tuple[str, asyncio.Future[float]]] = []

    async def send(self, message: OutgoingMessage) -> SendResult:
        now = time.perf_counter()
        waiter = self.waiters.pop(message.route.platform_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)
        if self.text_waiters:
            for needle, future in self.text_waiters:
                if needle in (message.text or "") and not future.done():
                    future.set_result(now)
            self.text_waiters = [(n, f) for n, f in self.text_waiters if not f.done()]
        return SendResult(str(next(_ids)))

    def expect_text(self, needle: str) -> asyncio.Future[float]:
        """A future for when a reply containing `needle` is sent (the time it was)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.text_waiters.append((needle, future))
        return future

    async def round_trip(self, chat: str, text: str = "ping") -> float:
        """Milliseconds from handing the message to the host until its reply is sent."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self.waiters[chat] = future
        # A reply that never comes fails the run (CancelledError); a bare timer, not wait_for's wrapper
        # future and callbacks, so the harness adds as little as it can to what it measures.
        deadline = loop.call_later(60, future.cancel)
        try:
            start = time.perf_counter()
            await self.host.receive(InboundEvent(self.type, chat, f"m{next(_ids)}", text, "bench", "Bench"))
            end = await future
        finally:
            deadline.cancel()
        return (end - start) * 1000


def make_host(home: Path, **overrides: Any) -> Host:
    values: dict[str, Any] = dict(home=home, provider="mock", log_level="WARNING", web_port=0)
    values.update(overrides)
    return Host(Settings(**values), channels=[TimingChannel])


def wire(host: Host, chat: str) -> None:
    group = messaging_groups.upsert(host.conn, "bench", chat)
    wirings.wire(host.conn, group.id, "main", trigger="always")


def channel(host: Host) -> TimingChannel:
    ch = host.channels["bench"]
    assert isinstance(ch, TimingChannel)
    return ch


def temp_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="nanoclaw-bench-")) / "home"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(prefix: str, values: list[float]) -> dict[str, float]:
    return {
        f"{prefix}_p50_ms": round(percentile(values, 50), 3),
        f"{prefix}_p99_ms": round(percentile(values, 99), 3),
        f"{prefix}_mean_ms": round(statistics.fmean(values), 3),
        f"{prefix}_n": len(values),
    }


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
