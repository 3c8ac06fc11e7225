"""The runner's loop: wait for inbound rows, run a turn, write the reply, ack, ring.

Started by the host as `python -m nanoclaw.runner` inside the sandbox, with
its configuration in NANOCLAW_RUNNER_* variables (protocol.runner_env).
Messages that arrive while a turn runs are streamed into it when the provider
can take them; answers to `ask_user_question` resolve the waiting tool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import cast

from nanoclaw.protocol import adoption
from nanoclaw.protocol.folder import SANDBOX_AGENT, SANDBOX_PROXY_SOCKET, SessionFolder
from nanoclaw.protocol.formatting import format_already_sent, format_messages, strip_internal
from nanoclaw.protocol.link import AnyRunnerEnd, LinkedRunnerEnd
from nanoclaw.protocol.messages import InboundMessage, OutboundMessage, outbound_id
from nanoclaw.protocol.runner_end import RunnerEnd
from nanoclaw.protocol.runner_env import RunnerConfig
from nanoclaw.runner.providers.base import Provider, ProviderContext, ProviderError, Turn
from nanoclaw.runner.streaming import AnswerStream
from nanoclaw.runner.tools import TOOLS, Tool, ToolContext

log = logging.getLogger("nanoclaw.runner")
TAKEN_AFTER = 0.02  # seconds a turn runs before the runner acks `taken` and follows up
STOPPED = "⏹ Stopped."
INTERRUPT_GRACE = 5.0  # seconds a provider gets to end an interrupted turn itself before it is cancelled


def load_provider(name: str, context: ProviderContext) -> Provider:
    # Only the chosen provider is imported: the runner's cold start pays for every import.
    for ep in entry_points(group="nanoclaw.providers"):
        if ep.name == name:
            return ep.load()(context)
    raise SystemExit(f"unknown provider {name!r}")


def tools_for(config: RunnerConfig) -> list[Tool]:
    return [t for t in TOOLS if config.is_admin or not t.admin_only]


def _no_session(*_args: object) -> None:
    raise RuntimeError("a pooled runner has no session until the host adopts it")


def pooled_provider(config: RunnerConfig) -> Provider:
    """The provider of a pooled runner, before its session exists: no state, no tools' session end."""
    context = ProviderContext(config, _no_session, _no_session, tools_for(config), cast(ToolContext, None))
    return load_provider(config.provider, context)


class Runner:
    def __init__(self, config: RunnerConfig, end: AnyRunnerEnd, provider: Provider | None = None) -> None:
        self.config = config
        self.end = end
        self.wakeup = asyncio.Event()
        self.in_turn: list[int] = []  # seqs of the running turn, follow-ups included
        self._running: tuple[int, int] | None = None  # (turn, run) of the running turn: its rows' ids
        self._position = 0
        self.interrupted_at: float | None = None  # when the person asked to stop the running turn
        self.tool_context = ToolContext(config, end, end.ring, lambda: self.in_turn[-1] if self.in_turn else None,
                                        self._message_id)
        self.answer = AnswerStream(end.write_partial, end.ring)
        context = ProviderContext(config, end.get_state, self._set_state, tools_for(config), self.tool_context,
                                  self.answer)
        if provider is None:
            provider = load_provider(config.provider, context)
        else:  # prepared in a pool: from now on it works for this session
            provider.context = context
        self.provider = provider

    def _set_state(self, key: str, value: str | None) -> None:
        self.end.set_state(key, value)

    def _message_id(self, last: bool = False) -> str | None:
        """The id of the running turn's next outbound row: its turn, its run and its position.

        Called inside the transaction that writes the row. A run that writes before its end is counted in
        that commit, so a re-run after a crash numbers its rows past it (and learns what it said); the
        turn's `last` row commits with its `done` ack, so no re-run follows it.
        """
        if self._running is None:
            return None
        if not last:
            self._take()
        self._position += 1
        return outbound_id(*self._running, self._position - 1)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        if self.end.bell_in:
            loop.add_reader(self.end.bell_in.fileno(), self._on_bell)
        beat = asyncio.create_task(self._heartbeat())
        try:
            await self.provider.start()
            return await self._loop()
        finally:
            beat.cancel()
            await self.provider.close()

    def _on_bell(self) -> None:
        assert self.end.bell_in is not None
        self.end.bell_in.drain()
        self.wakeup.set()

    async def _heartbeat(self) -> None:
        failing = False
        while True:
            self.end.beat()
            # The checkpoint after the wait, not at once: a new runner's first loop round is its first turn's,
            # and folding in the WAL the host made outbound.db in costs an fsync (~2 ms of a first reply).
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                self.end.checkpoint()
                failing = False
            except Exception as exc:  # a damaged or refused database must not stop the beat (or the runner)
                if not failing:
                    log.warning("checkpoint failed: %s", exc)
                failing = True

    async def _wait(self, timeout: float) -> None:
        """Until a bell or `timeout` (a timer on the same event, not wait_for's task per wait)."""
        timer = asyncio.get_running_loop().call_later(timeout, self.wakeup.set)
        try:
            await self.wakeup.wait()
        finally:
            timer.cancel()
        self.wakeup.clear()

    def _new_rows(self) -> list[InboundMessage]:
        """Pending rows not yet part of the running turn; answers to waiting questions are consumed here."""
        rows = [m for m in self.end.pending() if m.seq not in self.in_turn]
        fresh = []
        for m in rows:
            if m.kind == "answer":
                waiter = self.tool_context.questions.get(str(m.payload.get("question_id", "")))
            elif m.kind == "system" and m.payload.get("reply_to"):
                waiter = self.tool_context.replies.get(str(m.payload["reply_to"]))
            else:
                waiter = None
            if waiter is not None and not waiter.done():
                waiter.set_result(m.text)
                with self.end.transaction():
                    self.end.ack([m.seq], "consumed")
                continue
            fresh.append(m)
        return fresh

    async def _loop(self) -> int:
        idle_since = time.monotonic()
        while True:
            batch = self._new_rows()
            if any(m.trigger for m in batch):
                await self._turn(batch)
                idle_since = time.monotonic()
                continue
            remaining = self.config.idle_timeout - (time.monotonic() - idle_since)
            if remaining <= 0 or self.end.stop_requested():
                return 0
            await self._wait(min(remaining, self.config.poll_interval))

    async def _turn(self, batch: list[InboundMessage]) -> None:
        # Context rows after the last trigger wait for the next triggering message. After a crash
        # (attempts > 0) messages go one at a time, so one poisonous message cannot sink the others.
        triggers = [i for i, m in enumerate(batch) if m.trigger]
        last = triggers[0] if any(batch[i].attempts for i in triggers) else triggers[-1]
        batch = batch[: last + 1]
        self.in_turn = [m.seq for m in batch]
        # A turn interrupted by a crash starts at the same row: it learns what its earlier runs sent.
        turn = batch[0].seq
        self._running, self._position = (turn, self.end.runs_of(turn)), 0
        said = self.end.said_before(turn, self.in_turn) if self._running[1] else []
        self.end.take_interrupt(fresh=False)  # a stop asked for before this turn began was meant for an earlier one
        self.interrupted_at = None
        self.answer.begin(self.in_turn[-1])
        work = asyncio.create_task(self._answer(batch, said))
        # A turn that ends within TAKEN_AFTER is acked `done` alone; a longer one tells the host it took the
        # messages (typing indicator, the turn's time limit) and starts following up answers, new messages
        # and stop requests (what arrived meanwhile rang the bell, so the watcher sees it at once). Doing
        # both for every turn cost a commit, a host wake and a task on the path of every quick reply.
        watcher: list[asyncio.Task[None]] = []

        def long_turn() -> None:
            with self.end.transaction():
                self._take()
            self.end.ring()
            watcher.append(asyncio.create_task(self._feed_follow_ups(work)))

        taken = asyncio.get_running_loop().call_later(TAKEN_AFTER, long_turn)
        try:
            text = await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.interrupted_at is None or (current is not None and current.cancelling()):
                raise  # the runner itself is stopping
            text = None
        except ProviderError as exc:
            text = f"⚠️ {exc}"
        except Exception as exc:  # a provider bug fails the turn, not the runner
            log.exception("turn failed")
            with self.end.transaction():
                self.end.ack(self.in_turn, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
                self.end.drop_partials()
            self.end.ring()
            self.in_turn, self._running = [], None
            return
        finally:
            taken.cancel()
            for task in watcher:
                task.cancel()
        if self.interrupted_at is not None:  # the agent says it stopped, after what it had written
            text = f"{self.answer.text}\n\n{STOPPED}" if self.answer.text else STOPPED
        reply = strip_internal(text or "")
        stream = self.answer.take()
        with self.end.transaction():
            if reply:
                self.end.write(kind="chat", text=reply, route=self.end.routing(), in_reply_to=self.in_turn[-1],
                               payload={"stream": stream} if stream else None, id=self._message_id(last=True))
            self.end.ack(self.in_turn, "done")
            self.end.drop_partials()
        self.end.ring()
        self.in_turn, self._running = [], None

    async def _answer(self, batch: list[InboundMessage], said: list[OutboundMessage]) -> str | None:
        commands = [m for m in batch if m.kind == "system" and m.payload.get("command")]
        if commands and len(commands) == len([m for m in batch if m.trigger]):
            results = [await self.provider.command(str(m.payload["command"])) for m in commands]
            return "\n".join(results)
        prompt = format_messages(batch)
        if said:
            prompt = format_already_sent(said) + "\n" + prompt
        return await self.provider.run_turn(Turn(batch, prompt, already_sent=tuple(said)))

    async def _feed_follow_ups(self, work: asyncio.Future[str | None]) -> None:
        """While a turn runs: resolve answers, stream new triggering messages into it, and stop it on request."""
        while True:
            await self._wait(min(self.config.poll_interval, 1.0))
            if self.end.take_interrupt() and self.interrupted_at is None:
                self.interrupted_at = time.monotonic()
                log.info("turn interrupted")
                if not await self.provider.interrupt():
                    work.cancel()
            if self.interrupted_at is not None:
                if time.monotonic() - self.interrupted_at > INTERRUPT_GRACE:
                    work.cancel()  # the provider did not manage to end it itself
                continue
            rows = self._new_rows()
            if not self.provider.supports_follow_up or not any(m.trigger for m in rows):
                continue
            last_trigger = max(i for i, m in enumerate(rows) if m.trigger)
            rows = rows[: last_trigger + 1]
            self.in_turn += [m.seq for m in rows]
            self._ack([m.seq for m in rows], "taken")
            await self.provider.follow_up(Turn(rows, format_messages(rows)))

    def _take(self) -> None:
        """Ack `taken` for the running turn, once per run: how `runs_of` counts this run."""
        if self._running is not None and self.end.runs_of(self._running[0]) <= self._running[1]:
            self.end.ack(self.in_turn, "taken")

    def _ack(self, seqs: list[int], status: str) -> None:
        with self.end.transaction():
            self.end.ack(seqs, status)
        self.end.ring()


class _Adoption:
    """A pooled runner's side of protocol/adoption.py: it reports readiness, then follows the host's lines."""

    def __init__(self) -> None:
        self.reader = asyncio.StreamReader()
        self.transport: asyncio.BaseTransport | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        os.write(1, adoption.READY)
        os.dup2(2, 1)  # nothing else goes to the host's pipe (stray prints land in the log)
        self.transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(self.reader),
                                                         sys.stdin)

    async def line(self) -> bytes:
        """The host's next line (b"" at EOF: the host let the sandbox go)."""
        return await self.reader.readline()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _open_end(config: RunnerConfig) -> AnyRunnerEnd:
    folder = SessionFolder(Path(config.workspace))
    return (LinkedRunnerEnd(folder, config.link, doorbell=config.doorbell) if config.link
            else RunnerEnd(folder, doorbell=config.doorbell))


async def _serve(config: RunnerConfig) -> int:
    bridge = None
    if os.path.exists(SANDBOX_PROXY_SOCKET):
        # The sandbox has no network: the host's proxy is reached through this bridge. A pooled runner's
        # answers its warm-up itself until adoption (runner/warmup.py).
        from nanoclaw.runner.bridge import Bridge
        from nanoclaw.runner.warmup import answer

        bridge = Bridge(SANDBOX_PROXY_SOCKET, local=answer if config.pooled else None)
        port = await bridge.start()
        url = f"http://127.0.0.1:{port}"
        # The session's token is the proxy's credential and, on the model gateway, the "API key".
        token = os.environ.get("NANOCLAW_PROXY_TOKEN", "")
        proxy = f"http://nanoclaw:{token}@127.0.0.1:{port}" if token else url
        os.environ.update({"ANTHROPIC_BASE_URL": url, "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy,
                           "https_proxy": proxy, "http_proxy": proxy, "NO_PROXY": "127.0.0.1,localhost",
                           "no_proxy": "127.0.0.1,localhost"})
        if token:
            os.environ["ANTHROPIC_API_KEY"] = token
    provider = None
    end: AnyRunnerEnd | None = None
    if config.pooled:
        # Everything that needs no session happens now. The host may mount a blank session folder on
        # /workspace and say HOLD: it is opened ahead, and a new session that takes this sandbox takes that
        # folder. An existing session's folder is mounted over it instead (ADOPT_REMOUNTED): opened then.
        provider = pooled_provider(config)
        await provider.prepare()
        host = _Adoption()
        await host.open()
        try:
            line = await host.line()
            if line == adoption.HOLD:
                os.chdir(SANDBOX_AGENT)  # the working directory on the folder mounted since
                end = _open_end(config)
                line = await host.line()
        finally:
            host.close()
        if line not in (adoption.ADOPT, adoption.ADOPT_REMOUNTED) or (line == adoption.ADOPT and end is None):
            if end is not None:
                end.close()
            await provider.close()
            return 0
        if line == adoption.ADOPT_REMOUNTED:
            if end is not None:
                end.close()
                end = None
            os.chdir(SANDBOX_AGENT)
        if bridge is not None:
            bridge.forward()
    if end is None:
        end = _open_end(config)
    try:
        return await Runner(config, end, provider).run()
    finally:
        end.close()


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="runner %(levelname)s %(message)s")
    return asyncio.run(_serve(RunnerConfig.from_env()))
