"""Outbound ids name their turn, run and position; a re-run turn finds what its earlier runs sent."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.formatting import format_already_sent
from nanoclaw.protocol.host_end import HostEnd
from nanoclaw.protocol.messages import Route, outbound_id, turn_of
from nanoclaw.protocol.runner_end import RunnerEnd

ROUTE = Route("fake", "chat1")


@pytest.fixture
def ends(tmp_path: Path) -> Iterator[tuple[HostEnd, RunnerEnd]]:
    folder = SessionFolder(tmp_path / "s")
    host = HostEnd(folder)
    runner = RunnerEnd(folder)
    yield host, runner
    runner.close()
    host.close()


def test_ids_name_turn_run_and_position_and_nothing_else_parses() -> None:
    assert outbound_id(12, 1, 3) == "t12.1.3"
    assert turn_of("t12.1.3") == (12, 1)
    for other in ("3f2a9c", "t12.1", "t12.1.3.4", "x12.1.3", "t1.2.3 ", "t" + "9" * 30 + ".0.0", "host-abc"):
        assert turn_of(other) is None, other


def write(runner: RunnerEnd, text: str, reply_to: int, id: str, kind: str = "chat") -> int:
    with runner.transaction():
        return runner.write(kind=kind, text=text, route=ROUTE, in_reply_to=reply_to, id=id)


def test_a_turn_split_after_a_crash_finds_what_it_sent_in_each_part(ends: tuple[HostEnd, RunnerEnd]) -> None:
    host, runner = ends
    ctx = host.append(id="ctx", kind="chat", text="context", trigger=False, route=ROUTE)
    t1 = host.append(id="t1", kind="chat", text="first", route=ROUTE)
    t2 = host.append(id="t2", kind="chat", text="second", route=ROUTE)
    assert ctx is not None and t1 is not None and t2 is not None
    assert runner.runs_of(ctx) == 0
    with runner.transaction():
        runner.ack([ctx, t1, t2], "taken")
    write(runner, "progress of one", t2, outbound_id(ctx, 0, 0))  # the running turn answers its last row
    write(runner, "progress of two", t2, outbound_id(ctx, 0, 1))
    # The runner died. After a crash messages run one at a time: [ctx, t1], then [t2].
    assert runner.runs_of(ctx) == 1
    said = runner.said_before(ctx, [ctx, t1])
    assert [r.text for r in said] == ["progress of one", "progress of two"]
    with runner.transaction():
        runner.ack([ctx, t1], "taken")
        runner.write(kind="chat", text="answer one", route=ROUTE, in_reply_to=t1, id=outbound_id(ctx, 1, 0))
        runner.ack([ctx, t1], "done")
    assert runner.runs_of(t2) == 1
    assert [r.text for r in runner.said_before(t2, [t2])] == ["progress of one", "progress of two"]


def test_the_host_finds_earlier_runs_sends_only_once_they_went_out(ends: tuple[HostEnd, RunnerEnd]) -> None:
    host, runner = ends
    t = host.append(id="t", kind="chat", text="go", route=ROUTE)
    other = host.append(id="o", kind="chat", text="another turn", route=ROUTE)
    assert t is not None and other is not None
    first = write(runner, "progress", t, outbound_id(t, 0, 0))
    write(runner, "progress", other, outbound_id(other, 0, 0))  # a different turn saying the same
    again = write(runner, "progress", t, outbound_id(t, 1, 0))
    row = next(r for r in host.undelivered() if r.seq == again)
    assert host.sent_earlier_in_turn(row, t) == []  # nothing went out yet
    host.record_delivery(first, "sent", "p-1")
    [(earlier, sent_as)] = host.sent_earlier_in_turn(row, t)
    assert (earlier.seq, sent_as) == (first, "p-1")


def test_already_sent_is_told_with_kind_destination_and_file_name(ends: tuple[HostEnd, RunnerEnd]) -> None:
    host, runner = ends
    t = host.append(id="t", kind="chat", text="go", route=ROUTE)
    assert t is not None
    write(runner, "a <b>", t, outbound_id(t, 0, 0))
    with runner.transaction():
        runner.write(kind="file", text="the chart", to_name="family", in_reply_to=t, id=outbound_id(t, 0, 1),
                     payload={"file": "f-abc/chart.png"})
    text = format_already_sent(runner.said_before(t, [t]))
    assert '<sent kind="chat">a &lt;b&gt;</sent>' in text
    assert '<sent kind="file" to="family" file="chart.png">the chart</sent>' in text
    assert "Do not send them again" in text


def test_an_outbound_db_half_made_by_a_killed_host_is_completed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A host SIGKILLed after setting WAL on the new outbound.db and before its tables: the next start completes
    it instead of failing on it at every start (found by the chaos run)."""
    import sqlite3

    from nanoclaw.protocol.folder import SessionFolder
    from nanoclaw.protocol.host_end import HostEnd

    folder = SessionFolder(tmp_path / "s")
    HostEnd(folder, doorbell=False).close()
    folder.outbound_db.unlink()
    for suffix in ("-wal", "-shm"):
        folder.outbound_db.with_name("outbound.db" + suffix).unlink(missing_ok=True)
    half = sqlite3.connect(folder.outbound_db)
    half.execute("PRAGMA journal_mode=WAL")  # what tune() does first; the kill came before the schema
    half.close()
    assert folder.outbound_db.stat().st_size > 0
    end = HostEnd(folder, doorbell=False)
    try:
        end.skip_old_acks()  # failed with "no such table: o.processing_ack"
        assert end.ack_cursor == 0
    finally:
        end.close()
