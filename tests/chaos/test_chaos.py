"""1,000 messages across 20 chats and 5 agent groups while the host is SIGKILLed at >= 20 random points
and runners are killed: nothing lost, nothing answered twice, every one-off task ran once, DBs intact."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.chaos import run

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(400)]


def test_nothing_lost_nothing_twice_under_host_and_runner_kills() -> None:
    result = run(argparse.Namespace(messages=1000, chats=20, groups=5, tasks=8, kills=20, rate=40,
                                    timeout=300, seed=11, runtime=None))
    print(result)
    assert result["host_kills"] >= 20
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert result["tasks_not_once"] == 0
    assert result["integrity_errors"] == 0


@pytest.mark.timeout(500)
def test_nothing_lost_nothing_twice_on_gvisor(podman_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on gVisor, where the runner's end goes through the host's session link."""
    monkeypatch.setenv("NANOCLAW_SANDBOX_IMAGE", podman_image)
    result = run(argparse.Namespace(messages=300, chats=10, groups=3, tasks=4, kills=10, rate=40,
                                    timeout=400, seed=13, runtime="gvisor"))
    print(result)
    assert result["host_kills"] >= 10
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert result["tasks_not_once"] == 0
    assert result["integrity_errors"] == 0
