"""Round-trip latency through a real bwrap sandbox with the mock provider.

warm: message accepted by the host → reply delivered, runner already up, doorbells on.
baseline: the same in poll-only mode with NanoClaw's intervals (host 1 s, runner 0.5 s).
cold: first message to a session with no runner → reply delivered.
pooled_first_reply: the same with the pool warm (host/pool.py): a new session adopts a pre-warmed sandbox.
protocol_limit: the bare protocol (two WAL commits, two FIFO wakes, two processes;
benchmarks/protocol_limit.py) measured in the same run, so `warm_p50_ms /
protocol_limit_p50_ms` shows what NanoClaw itself adds to the floor.

    python -m benchmarks.latency --json
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from typing import Any

from benchmarks import protocol_limit
from benchmarks._harness import channel, emit, make_host, progress, summary, temp_home, wire
from benchmarks._pool import pooled_first_replies


async def warm(samples: int, doorbell: bool, **intervals: float) -> list[float]:
    home = temp_home()
    host = make_host(home, doorbell=doorbell, **intervals)
    await host.start()
    try:
        wire(host, "warm")
        ch = channel(host)
        for _ in range(5 if doorbell else 1):  # start the runner, warm caches
            await ch.round_trip("warm")
        return [await ch.round_trip("warm") for _ in range(samples)]
    finally:
        await host.stop()
        shutil.rmtree(home.parent, ignore_errors=True)


async def cold(samples: int, **overrides: Any) -> list[float]:
    home = temp_home()
    host = make_host(home, max_sandboxes=samples + 2, **overrides)
    await host.start()
    try:
        ch = channel(host)
        wire(host, "warmup")
        await ch.round_trip("warmup")  # page cache and imports warm, as on a running host
        times = []
        for i in range(samples):
            wire(host, f"cold{i}")
            times.append(await ch.round_trip(f"cold{i}"))
        return times
    finally:
        await host.stop()
        shutil.rmtree(home.parent, ignore_errors=True)


async def run(args: argparse.Namespace) -> dict[str, float]:
    progress(f"warm round trips ({args.samples}, doorbells)…")
    result = summary("warm", await warm(args.samples, True))
    progress(f"bare protocol limit ({args.limit_samples})…")
    result.update(summary("protocol_limit", protocol_limit.measure(args.limit_samples)))
    progress(f"baseline: poll-only, host 1 s / runner 0.5 s ({args.baseline_samples})…")
    baseline = await warm(args.baseline_samples, False, host_poll_interval=1.0, runner_poll_interval=0.5)
    result.update(summary("baseline_warm", baseline))
    progress(f"cold starts ({args.cold_samples})…")
    result.update(summary("cold", await cold(args.cold_samples, pool_size=0)))
    progress(f"pooled first replies ({args.pooled_samples})…")
    pooled, _rss = await pooled_first_replies(args.pooled_samples)
    result.update(summary("pooled_first_reply", pooled))
    result["speedup_p50"] = round(result["baseline_warm_p50_ms"] / max(result["warm_p50_ms"], 1e-3), 1)
    result["warm_over_limit_p50"] = round(result["warm_p50_ms"] / max(result["protocol_limit_p50_ms"], 1e-3), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--samples", type=int, default=400, help="warm round trips [400]")
    parser.add_argument("--limit-samples", type=int, default=1000, help="bare protocol round trips [1000]")
    parser.add_argument("--baseline-samples", type=int, default=20, help="poll-only round trips [20]")
    parser.add_argument("--cold-samples", type=int, default=15, help="cold starts [15]")
    parser.add_argument("--pooled-samples", type=int, default=10, help="new sessions with the pool warm [10]")
    args = parser.parse_args()
    emit(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
