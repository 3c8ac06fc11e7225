"""Every battery here runs on every runtime: a host per test, built on one of RUNTIMES.

A new battery gets all runtimes by taking the `jail` (or `runtime_name`) fixture;
a new runtime joins every battery by one line in RUNTIMES.
"""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.host.app import Host
from tests.conftest import make_settings
from tests.fakes.channel import FakeChannel

# bwrap-adopted: bwrap sandboxes started by the pool before their session, which is attached by adoption
# (host/pool.py); the batteries run on them too.
RUNTIMES = ["bwrap", "podman", "gvisor", "bwrap-adopted"]
IMAGE_RUNTIMES = {"podman", "gvisor"}  # start the agent image tests/oci_image.py builds
ADOPTED = "bwrap-adopted"
# Small limits, so every bomb hits its wall within a second or two.
JAIL_LIMITS = dict(sandbox_memory_mb=256, sandbox_pids=64, sandbox_cpu_seconds=2, sandbox_file_mb=8)


@pytest.fixture(params=RUNTIMES)
def runtime_name(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name in IMAGE_RUNTIMES:
        request.getfixturevalue("podman_image")
    return name


def runtime_settings(runtime_name: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """Settings overrides that put a host on `runtime_name` (its image, or its pool, where it has one)."""
    if runtime_name == ADOPTED:
        return {"runtime": "bwrap", "pool_size": 2}
    extra: dict[str, object] = {"runtime": runtime_name}
    if runtime_name in IMAGE_RUNTIMES:
        extra["sandbox_image"] = request.getfixturevalue("podman_image")
    return extra


@pytest.fixture
async def jail(tmp_path: Path, runtime_name: str, request: pytest.FixtureRequest) -> AsyncIterator[Host]:
    """A host whose sandboxes use `runtime_name` and the small limits above."""
    extra = dict(JAIL_LIMITS, **runtime_settings(runtime_name, request))
    host = Host(make_settings(tmp_path / "home", **extra), channels=[FakeChannel])
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
