"""The claude provider against an instant fake Anthropic API, through a real sandbox and the gateway.

cold: first message to a new session → reply (sandbox + Python + Claude Code CLI start), no pool.
pooled_first_reply: the same with the pool warm (host/pool.py): a pre-warmed sandbox, Claude Code
already started, adopted by the new session. warm: later turns on the live runner.
runner_rss_mb: a live runner's sandbox (Python and Claude Code); pool_idle_rss_mb: a ready pooled
one. overhead: NanoClaw's own pipeline cost per turn, measured with the mock provider in the same run
(the rest is the CLI's).

    python -m benchmarks.claude_cold --json
"""

from __future__ import annotations

import argparse
import asyncio
import shutil

from benchmarks._harness import channel, emit, make_host, percentile, progress, summary, temp_home, wire
from benchmarks._pool import pooled_first_replies
from benchmarks.latency import warm as mock_warm
from nanoclaw.db import messaging_groups, sessions
from nanoclaw.host.app import Host
from nanoclaw.sandbox.processes import tree_rss_mb
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
            warm = [await ch.round_trip("cold0", "again") for _ in range(args.warm_samples)]
            rss = tree_rss_mb(host.supervisor.live[_session_of(host, "cold0")].process.pid)
        finally:
            await host.stop()
            shutil.rmtree(home.parent, ignore_errors=True)
        progress(f"pooled first replies ({args.pooled_samples})…")
        pooled, pool_rss = await pooled_first_replies(args.pooled_samples, **claude)
    progress("NanoClaw's own overhead (mock provider)…")
    overhead = await mock_warm(200, True)
    result = summary("cold", cold)
    result.update(summary("pooled_first_reply", pooled))
    result.update(summary("warm", warm))
    result["nanoclaw_overhead_p50_ms"] = round(percentile(overhead, 50), 3)
    result["runner_rss_mb"] = round(rss, 1)
    result["pool_idle_rss_mb"] = round(pool_rss, 1)
    return result


def _session_of(host: Host, chat: str) -> str:
    group = messaging_groups.find(host.conn, "bench", chat)
    return next(s.id for s in sessions.list_all(host.conn) if group is not None and s.messaging_group_id == group.id)


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
