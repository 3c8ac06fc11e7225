"""A whole conversation on the gVisor runtime: the runner's end of the session goes through the host's
session link (its kernel does not share file locks), doorbells or polling, and the host's orphan sweep."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from nanoclaw.host.app import Host
from nanoclaw.protocol.folder import SANDBOX_LINK_SOCKET
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def containers(label: str) -> list[str]:
    out = subprocess.run(["podman", "ps", "--all", "--format", "{{.Names}}", "--filter",
                          f"label=org.nanoclaw.home={label}"], capture_output=True, text=True, check=True)
    return out.stdout.split()


async def test_a_conversation_on_gvisor(tmp_path: Path, podman_image: str, doorbell: bool) -> None:
    # A cold gVisor start under a loaded CI machine can take longer than the suite's 3 s heartbeat limit
    # before its first beat; the beat itself is checked below, not by whether the host lost patience.
    settings = make_settings(tmp_path / "home", doorbell=doorbell, runtime="gvisor", sandbox_image=podman_image,
                             idle_timeout=60, heartbeat_timeout=30)
    host = Host(settings, channels=[FakeChannel])
    await host.start()
    try:
        assert host.links is not None and host.settings.doorbell is doorbell
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("hello from gVisor", chat="chat1")
        assert "hello from gVisor" in (await ch.wait_sent(1, timeout=90))[0].text
        await ch.say("and again, warm", chat="chat1")
        assert "and again, warm" in (await ch.wait_sent(2, timeout=30))[1].text
        (session,) = host.supervisor.live
        assert host.supervisor.starts == 1
        end = host.sessions.end(session)
        first = end.heartbeat_mtime()
        assert first is not None
        for _ in range(100):  # the runner beats every 0.2 s, through the session link
            if (end.heartbeat_mtime() or 0) > first:
                break
            await asyncio.sleep(0.1)
        assert (end.heartbeat_mtime() or 0) > first
        spec = host.sessions.sandbox_spec(host.sessions.get(session), host.label)
        assert spec.env["NANOCLAW_RUNNER_LINK"] == SANDBOX_LINK_SOCKET
        assert any(m.target == SANDBOX_LINK_SOCKET for m in spec.mounts)
        assert len(containers(host.label)) == 1
    finally:
        await host.stop()
    assert containers(host.label) == []


async def test_a_streamed_reply_and_a_stop_cross_the_session_link(tmp_path: Path, podman_image: str) -> None:
    """Partials and interrupts are the runner's end too: under gVisor they travel over the link."""
    from tests.fakes.channel import StreamingFakeChannel
    from nanoclaw.runner.main import STOPPED

    settings = make_settings(tmp_path / "home", runtime="gvisor", sandbox_image=podman_image, idle_timeout=60,
                             heartbeat_timeout=30)
    host = Host(settings, channels=[StreamingFakeChannel])
    await host.start()
    try:
        wire(host, "chat1", channel="fakestream", trigger="always")
        ch = host.channels["fakestream"]
        assert isinstance(ch, StreamingFakeChannel)
        await ch.say("[mock:stream=400/40]")
        [sent] = await ch.wait_sent(1, timeout=90)
        await ch.wait_for(lambda: "word5 " in ch.text_of(sent.platform_id), timeout=30)
        await ch.say("/stop")
        await ch.wait_for(lambda: ch.text_of(sent.platform_id).endswith(STOPPED), timeout=20)
        assert "word400" not in ch.text_of(sent.platform_id) and len(ch.sent) == 1
    finally:
        await host.stop()


async def test_a_turn_a_crash_interrupted_says_nothing_twice_over_the_link(tmp_path: Path, podman_image: str) -> None:
    """Issue 20 on gVisor: the re-run learns through the session link what its killed run had sent."""
    settings = make_settings(tmp_path / "home", runtime="gvisor", sandbox_image=podman_image, idle_timeout=60,
                             heartbeat_timeout=30)
    host = Host(settings, channels=[FakeChannel])
    await host.start()
    try:
        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("[mock:say=progress update][mock:crash-once] the job", message_id="job")
        assert await ch.wait_processed("job", timeout=120) == "done"
        texts = [s.text for s in ch.sent]
        assert texts.count("progress update") == 1 and len(texts) == 2 and "the job" in texts[-1], texts
        assert host.supervisor.starts == 2  # the crash really happened: the turn ran twice
    finally:
        await host.stop()
