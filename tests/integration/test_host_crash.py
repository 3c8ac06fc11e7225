"""kill -9 of the host: replies it had not delivered go out exactly once after a restart."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.hostproc import NANOCLAW, HostProcess

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def outbound_rows(home: Path) -> list[tuple[int, str]]:
    rows = []
    for db in (home / "sessions").glob("*/*/outbound.db"):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows += conn.execute("SELECT seq, text FROM messages_out").fetchall()
        conn.close()
    return rows


def delivered_rows(home: Path) -> list[tuple[int, str]]:
    rows = []
    for db in (home / "sessions").glob("*/*/inbound.db"):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows += conn.execute("SELECT out_seq, status FROM delivered").fetchall()
        conn.close()
    return rows


def wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_send_prints_the_reply_and_status_lists_the_session(tmp_path: Path) -> None:
    host = HostProcess(tmp_path / "home").start()
    try:
        env = host.env
        out = subprocess.run([NANOCLAW, "send", "hello from the cli"], env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "hello from the cli" in out.stdout
        status = subprocess.run([NANOCLAW, "status"], env=env, capture_output=True, text=True, timeout=30)
        assert "session s-" in status.stdout and "runner pid" in status.stdout
        # Each live runner's memory, and the host-wide figures (measured when asked).
        rss = re.search(r"runner pid \d+ up [\d.]+ s, ([\d.]+) MB", status.stdout)
        assert rss and float(rss.group(1)) > 5, status.stdout
        assert re.search(r"memory: runners [\d.]+ MB · pool [\d.]+ MB · budget \d+ MB", status.stdout), status.stdout
    finally:
        host.stop()


def test_undelivered_reply_is_delivered_once_after_host_kill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    host = HostProcess(home).start()
    with host.client() as c:  # no subscription: the terminal reply cannot be delivered yet
        assert c.request("send", text="remember the milk", id="m1")["ok"]
    wait_for(lambda: any("remember the milk" in (t or "") for _, t in outbound_rows(home)))
    assert delivered_rows(home) == []
    host.kill9()

    host = HostProcess(home).start()
    try:
        with host.client(timeout=15) as c:
            c.request("subscribe")
            first = next(e for e in c.events() if e.get("event") == "message")
            assert "remember the milk" in first["text"]
            c.settimeout(1.5)
            try:
                extra = [e for e in c.events() if e.get("event") == "message"]
            except TimeoutError:
                extra = []
            assert extra == []
        assert [status for _, status in delivered_rows(home)] == ["sent"]
    finally:
        host.stop()


def test_message_in_flight_when_host_dies_is_answered_after_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    host = HostProcess(home).start()
    with host.client() as c:
        assert c.request("send", text="[mock:sleep=2] long job", id="job")["ok"]
    time.sleep(0.5)  # the runner has taken it and is working
    host.kill9()
    assert outbound_rows(home) == []

    host = HostProcess(home).start()
    try:
        with host.client(timeout=20) as c:
            c.request("subscribe")
            replies = []
            for event in c.events():
                if event.get("event") == "message":
                    replies.append(event["text"])
                if event.get("event") == "processed" and "job" in event.get("ids", []):
                    break
        assert len(replies) == 1 and "long job" in replies[0]
    finally:
        host.stop()
