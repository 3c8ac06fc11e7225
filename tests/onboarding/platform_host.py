"""A real host with one fake chat platform's channel (the platform's real client library against its fake server
on 127.0.0.1), real sandboxes and the mock provider: the onboarding flows end to end."""

from __future__ import annotations

import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from nanoclaw.host.app import Host
from tests.channels.harness import Platform
from tests.conftest import make_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def host_with(platform: Platform, tmp: Path, **env: str) -> AsyncIterator[Host]:
    port = free_port()  # webhook URLs are known before the channels start
    platform.webhook_base = f"http://127.0.0.1:{port}/hooks"
    settings_env = {**await platform.start(tmp), **env}
    host = Host(make_settings(tmp / "home", extra=settings_env, web_port=port))
    try:
        await host.start()
        # Channels connect in the background: these flows start once the platform's channel is up (or failed).
        assert await host.starter.wait(30), "the channel did not finish starting"
        yield host
    finally:
        await host.stop()
        await platform.stop()
