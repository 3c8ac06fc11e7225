"""Memory and idle CPU: host RSS empty and with 50 idle sessions, a live runner's RSS
(every process in its sandbox, summed), host CPU while idle.

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


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def runner_pids(bwrap_pid: int) -> list[int]:
    """Processes below the bwrap process (the runner and bwrap's init)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [bwrap_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def sandbox_rss_mb(bwrap_pid: int) -> float:
    """A runner's RSS, the one definition every benchmark uses: the sum over every process in its
    sandbox (bwrap's init, the runner, and what it started, e.g. the Claude Code CLI)."""
    return sum(rss_mb(pid) for pid in runner_pids(bwrap_pid))


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
        base_rss = rss_mb()
        for i in range(args.sessions):
            wire(host, f"s{i}")
            await ch.round_trip(f"s{i}")
        while host.supervisor.live:  # every runner exits after its 1 s idle timeout
            await asyncio.sleep(0.2)
        host_rss = rss_mb()

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
        runner_rss = sandbox_rss_mb(live.process.pid)
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
