"""The claude provider against an instant fake Anthropic API, through a real sandbox and the gateway.

cold: first message to a new session → reply (sandbox + Python + Claude Code CLI start), no pool.
pooled_first_reply: the same with the pool warm (host/pool.py): a pre-warmed sandbox, Claude Code
already started, adopted by the new session. warm: later turns on the live runner.
runner_rss_mb: a live runner's sandbox (Python and Claude Code); pool_idle_rss_mb: a ready pooled
one. overhead: NanoClaw's own cost of each warm claude turn, the CPU time of its own code on that
turn: the host's event-loop thread (router, delivery, the vault's model gateway) and the runner's
Python process (its loop and the SDK client), not the Claude Code CLI nor the fake API's thread.
mock_warm: the whole warm round trip with the mock provider in the same run, for comparison.

    python -m benchmarks.claude_cold --json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
from pathlib import Path

from benchmarks._harness import channel, emit, make_host, percentile, progress, summary, temp_home, wire
from benchmarks._pool import pooled_first_replies
from benchmarks.latency import warm as mock_warm
from nanoclaw.db import messaging_groups, sessions
from nanoclaw.host.app import Host
from nanoclaw.sandbox.processes import descendants, tree_rss_mb
from tests.fakes.anthropic import FakeAnthropic


async def run(args: argparse.Namespace) -> dict[str, float]:
    home = temp_home()
    with FakeAnthropic() as api:
        claude: dict[str, object] = dict(provider="claude", egress_allow_private=True,
                                         extra={"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": "bench-key"})
        host = make_host(home, pool_size=0, max_sandboxes=args.cold_samples + 2, **claude)
        await host.start()
        try:
            ch = channel(host)
            progress(f"cold starts ({args.cold_samples})…")
            cold = []
            for i in range(args.cold_samples):
                wire(host, f"cold{i}")
                cold.append(await ch.round_trip(f"cold{i}", "hello"))
            progress(f"warm turns ({args.warm_samples})…")
            runner = host.supervisor.live[_session_of(host, "cold0")]
            host_thread, runner_threads = _nanoclaw_threads(runner.process.pid)
            warm, in_host, in_runner = [], [], []
            for _ in range(args.warm_samples):
                host_before, runner_before = _cpu_ms(host_thread), _cpu_ms(runner_threads)
                warm.append(await ch.round_trip("cold0", "again"))
                in_host.append(_cpu_ms(host_thread) - host_before)
                in_runner.append(_cpu_ms(runner_threads) - runner_before)
            rss = tree_rss_mb(runner.process.pid)
        finally:
            await host.stop()
            shutil.rmtree(home.parent, ignore_errors=True)
        progress(f"pooled first replies ({args.pooled_samples})…")
        pooled, pool_rss = await pooled_first_replies(args.pooled_samples, **claude)
    progress("the mock provider's warm round trip, for comparison…")
    mock = await mock_warm(200, True)
    result = summary("cold", cold)
    result.update(summary("pooled_first_reply", pooled))
    result.update(summary("warm", warm))
    result["nanoclaw_overhead_p50_ms"] = round(percentile([h + r for h, r in zip(in_host, in_runner)], 50), 3)
    result["nanoclaw_overhead_host_p50_ms"] = round(percentile(in_host, 50), 3)
    result["nanoclaw_overhead_runner_p50_ms"] = round(percentile(in_runner, 50), 3)
    result["mock_warm_p50_ms"] = round(percentile(mock, 50), 3)
    result["runner_rss_mb"] = round(rss, 1)
    result["pool_idle_rss_mb"] = round(pool_rss, 1)
    return result


def _session_of(host: Host, chat: str) -> str:
    group = messaging_groups.find(host.conn, "bench", chat)
    return next(s.id for s in sessions.list_all(host.conn) if group is not None and s.messaging_group_id == group.id)


def _nanoclaw_threads(sandbox_pid: int) -> tuple[list[str], list[str]]:
    """The schedstat files of NanoClaw's own code: the host's main thread; every thread of the runner's Python."""
    host = [f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat"]
    threads: list[str] = []
    for pid in descendants(sandbox_pid):
        try:
            if not Path(f"/proc/{pid}/comm").read_text().startswith("python"):
                continue  # bwrap's init, the Claude Code CLI and what it runs
            threads += [f"/proc/{pid}/task/{tid}/schedstat" for tid in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
    return host, threads


def _cpu_ms(schedstats: list[str]) -> float:
    total = 0
    for path in schedstats:
        try:
            total += int(Path(path).read_text().split()[0])  # nanoseconds on the CPU
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cold-samples", type=int, default=8, help="cold starts [8]")
    parser.add_argument("--warm-samples", type=int, default=20, help="warm turns [20]")
    parser.add_argument("--pooled-samples", type=int, default=8, help="new sessions with the pool warm [8]")
    args = parser.parse_args()
    emit(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
