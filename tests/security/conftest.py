"""The escape battery runs on every runtime: a host per test, built on bwrap or podman."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.host.app import Host
from tests.conftest import make_settings
from tests.fakes.channel import FakeChannel

RUNTIMES = ["bwrap", "podman"]
# Small limits, so every bomb hits its wall within a second or two.
JAIL_LIMITS = dict(sandbox_memory_mb=256, sandbox_pids=64, sandbox_cpu_seconds=2, sandbox_file_mb=8)


@pytest.fixture(params=RUNTIMES)
def runtime_name(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name == "podman":
        request.getfixturevalue("podman_image")
    return name


@pytest.fixture
async def jail(tmp_path: Path, runtime_name: str, request: pytest.FixtureRequest) -> AsyncIterator[Host]:
    """A host whose sandboxes use `runtime_name` and the small limits above."""
    extra: dict[str, object] = dict(JAIL_LIMITS, runtime=runtime_name)
    if runtime_name == "podman":
        extra["sandbox_image"] = request.getfixturevalue("podman_image")
    host = Host(make_settings(tmp_path / "home", **extra), channels=[FakeChannel])
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
