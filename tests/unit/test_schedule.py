"""Schedules in time: cron across DST, intervals, one-offs, missed runs, pauses (a fake clock, real DB)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nanoclaw import db
from nanoclaw.db import messaging_groups, tasks
from nanoclaw.errors import ConfigError
from nanoclaw.host.bootstrap import first_run
from nanoclaw.host.scheduler import Scheduler, next_run, validate
from nanoclaw.host.folders import Folders, group_owners
from nanoclaw.host.sessions import SessionManager
from tests.conftest import make_settings


def ts(text: str, tz: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def local(t: float, tz: str) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


@pytest.mark.parametrize("tz,before,expected", [
    # spring forward: clocks jump 02:00 → 03:00 on these days
    ("Europe/Berlin", "2026-03-28T10:00", ["2026-03-29 09:00 CEST", "2026-03-30 09:00 CEST"]),
    ("America/New_York", "2026-03-07T10:00", ["2026-03-08 09:00 EDT", "2026-03-09 09:00 EDT"]),
    # fall back
    ("Europe/Berlin", "2026-10-24T10:00", ["2026-10-25 09:00 CET", "2026-10-26 09:00 CET"]),
    ("America/New_York", "2026-10-31T10:00", ["2026-11-01 09:00 EST", "2026-11-02 09:00 EST"]),
])
def test_daily_cron_stays_at_local_nine_across_dst(tz: str, before: str, expected: list[str]) -> None:
    t = ts(before, tz)
    seen = []
    for _ in expected:
        t = next_run("cron", "0 9 * * *", tz, t)
        seen.append(local(t, tz))
    assert seen == expected


def test_cron_in_the_skipped_hour_runs_once_that_day() -> None:
    tz = "Europe/Berlin"
    t = next_run("cron", "30 2 * * *", tz, ts("2026-03-28T12:00", tz))
    assert local(t, tz) == "2026-03-29 03:00 CEST"  # 02:30 does not exist that day: once, at the gap's end
    assert local(next_run("cron", "30 2 * * *", tz, t), tz) == "2026-03-30 02:30 CEST"


def test_interval_and_validation() -> None:
    assert next_run("interval", "3600", "UTC", 1000.0) == 4600.0
    assert next_run("once", "2026-12-24T18:00", "UTC", 0.0) is None
    with pytest.raises(ConfigError, match="cron expression"):
        validate("cron", "every monday", "UTC")
    with pytest.raises(ConfigError, match="at least 60"):
        validate("interval", "5", "UTC")
    with pytest.raises(ConfigError, match="IANA"):
        validate("cron", "0 9 * * *", "Mars/Olympus")
    with pytest.raises(ConfigError, match="ISO time"):
        validate("once", "tomorrow", "UTC")


class FakeClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


@pytest.fixture
def scheduler(tmp_path: Path) -> tuple[Scheduler, FakeClock, list[str]]:
    settings = make_settings(tmp_path / "home")
    conn = db.connect(settings.db_path)
    first_run(conn, settings)
    woken: list[str] = []

    async def wake(session_id: str) -> None:
        woken.append(session_id)

    clock = FakeClock(ts("2026-03-27T08:00", "Europe/Berlin"))
    sched = Scheduler(conn, SessionManager(settings, conn, Folders(settings, group_owners(conn, settings))), wake, clock, default_timezone="Europe/Berlin")
    return sched, clock, woken


async def test_a_week_of_daily_runs_across_dst(scheduler) -> None:
    sched, clock, woken = scheduler
    chat = messaging_groups.find(sched.conn, "terminal", "local")
    task = sched.add(agent_group_id="main", prompt="morning briefing", kind="cron", spec="0 9 * * *",
                     messaging_group_id=chat.id)
    fired_at = []
    for _ in range(7 * 24 * 4):  # quarter-hour steps for a week
        clock.t += 900
        if await sched.fire_due(clock.t):
            fired_at.append(local(clock.t, "Europe/Berlin"))
    # 168 hours from 08:00 CET end at 09:00 CEST: the clock moved forward an hour on the 29th.
    assert [f[:10] for f in fired_at] == [f"2026-03-{d}" for d in (27, 28, 29, 30, 31)] + [
        "2026-04-01", "2026-04-02", "2026-04-03"]
    assert all(" 09:00 " in f for f in fired_at)
    assert len(woken) == 8
    runs = tasks.runs(sched.conn, task.id)
    assert [r["status"] for r in runs] == ["dispatched"] * 8
    session = sched.sessions.get(woken[0])
    rows = sched.sessions.end(session.id).conn.execute("SELECT kind, text FROM messages_in").fetchall()
    assert [tuple(r) for r in rows] == [("task", "morning briefing")] * 8


async def test_after_downtime_a_missed_task_runs_once(scheduler) -> None:
    sched, clock, woken = scheduler
    task = sched.add(agent_group_id="main", prompt="hourly", kind="cron", spec="0 * * * *")
    clock.t += 10 * 3600  # the host was down for ten hours
    assert await sched.fire_due(clock.t) == [task.id]
    assert await sched.fire_due(clock.t) == []
    assert tasks.get(sched.conn, task.id).next_run > clock.t


async def test_once_paused_and_cancelled(scheduler) -> None:
    sched, clock, woken = scheduler
    once = sched.add(agent_group_id="main", prompt="once", kind="once", spec="2026-03-27T09:30")
    paused = sched.add(agent_group_id="main", prompt="paused", kind="interval", spec="600")
    sched.set_status(paused.id, "paused")
    cancelled = sched.add(agent_group_id="main", prompt="cancelled", kind="interval", spec="600")
    sched.set_status(cancelled.id, "cancelled")
    clock.t += 3 * 3600
    assert await sched.fire_due(clock.t) == [once.id]
    assert tasks.get(sched.conn, once.id).status == "done"
    assert await sched.fire_due(clock.t + 3600) == []
    resumed = sched.set_status(paused.id, "active")
    assert resumed.next_run == pytest.approx(clock.t + 600)
    with pytest.raises(ConfigError, match="has ended"):
        sched.set_status(cancelled.id, "active")
