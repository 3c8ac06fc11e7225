"""The runner's loop: wait for inbound rows, run a turn, write the reply, ack, ring.

Started by the host as `python -m nanoclaw.runner` inside the sandbox, with
its configuration in NANOCLAW_RUNNER_* variables (protocol.runner_env).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.formatting import format_messages, strip_internal
from nanoclaw.protocol.messages import InboundMessage
from nanoclaw.protocol.runner_end import RunnerEnd
from nanoclaw.protocol.runner_env import RunnerConfig
from nanoclaw.runner.providers.base import Provider, ProviderContext, Turn

log = logging.getLogger("nanoclaw.runner")


def load_provider(name: str, context: ProviderContext) -> Provider:
    # Only the chosen provider is imported: the runner's cold start pays for every import.
    for ep in entry_points(group="nanoclaw.providers"):
        if ep.name == name:
            return ep.load()(context)
    raise SystemExit(f"unknown provider {name!r}")


class Runner:
    def __init__(self, config: RunnerConfig, end: RunnerEnd) -> None:
        self.config = config
        self.end = end
        self.wakeup = asyncio.Event()
        self.turn_messages: list[InboundMessage] = []
        context = ProviderContext(config, end.get_state, end.set_state, self._send_mid_turn)
        self.provider = load_provider(config.provider, context)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        if self.end.bell_in:
            loop.add_reader(self.end.bell_in.fileno(), self._on_bell)
        beat = asyncio.create_task(self._heartbeat())
        try:
            return await self._loop()
        finally:
            beat.cancel()
            await self.provider.close()

    def _on_bell(self) -> None:
        assert self.end.bell_in is not None
        self.end.bell_in.drain()
        self.wakeup.set()

    async def _heartbeat(self) -> None:
        while True:
            self.end.beat()
            await asyncio.sleep(self.config.heartbeat_interval)

    async def _loop(self) -> int:
        idle_since = time.monotonic()
        while True:
            self.wakeup.clear()
            batch = self.end.pending()
            if any(m.trigger for m in batch):
                await self._turn(batch)
                idle_since = time.monotonic()
                continue
            remaining = self.config.idle_timeout - (time.monotonic() - idle_since)
            if remaining <= 0 or self.end.stop_requested():
                return 0
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=min(remaining, self.config.poll_interval))
            except asyncio.TimeoutError:
                pass

    async def _turn(self, batch: list[InboundMessage]) -> None:
        # Context rows after the last trigger wait for the next triggering message.
        last_trigger = max(i for i, m in enumerate(batch) if m.trigger)
        batch = batch[: last_trigger + 1]
        seqs = [m.seq for m in batch]
        self.turn_messages = batch
        with self.end.transaction():
            self.end.ack(seqs, "taken")
        self.end.ring()
        try:
            text = await self.provider.run_turn(Turn(batch, format_messages(batch)))
        except Exception as exc:  # a provider error fails the turn, not the runner
            log.exception("turn failed")
            with self.end.transaction():
                self.end.ack(seqs, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
            self.end.ring()
            return
        reply = strip_internal(text or "")
        route = self.end.routing()
        with self.end.transaction():
            if reply:
                self.end.write(kind="chat", text=reply, route=route, in_reply_to=seqs[-1])
            self.end.ack(seqs, "done")
        self.end.ring()

    async def _send_mid_turn(self, text: str, to: str | None = None) -> None:
        reply = strip_internal(text)
        if not reply:
            return
        in_reply_to = self.turn_messages[-1].seq if self.turn_messages else None
        route = None if to else self.end.routing()
        with self.end.transaction():
            self.end.write(kind="chat", text=reply, route=route, to_name=to, in_reply_to=in_reply_to)
        self.end.ring()


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="runner %(levelname)s %(message)s")
    config = RunnerConfig.from_env()
    end = RunnerEnd(SessionFolder(Path(config.workspace)), doorbell=config.doorbell)
    try:
        return asyncio.run(Runner(config, end).run())
    finally:
        end.close()
