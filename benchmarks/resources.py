"""Memory and idle CPU: host RSS empty and with 50 idle sessions, a live runner's RSS
(`nanoclaw.sandbox.processes.tree_rss_mb`: its launcher and every process below it, summed,
the definition the status page and every benchmark use), host CPU while idle.

    python -m benchmarks.resources --json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
from pathlib import Path

from benchmarks._harness import channel, emit, make_host, progress, temp_home, wire
from nanoclaw.sandbox.processes import rss_mb, tree_rss_mb


def host_rss_mb() -> float:
    return rss_mb(os.getpid())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> dict[str, float]:
    home = temp_home()
    host = make_host(home, idle_timeout=1.0, max_sandboxes=60)
    await host.start()
    try:
        ch = channel(host)
        progress(f"{args.sessions} sessions, each answered once, then idle…")
        base_rss = host_rss_mb()
        for i in range(args.sessions):
            wire(host, f"s{i}")
            await ch.round_trip(f"s{i}")
        while host.supervisor.live:  # every runner exits after its 1 s idle timeout
            await asyncio.sleep(0.2)
        host_rss = host_rss_mb()

        progress(f"host CPU over {args.idle_seconds} s idle…")
        before = cpu_seconds()
        await asyncio.sleep(args.idle_seconds)
        idle_cpu = cpu_seconds() - before

        progress("RSS of a live runner…")
        wire(host, "live")
        busy = asyncio.ensure_future(ch.round_trip("live", "[mock:sleep=2] hold on"))
        while not host.supervisor.live:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        live = next(iter(host.supervisor.live.values()))
        runner_rss = tree_rss_mb(live.process.pid)
        await busy
        return {
            "sessions": args.sessions,
            "host_rss_mb_empty": round(base_rss, 1),
            "host_rss_mb_50_idle_sessions": round(host_rss, 1),
            "runner_rss_mb": round(runner_rss, 1),
            "host_idle_cpu_percent": round(100 * idle_cpu / args.idle_seconds, 3),
        }
    finally:
        await host.stop()
        shutil.rmtree(home.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--sessions", type=int, default=50, help="idle sessions [50]")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle CPU window [5]")
    args = parser.parse_args()
    emit(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
