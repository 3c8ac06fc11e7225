"""Channels connect in the background: a platform that stalls holds up neither the host nor the other channels.

Matrix runs against a real Synapse behind a proxy that holds every request for 30 s (what a resumed
sync's long poll did to the host); the fake channel and the web chat must answer long before that.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from nanoclaw.host.app import Host
from nanoclaw.protocol.messages import Route
from tests.channels.conftest import start_platform
from tests.channels.platforms.matrix import MatrixPlatform
from tests.channels.platforms.web import WebPlatform
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel

pytestmark = pytest.mark.sandbox

STALL = 30.0
AT_ONCE = 15.0  # deadlines well under the stall: an answer after the stall fails them


async def until(check, timeout: float = AT_ONCE) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_stalling_channel_holds_up_neither_the_host_nor_the_others(tmp_path: Path) -> None:
    matrix, env = await start_platform("matrix", tmp_path)
    assert isinstance(matrix, MatrixPlatform) and matrix.proxy is not None
    web = WebPlatform()
    await web.start(tmp_path)
    host = Host(make_settings(tmp_path / "home", extra=env), channels=[FakeChannel])
    try:
        matrix.proxy.stall(STALL)
        await asyncio.wait_for(host.start(), AT_ONCE)
        web.webhook_base = f"{host.web_url}/hooks"
        assert host.status()["channel_states"]["matrix"] == "connecting"
        assert host.status()["channel_states"]["fake"] == "connected"
        assert host.channel_health()["matrix"]["state"] == "connecting"  # what status and the dashboard show

        wire(host, "chat1", trigger="always")
        await fake(host).say("[mock:reply=pong from the fake platform]")
        sent = await fake(host).wait_sent(1, timeout=AT_ONCE)
        assert sent[0].text == "pong from the fake platform"

        await web.user_says("[mock:reply=pong in the web chat]")
        answers = await web.wait_bot_messages(1, timeout=AT_ONCE)
        assert "pong in the web chat" in answers[-1].text
        assert host.status()["channel_states"]["matrix"] == "connecting"  # still stalled all along

        # A notice for the stalled channel waits for it, and goes out once it is connected.
        await host._say(Route("matrix", matrix.group_chat), "kept until Matrix is connected")
        matrix.proxy.release()
        await until(lambda: host.status()["channel_states"]["matrix"] == "connected")
        got = await matrix.wait_bot_messages(1, matrix.group_chat, timeout=AT_ONCE)
        assert "kept until Matrix is connected" in got[0].text
    finally:
        await host.stop()
        await web.stop()
        await matrix.stop()


async def test_a_channel_that_cannot_start_is_reported_and_the_host_runs_on(tmp_path: Path) -> None:
    extra = {"MATRIX_HOMESERVER": "http://127.0.0.1:9", "MATRIX_USER_ID": "@andy:localhost"}  # no token
    host = Host(make_settings(tmp_path / "home", extra=extra), channels=[FakeChannel])
    try:
        await host.start()
        assert await host.starter.wait(AT_ONCE)
        status = host.status()
        assert status["channel_states"]["matrix"] == "failed"
        assert "matrix" not in status["channels"] and "MATRIX_ACCESS_TOKEN" in host.starter.errors["matrix"]
        health = status["channel_health"]["matrix"]
        assert health["state"] == "failed" and "MATRIX_ACCESS_TOKEN" in health["reason"] + health["fix"]
        wire(host, "chat1", trigger="always")
        await fake(host).say("[mock:reply=still here]")
        assert (await fake(host).wait_sent(1))[0].text == "still here"
    finally:
        await host.stop()


async def test_the_start_benchmark_reports_web_readiness_with_every_network_channel_stalled() -> None:
    """benchmarks/start.py is only meaningful if its channels really stalled: it says which did."""
    from benchmarks import start as start_benchmark

    result = await start_benchmark.run(argparse.Namespace(samples=1))
    network = {"discord", "email", "github", "googlechat", "linear", "matrix", "resend", "signal", "slack", "teams",
               "telegram", "webex", "whatsapp"}
    assert network <= set(result["channels"]) and result["failed_channels"] == []
    # Those that talk to their platform while starting were still waiting on it when the web chat answered.
    talking = {"discord", "email", "github", "linear", "matrix", "signal", "slack", "telegram", "webex"}
    assert talking <= set(result["stalled_channels"])
    # The stalling server was reached (a loaded machine may stop the host before the last channel sent its first
    # request: being still "connecting" then is what the web chat must not wait for either).
    assert result["stalled_requests"] >= 1
    assert {"web_ready_ms", "web_answer_ms", "start_returned_ms", "web_ready_baseline_ms"} <= set(result)
