"""Channels connect in the background, each on its own: no platform holds up the host or another channel.

A channel is `connecting` until its `start()` returns, then `connected`; one whose start raises is
`failed` and left out, as before, its `Health` (reason and fix) kept in `problems` for `nanoclaw status`,
doctor and the dashboard. The channel's own `health` says `connecting` meanwhile. Local channels (the web
chat and the terminal: their platform is this host) start before the web server opens, because they
register its pages; every other channel starts in its own task once the host is up.

Delivery sees only connected channels (`connected`), so a reply for a channel still connecting waits
(as for a platform outage) and goes out when it connects (`on_connected`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Iterator, Mapping

from nanoclaw.channels.base import Channel, Health
from nanoclaw.errors import ConfigError
from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.host.channels")

CONNECTING, CONNECTED, FAILED = "connecting", "connected", "failed"
LAUNCH_GAP = 0.01  # seconds left to the web server after a channel's slow set-up
SLOW_SETUP = 0.002


class ConnectedChannels(Mapping[str, Channel]):
    """A live view of the channels that finished connecting (what delivery may use)."""

    def __init__(self, starter: ChannelStarter) -> None:
        self._starter = starter

    def __getitem__(self, name: str) -> Channel:
        if self._starter.state.get(name) != CONNECTED:
            raise KeyError(name)
        return self._starter.channels[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name, state in list(self._starter.state.items()) if state == CONNECTED)

    def __len__(self) -> int:
        return sum(1 for state in self._starter.state.values() if state == CONNECTED)


class ChannelStarter:
    def __init__(self, channels: dict[str, Channel], on_connected: Callable[[str], None],
                 problems: dict[str, Health] | None = None) -> None:
        self.channels = channels  # every configured channel; a failed one is removed
        self.on_connected = on_connected
        self.problems = problems if problems is not None else {}  # configured channels not running, and why
        self.state: dict[str, str] = {name: CONNECTING for name in channels}
        self.errors: dict[str, str] = {}
        self.connected = ConnectedChannels(self)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._launcher: asyncio.Task[None] | None = None

    def connecting(self, name: str) -> bool:
        """Configured and still connecting: messages for it wait rather than being dropped."""
        return self.state.get(name) == CONNECTING

    async def start_local(self) -> None:
        """The host's own channels, before the web server opens (they register its pages); they connect to nothing."""
        for channel in [c for c in self.channels.values() if c.local]:
            await self._start(channel)

    def start_others(self) -> None:
        """Every other channel in its own task: the caller does not wait for any of them."""
        if self._launcher is None:
            self._launcher = asyncio.create_task(self._launch(), name="channels")

    async def _launch(self) -> None:
        # One channel's synchronous set-up at a time (a client library may spend a tenth of a second loading
        # certificates before its first await), with a short gap after a slow one: a request to the web chat
        # needs several turns of the loop, and is served in the gaps instead of after every channel's set-up.
        for channel in [c for c in self.channels.values() if not c.local]:
            began = time.monotonic()
            self._tasks[channel.type] = asyncio.create_task(self._start(channel), name=f"channel-{channel.type}")
            await asyncio.sleep(0)  # its start runs up to its first await
            if time.monotonic() - began > SLOW_SETUP:
                await asyncio.sleep(LAUNCH_GAP)

    async def wait(self, timeout: float | None = None) -> bool:
        """Until every channel has connected or failed (tests, benchmarks); False if the timeout came first."""
        if self._launcher is not None:
            await self._launcher
        pending = [t for t in self._tasks.values() if not t.done()]
        if not pending:
            return True
        _done, still = await asyncio.wait(pending, timeout=timeout)
        return not still

    async def _start(self, channel: Channel) -> None:
        began = time.monotonic()
        try:
            await channel.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported and left out; the host and the other channels keep running
            self.state[channel.type] = FAILED
            self.errors[channel.type] = f"{type(exc).__name__}: {exc}"
            self.channels.pop(channel.type, None)
            log.error("channel.start_failed", channel=channel.type, error=self.errors[channel.type])
            self.problems[channel.type] = (
                Health.failed(exc.reason, exc.fix) if isinstance(exc, ConfigError) else Health.failed(
                    self.errors[channel.type], "read why in the host's log (nanoclaw logs), fix it and restart"))
            return
        self.state[channel.type] = CONNECTED
        self.problems.pop(channel.type, None)
        if channel.health.state == "connecting":  # a channel that says nothing more is up once started
            channel.report(Health.connected())
        log.info("channel.connected", channel=channel.type, ms=round((time.monotonic() - began) * 1000))
        self.on_connected(channel.type)

    async def stop(self) -> None:
        """Abandon starts still under way, then stop every channel (a half-started one too)."""
        tasks = [*([self._launcher] if self._launcher else []), *self._tasks.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for channel in list(self.channels.values()):
            try:
                await channel.stop()
            except Exception as exc:
                log.warning("channel.stop_failed", channel=channel.type, error=str(exc))
