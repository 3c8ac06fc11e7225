"""Fixtures that build real things: a host in a temp home, real bwrap sandboxes, fake channels."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.config import Settings
from nanoclaw.db import messaging_groups, wirings
from nanoclaw.host.app import Host
from tests.fakes.channel import FakeChannel, RichFakeChannel, ThreadedFakeChannel


def pytest_report_header(config: pytest.Config) -> str:
    """Which sandbox runtimes the batteries can use here, and why one cannot (said, never skipped silently)."""
    from nanoclaw.sandbox import detect

    def state(name: str) -> str:
        try:
            found = detect.check(name)
        except Exception as exc:  # an unknown runtime on this platform
            return f"{name}: not available ({exc})"
        return f"{name}: {'usable' if found.ok else 'not usable: ' + found.detail}"

    return "sandbox runtimes: " + "; ".join(state(name) for name in detect.preference())


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A sandbox test fails loudly without bwrap (never skips, never xfails): a machine that cannot run the
    # sandbox cannot vouch for it.
    if "sandbox" in item.keywords and shutil.which("bwrap") is None:
        pytest.fail("bubblewrap (bwrap) is not on PATH, so this sandbox test cannot run: install it "
                    "(./scripts/test does, or `apt-get install bubblewrap`)", pytrace=False)


def make_settings(home: Path, doorbell: bool = True, **overrides: object) -> Settings:
    """Fast intervals so failure paths take seconds, not minutes."""
    values: dict[str, object] = dict(
        home=home, provider="mock", runtime="bwrap", doorbell=doorbell, web_port=0, idle_timeout=30.0, heartbeat_interval=0.2,
        heartbeat_timeout=3.0, retry_backoff=0.2, host_poll_interval=0.2 if doorbell else 0.1,
        runner_poll_interval=0.1 if not doorbell else 0.5, max_attempts=3,
        disk_quota_mb=0,  # the quota's own tests turn it on (each image is a loop mount)
        pool_size=0,  # the pool's own tests (and the batteries' pooled runs) turn it on
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def private_config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own ~/.config/nanoclaw (vault key, CA, allow-list): none touch the machine's."""
    config = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    # Hosts and commands of tests run without the disk quota (a loop mount per group) unless a test asks.
    monkeypatch.setenv("NANOCLAW_DISK_QUOTA_MB", "0")
    # Nor with pre-warmed sandboxes (two per host by default, warming up in the background of every other
    # test): the pool's own tests and the batteries' pooled runs ask for them.
    monkeypatch.setenv("NANOCLAW_POOL_SIZE", "0")
    return config / "nanoclaw"


@pytest.fixture(scope="session")
def podman_image() -> str:
    """The agent image of the podman runtime, built once per source version (tests/oci_image.py)."""
    from tests.oci_image import ensure_agent_image

    return ensure_agent_image()


@pytest.fixture(params=[True, False], ids=["doorbell", "poll"])
def doorbell(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture
async def host(settings: Settings) -> AsyncIterator[Host]:
    h = Host(settings, channels=[FakeChannel, ThreadedFakeChannel, RichFakeChannel])
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


def wire(host: Host, chat: str, group: str = "main", *, channel: str = "fake", is_dm: bool = False, **options: object) -> None:
    """Wire a fake chat to an agent group, as `nanoclaw groups wire` would."""
    mg = messaging_groups.upsert(host.conn, channel, chat, is_dm=is_dm)
    wirings.wire(host.conn, mg.id, group, **options)  # type: ignore[arg-type]


def fake(host: Host, channel: str = "fake") -> FakeChannel:
    ch = host.channels[channel]
    assert isinstance(ch, FakeChannel)
    return ch
