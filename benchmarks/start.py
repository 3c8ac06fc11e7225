"""Host start with channels whose platforms stall: how soon the web chat answers.

Every network channel (Matrix, Telegram, Discord, Slack, Signal, GitHub, email, Teams, Google Chat,
Webex, Linear, Resend, WhatsApp) is pointed at a server on 127.0.0.1 that accepts each connection and
answers nothing for 30 s, as a homeserver's long poll or a platform outage does. (iMessage reads a
local database on macOS; the web chat and the terminal are the host itself.) Measured from `Host.start()` being called:

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
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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


def _service_account(folder: Path, url: str) -> Path:
    """A Google service account key (a fresh RSA key) whose token endpoint is the stalling server."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = folder / "chat-service-account.json"
    path.write_text(json.dumps({"type": "service_account", "project_id": "bench", "private_key_id": "bench",
                                "private_key": pem, "client_email": "bench@bench.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": f"{url}/token"}))
    return path


def stalling_channels(port: int, folder: Path) -> dict[str, str]:
    """Each network channel's settings, every base URL (mail servers too) at the stalling server."""
    url = f"http://127.0.0.1:{port}"
    return {
        "MATRIX_HOMESERVER": url, "MATRIX_USER_ID": "@andy:localhost", "MATRIX_ACCESS_TOKEN": "syt_bench",
        "TELEGRAM_BOT_TOKEN": "123456:bench", "TELEGRAM_API_BASE": f"{url}/bot",
        "DISCORD_BOT_TOKEN": "bench.discord.token", "DISCORD_API_BASE": f"{url}/api/v10",
        "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_APP_TOKEN": "xapp-bench", "SLACK_API_URL": f"{url}/api/",
        "SIGNAL_ACCOUNT": "+15550000000", "SIGNAL_RPC_URL": f"{url}/api/v1/rpc",
        "GITHUB_TOKEN": "ghp_bench", "GITHUB_WEBHOOK_SECRET": "bench-secret", "GITHUB_API_URL": url,
        "EMAIL_ADDRESS": "andy@bench.example", "EMAIL_PASSWORD": "bench", "EMAIL_SECURITY": "none",
        "EMAIL_IMAP_HOST": "127.0.0.1", "EMAIL_IMAP_PORT": str(port),
        "EMAIL_SMTP_HOST": "127.0.0.1", "EMAIL_SMTP_PORT": str(port),
        "TEAMS_APP_ID": "bench-app", "TEAMS_APP_PASSWORD": "bench", "TEAMS_TOKEN_URL": f"{url}/token",
        "TEAMS_OPENID_URL": f"{url}/openid", "TEAMS_SERVICE_URL": f"{url}/teams/",
        "GOOGLECHAT_SERVICE_ACCOUNT_FILE": str(_service_account(folder, url)),
        "GOOGLECHAT_PROJECT_NUMBER": "123456789012", "GOOGLECHAT_API_URL": url,
        "GOOGLECHAT_CERTS_URL": f"{url}/certs",
        "WEBEX_BOT_TOKEN": "bench-webex", "WEBEX_WEBHOOK_SECRET": "bench-secret", "WEBEX_API_URL": f"{url}/v1/",
        "LINEAR_API_KEY": "lin_api_bench", "LINEAR_WEBHOOK_SECRET": "bench-secret", "LINEAR_API_URL": f"{url}/graphql",
        "RESEND_API_KEY": "re_bench", "RESEND_WEBHOOK_SECRET": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "RESEND_FROM": "Andy <andy@bench.example>", "RESEND_API_URL": url,
        "WHATSAPP_ACCESS_TOKEN": "bench", "WHATSAPP_PHONE_NUMBER_ID": "1", "WHATSAPP_APP_SECRET": "bench",
        "WHATSAPP_VERIFY_TOKEN": "bench", "WHATSAPP_API_BASE": url,
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
        failed = sorted(n for n, state in host.starter.state.items() if state == "failed")
        await starting
        returned = (time.perf_counter() - began) * 1000
        answered = await web_answer(host, began, deadline)
        return {"web_ready_ms": ready, "start_returned_ms": returned, "web_answer_ms": answered,
                "stalled_channels": stalled, "failed_channels": failed, "channels": sorted(host.starter.state)}
    finally:
        if not starting.done():
            starting.cancel()
        await host.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    baseline = [await measure({}) for _ in range(args.samples)]
    server = StallingServer()
    port = await server.start()
    try:
        extra = stalling_channels(port, temp_home().parent)
        stalling = [await measure(extra) for _ in range(args.samples)]
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
        "stalled_channels": worst["stalled_channels"], "failed_channels": worst["failed_channels"],
        "channels": worst["channels"],
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
