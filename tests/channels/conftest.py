"""Fixtures of the channel contract suite: every platform in tests/channels/platforms/, its channel started."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from nanoclaw.channels.base import Channel
from tests.channels import platforms
from tests.channels.harness import Platform, RecordingHost
from tests.conftest import make_settings


def platform_classes() -> dict[str, type[Platform]]:
    """Every `PLATFORM` (or each of `PLATFORMS`) in tests/channels/platforms/*.py, by channel name and variant."""
    found: dict[str, type[Platform]] = {}
    for info in pkgutil.iter_modules(platforms.__path__):
        module = importlib.import_module(f"{platforms.__name__}.{info.name}")
        for cls in getattr(module, "PLATFORMS", [getattr(module, "PLATFORM", None)]):
            if cls is not None:
                found[cls.channel_type + (f"-{cls.variant}" if cls.variant else "")] = cls
    return dict(sorted(found.items()))


PLATFORMS = platform_classes()
START_DEADLINE = 10.0


def with_capability(name: str) -> list[str]:
    """Platforms whose channel declares capability `name` (for tests of that capability)."""
    return [p for p, cls in PLATFORMS.items() if getattr(cls().channel_class().capabilities, name)]


def without_capability(name: str) -> list[str]:
    return [p for p in PLATFORMS if p not in with_capability(name)]


@dataclass
class Running:
    platform: Platform
    host: RecordingHost
    channel: Channel
    env: dict[str, str]


async def start_platform(name: str, tmp: Path) -> tuple[Platform, dict[str, str]]:
    platform = PLATFORMS[name]()
    env = await platform.start(tmp)
    return platform, env


@asynccontextmanager
async def channel_on(platform: Platform, tmp: Path, *, host_cls: type[RecordingHost] = RecordingHost,
                     edit_env: Callable[[dict[str, str]], None] | None = None,
                     env: dict[str, str] | None = None, web_port: int = 0) -> AsyncIterator[Running]:
    """`platform`'s channel started with a RecordingHost on `tmp/home`. The platform is started and stopped
    here, unless `env` (from its earlier start) is given: a test restarting channels against one platform
    (with a fixed `web_port`, so webhook URLs stay what the platform was told, as behind a tunnel)."""
    own_platform = env is None
    home = tmp / "home"
    host = host_cls(make_settings(home, web_port=web_port))
    host.web.bind()  # the port is known before the platform starts (webhook URLs), served once the channel started
    platform.webhook_base = f"{host.web_url}/hooks"
    env = await platform.start(tmp) if env is None else dict(env)
    if edit_env is not None:
        edit_env(env)
    host.settings = make_settings(home, extra=env, web_port=web_port)
    channel = platform.channel_class()(host)
    try:
        try:  # a channel connects promptly (or returns and keeps trying): nothing waits on it
            await asyncio.wait_for(channel.start(), START_DEADLINE)
        except asyncio.TimeoutError:
            raise AssertionError(f"{platform.channel_type}: start() did not return within {START_DEADLINE} s") from None
        await host.web.start()
        yield Running(platform, host, channel, env)
    finally:
        try:
            await channel.stop()
        finally:
            if own_platform:
                await platform.stop()
            await host.web.stop()


@pytest.fixture
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    """The channel named by the test's `platform_name` parameter, started against its fake server."""
    async with channel_on(PLATFORMS[request.param](), tmp_path) as r:
        yield r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
