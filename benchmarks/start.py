"""Host start with channels whose platforms stall: how soon the web chat answers.

Every network channel (Matrix, Telegram, Discord, Slack, Signal, GitHub) is pointed at a server on
127.0.0.1 that accepts each request and answers nothing for 30 s, as a homeserver's long poll or a
platform outage does. Measured from `Host.start()` being called:

* `web_ready_ms`: the web chat's API answers (logged in with the owner's token);
* `web_answer_ms`: a message posted there as soon as it answered has its reply (mock agent, real sandbox);
* `start_returned_ms`: `Host.start()` returned.

The baseline, in the same run, is the same host without those channels (`*_baseline_ms`).
`stalled_channels` lists the channels still `connecting` when the web chat answered: proof they stalled.

    .venv/bin/python -m benchmarks.start --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

from benchmarks._harness import emit, progress, temp_home
from nanoclaw.config import Settings
from nanoclaw.host.app import Host

STALL = 30.0


class StallingServer:
    """Accepts connections, reads what comes, answers nothing until STALL seconds have passed."""

    def __init__(self) -> None:
        self.port = 0
        self.requests = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        try:
            await asyncio.wait_for(reader.read(65536), STALL)
            await asyncio.sleep(STALL)
        except (asyncio.TimeoutError, asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


def stalling_channels(port: int) -> dict[str, str]:
    """Each channel's settings, every base URL at the stalling server."""
    url = f"http://127.0.0.1:{port}"
    return {
        "MATRIX_HOMESERVER": url, "MATRIX_USER_ID": "@andy:localhost", "MATRIX_ACCESS_TOKEN": "syt_bench",
        "TELEGRAM_BOT_TOKEN": "123456:bench", "TELEGRAM_API_BASE": f"{url}/bot",
        "DISCORD_BOT_TOKEN": "bench.discord.token", "DISCORD_API_BASE": f"{url}/api/v10",
        "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_APP_TOKEN": "xapp-bench", "SLACK_API_URL": f"{url}/api/",
        "SIGNAL_ACCOUNT": "+15550000000", "SIGNAL_RPC_URL": f"{url}/api/v1/rpc",
        "GITHUB_TOKEN": "ghp_bench", "GITHUB_WEBHOOK_SECRET": "bench-secret", "GITHUB_API_URL": url,
    }


async def web_ready(host: Host, began: float, deadline: float) -> float:
    """Milliseconds from `began` until the web chat's history API answers 200."""
    headers = {"Authorization": f"Bearer {host.web._token}"}
    async with aiohttp.ClientSession() as http:
        while time.perf_counter() < deadline:
            try:
                async with http.get(f"{host.web_url}/api/chat/messages", headers=headers) as response:
                    if response.status == 200:
                        return (time.perf_counter() - began) * 1000
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
    raise TimeoutError("the web chat did not answer within the deadline")


async def web_answer(host: Host, began: float, deadline: float) -> float:
    """Post a message to the web chat and wait for the agent's reply; milliseconds from `began`."""
    headers = {"Authorization": f"Bearer {host.web._token}"}
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("text", "[mock:reply=ready]")
        async with http.post(f"{host.web_url}/api/chat/messages", data=form, headers=headers) as response:
            assert response.status == 200, await response.text()
        while time.perf_counter() < deadline:
            async with http.get(f"{host.web_url}/api/chat/messages", headers=headers) as response:
                messages = (await response.json())["messages"]
            if any(m["author"] == "assistant" and m["text"] == "ready" for m in messages):
                return (time.perf_counter() - began) * 1000
            await asyncio.sleep(0.01)
    raise TimeoutError("the web chat's message was not answered within the deadline")


async def measure(extra: dict[str, str]) -> dict[str, Any]:
    host = Host(Settings(home=temp_home(), provider="mock", log_level="WARNING", web_port=0, disk_quota_mb=0,
                         extra=extra))
    began = time.perf_counter()
    deadline = began + STALL * 2
    starting = asyncio.create_task(host.start())
    try:
        while not host.web.running:  # the port is bound inside start(); the URL is known once it serves
            if starting.done():
                starting.result()
            await asyncio.sleep(0.001)
        ready = await web_ready(host, began, deadline)
        stalled = sorted(n for n, state in host.starter.state.items() if state == "connecting")
        await starting
        returned = (time.perf_counter() - began) * 1000
        answered = await web_answer(host, began, deadline)
        return {"web_ready_ms": ready, "start_returned_ms": returned, "web_answer_ms": answered,
                "stalled_channels": stalled, "channels": sorted(host.starter.state)}
    finally:
        if not starting.done():
            starting.cancel()
        await host.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    baseline = [await measure({}) for _ in range(args.samples)]
    server = StallingServer()
    port = await server.start()
    try:
        stalling = [await measure(stalling_channels(port)) for _ in range(args.samples)]
    finally:
        await server.stop()
    worst = max(stalling, key=lambda r: r["web_ready_ms"])
    base_ready = max(r["web_ready_ms"] for r in baseline)
    return {
        "web_ready_ms": round(worst["web_ready_ms"], 1),
        "start_returned_ms": round(max(r["start_returned_ms"] for r in stalling), 1),
        "web_answer_ms": round(max(r["web_answer_ms"] for r in stalling), 1),
        "web_ready_baseline_ms": round(base_ready, 1),
        "start_returned_baseline_ms": round(max(r["start_returned_ms"] for r in baseline), 1),
        "web_answer_baseline_ms": round(max(r["web_answer_ms"] for r in baseline), 1),
        "web_ready_ratio": round(worst["web_ready_ms"] / base_ready, 2),
        "stalled_channels": worst["stalled_channels"],
        "stall_s": STALL, "stalled_requests": server.requests, "samples": args.samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--samples", type=int, default=3, help="host starts per configuration (the worst counts)")
    args = parser.parse_args()
    progress("host start with every network channel stalling…")
    emit(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
