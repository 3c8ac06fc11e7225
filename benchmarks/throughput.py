"""Router throughput: inbound messages accepted and persisted per second, and answered.

Context messages (a wired group chat, no mention: stored with trigger=0, no runner)
measure the router and the session protocol alone (`context_accepted_per_s`: until
`receive()` returns, i.e. the row is committed). Triggering messages to a live
runner: `trigger_accepted_per_s` times the same acceptance while the runner works,
`trigger_answered_per_s` the full round trip, until the reply that covers the last
message is sent (the runner answers messages that queued up during a turn together).

    python -m benchmarks.throughput --json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import time

from nanoclaw.channels.base import InboundEvent
from nanoclaw.db import messaging_groups, wirings
from benchmarks._harness import channel, emit, make_host, progress, temp_home

_ids = itertools.count()


async def run(args: argparse.Namespace) -> dict[str, float]:
    home = temp_home()
    host = make_host(home)
    await host.start()
    try:
        group = messaging_groups.upsert(host.conn, "bench", "group")
        wirings.wire(host.conn, group.id, "main", trigger="mention")
        progress(f"{args.messages} context messages…")
        start = time.perf_counter()
        for _ in range(args.messages):
            await host.receive(InboundEvent("bench", "group", f"c{next(_ids)}", "chatter in the group", "u1", "U"))
        context_rate = args.messages / (time.perf_counter() - start)
        session = host.conn.execute("SELECT id FROM sessions").fetchone()[0]
        stored = host.sessions.end(session).conn.execute("SELECT count(*) FROM messages_in").fetchone()[0]
        assert stored == args.messages, f"stored {stored} of {args.messages}"

        chat = messaging_groups.upsert(host.conn, "bench", "busy")
        wirings.wire(host.conn, chat.id, "main", trigger="always")
        ch = channel(host)
        await ch.round_trip("busy")
        progress(f"{args.triggers} triggering messages to a live runner…")
        answered = ch.expect_text(f"hello #{args.triggers - 1}.")
        start = time.perf_counter()
        for i in range(args.triggers):
            await host.receive(InboundEvent("bench", "busy", f"t{next(_ids)}", f"hello #{i}.", "u1", "U"))
        accepted = time.perf_counter() - start
        last_reply = await asyncio.wait_for(answered, 120)
        return {
            "context_accepted_per_s": round(context_rate, 1),
            "context_messages": args.messages,
            "trigger_accepted_per_s": round(args.triggers / accepted, 1),
            "trigger_answered_per_s": round(args.triggers / (last_reply - start), 1),
            "trigger_messages": args.triggers,
        }
    finally:
        await host.stop()
        shutil.rmtree(home.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--messages", type=int, default=5000, help="context messages [5000]")
    parser.add_argument("--triggers", type=int, default=1000, help="triggering messages [1000]")
    args = parser.parse_args()
    emit(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
