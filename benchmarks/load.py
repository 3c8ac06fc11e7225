"""Sustained load from several channels at once: messages/s, latency percentiles, host memory over time,
and how fast the local API still answers `status` (target: within 100 ms).

    python -m benchmarks.load --json
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import threading
import time

from benchmarks._harness import TimingChannel, emit, percentile, progress, summary, temp_home
from benchmarks.resources import host_rss_mb
from nanoclaw.client import LocalClient
from nanoclaw.config import Settings
from nanoclaw.db import messaging_groups, wirings
from nanoclaw.host.app import Host


class ChannelA(TimingChannel):
    type = "bench-a"


class ChannelB(TimingChannel):
    type = "bench-b"


class ChannelC(TimingChannel):
    type = "bench-c"


def probe_status(socket_path, stop: threading.Event, out: list[float]) -> None:
    """Another process would see the same: a client asking `status` over the socket while load runs."""
    while not stop.is_set():
        started = time.perf_counter()
        with LocalClient(socket_path, timeout=5) as client:
            assert client.request("status")["ok"]
        out.append((time.perf_counter() - started) * 1000)
        stop.wait(0.2)


async def run(args: argparse.Namespace) -> dict[str, object]:
    home = temp_home()
    channels = [ChannelA, ChannelB, ChannelC]
    chats = args.chats_per_channel * len(channels)
    settings = Settings(home=home, provider="mock", log_level="WARNING", max_sandboxes=chats)
    host = Host(settings, channels=channels)
    await host.start()
    latencies: list[float] = []
    memory: list[tuple[float, float]] = []
    status_ms: list[float] = []
    stop = threading.Event()
    try:
        workers = []
        for cls in channels:
            for i in range(args.chats_per_channel):
                chat = f"{cls.type}-{i}"
                group = messaging_groups.upsert(host.conn, cls.type, chat)
                wirings.wire(host.conn, group.id, "main", trigger="always")
                workers.append((host.channels[cls.type], chat))
        for ch, chat in workers:  # start every runner before measuring
            await ch.round_trip(chat)
        progress(f"{len(workers)} chats on {len(channels)} channels for {args.seconds:.0f} s…")
        prober = threading.Thread(target=probe_status, args=(settings.socket_path, stop, status_ms), daemon=True)
        prober.start()
        started = time.perf_counter()
        deadline = started + args.seconds

        async def worker(ch: TimingChannel, chat: str) -> None:
            while time.perf_counter() < deadline:
                latencies.append(await ch.round_trip(chat, "load test message"))

        async def sample() -> None:
            while time.perf_counter() < deadline:
                memory.append((round(time.perf_counter() - started, 1), round(host_rss_mb(), 1)))
                await asyncio.sleep(1.0)

        await asyncio.gather(sample(), *(worker(ch, chat) for ch, chat in workers))
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await host.stop()
        shutil.rmtree(home.parent, ignore_errors=True)
    result: dict[str, object] = {"chats": len(workers), "channels": len(channels),
                                 "messages": len(latencies), "messages_per_s": round(len(latencies) / elapsed, 1)}
    result.update(summary("latency", latencies))
    result["status_p99_ms"] = round(percentile(status_ms, 99), 2) if status_ms else None
    result["status_max_ms"] = round(max(status_ms), 2) if status_ms else None
    result["host_rss_mb_over_time"] = memory
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--chats-per-channel", type=int, default=6, help="chats on each of the 3 channels [6]")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to keep the load up [15]")
    args = parser.parse_args()
    emit(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
