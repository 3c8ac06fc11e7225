"""The session folder protocol: seq parity, one writer per file, acks, cursors, deliveries."""

from __future__ import annotations

import select
import sqlite3
from pathlib import Path

import pytest

from nanoclaw.protocol.doorbell import Doorbell
from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.formatting import format_messages, strip_internal
from nanoclaw.protocol.host_end import HostEnd
from nanoclaw.protocol.messages import InboundMessage, Route
from nanoclaw.protocol.runner_end import RunnerEnd
from nanoclaw.protocol.schema import next_seq

ROUTE = Route("fake", "chat1")


@pytest.fixture
def ends(tmp_path: Path) -> tuple[HostEnd, RunnerEnd]:
    folder = SessionFolder(tmp_path / "s")
    host = HostEnd(folder)
    runner = RunnerEnd(folder)
    yield host, runner
    runner.close()
    host.close()


def test_next_seq_keeps_parity() -> None:
    assert [next_seq(n, 0) for n in (0, 1, 2, 3)] == [2, 2, 4, 4]
    assert [next_seq(n, 1) for n in (0, 1, 2, 3)] == [1, 3, 3, 5]


def test_seq_is_even_inbound_odd_outbound_and_increasing(ends) -> None:
    host, runner = ends
    seqs = [host.append(id="a", kind="chat", text="1", route=ROUTE)]
    with runner.transaction():
        seqs.append(runner.write(kind="chat", text="r1", route=ROUTE))
    seqs.append(host.append(id="b", kind="chat", text="2", route=ROUTE))
    seqs.append(host.append(id="c", kind="chat", text="3", route=ROUTE))
    with runner.transaction():
        seqs.append(runner.write(kind="chat", text="r2", route=ROUTE))
    assert seqs == sorted(seqs) and [s % 2 for s in seqs] == [0, 1, 0, 0, 1]


def test_duplicate_inbound_ids_are_stored_once(ends) -> None:
    host, _ = ends
    assert host.append(id="same", kind="chat", text="x") is not None
    assert host.append(id="same", kind="chat", text="x") is None


def test_pending_acks_and_cursors(ends) -> None:
    host, runner = ends
    c = host.append(id="ctx", kind="chat", text="context", trigger=False)
    t = host.append(id="trg", kind="chat", text="question")
    gone = host.append(id="bad", kind="chat", text="poison")
    host.give_up([gone])
    assert [m.seq for m in runner.pending()] == [c, t]
    assert [m.seq for m in host.unfinished()] == [t]
    with runner.transaction():
        runner.ack([c, t], "taken")
    assert [m.seq for m in host.unfinished()] == [t]  # taken is not finished
    with runner.transaction():
        runner.write(kind="chat", text="answer", route=ROUTE, in_reply_to=t)
        runner.ack([c, t], "done")
    assert runner.pending() == [] and host.unfinished() == [] and runner.finished_cursor() == t
    assert [a.status for a in host.new_acks()] == ["taken", "taken", "done", "done"]
    assert host.new_acks() == []
    assert host.reply_text(t) == "answer"


def test_consumed_answers_do_not_finish_the_turn_that_asked(ends) -> None:
    host, runner = ends
    asking = host.append(id="q", kind="chat", text="ask me")
    with runner.transaction():
        runner.ack([asking], "taken")
    answer = host.append(id="a", kind="answer", text="yes")
    with runner.transaction():
        runner.ack([answer], "consumed")
    assert [m.seq for m in runner.pending()] == [asking]
    assert [m.seq for m in host.unfinished()] == [asking]


def test_the_runner_sees_each_host_commit_through_its_read_cache(ends) -> None:
    host, runner = ends
    first = host.append(id="1", kind="chat", text="one")
    assert [m.seq for m in runner.pending()] == [first]
    assert [m.seq for m in runner.pending()] == [first]  # nothing new: the cached read
    host.set_routing(ROUTE)
    second = host.append(id="2", kind="chat", text="two")
    assert [m.seq for m in runner.pending()] == [first, second] and runner.routing() == ROUTE
    host.give_up([first])
    assert [m.seq for m in runner.pending()] == [second]
    host.request_stop()
    assert runner.stop_requested()


def test_a_rolled_back_ack_is_forgotten(ends) -> None:
    host, runner = ends
    seq = host.append(id="1", kind="chat", text="one")
    with pytest.raises(RuntimeError):
        with runner.transaction():
            runner.ack([seq], "done")
            assert runner.pending() == []  # followed in memory within the transaction
            raise RuntimeError("the turn broke before its commit")
    assert [m.seq for m in runner.pending()] == [seq] and runner.finished_cursor() == 0
    assert host.new_acks() == []


def test_a_host_transaction_commits_row_and_routing_together(ends) -> None:
    host, runner = ends
    with pytest.raises(RuntimeError):
        with host.transaction():
            host.append(id="1", kind="chat", text="one")
            host.set_routing(ROUTE)
            raise RuntimeError("stop before the commit")
    assert runner.pending() == [] and runner.routing() is None
    with host.transaction():
        seq = host.append(id="1", kind="chat", text="one")
        host.set_routing(ROUTE)
    assert [m.seq for m in runner.pending()] == [seq] and runner.routing() == ROUTE


def test_checkpoint_folds_the_wal_into_the_database_file(ends, tmp_path: Path) -> None:
    _, runner = ends
    with runner.transaction():
        runner.write(kind="chat", text="kept", route=ROUTE)

    def rows_in_file_alone() -> int:  # the database file without its WAL
        copy = tmp_path / "copy.db"
        copy.write_bytes((tmp_path / "s" / "outbound.db").read_bytes())
        conn = sqlite3.connect(copy)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_out'").fetchone() is None:
                return 0  # the tables themselves are still in the WAL the host made them in
            return int(conn.execute("SELECT count(*) FROM messages_out").fetchone()[0])
        finally:
            conn.close()
            copy.unlink()

    assert rows_in_file_alone() == 0
    runner.checkpoint()
    assert rows_in_file_alone() == 1


def test_deliveries_are_recorded_once(ends) -> None:
    host, runner = ends
    with runner.transaction():
        first = runner.write(kind="chat", text="one", route=ROUTE)
        second = runner.write(kind="chat", text="two", route=ROUTE)
    assert [r.seq for r in host.undelivered()] == [first, second]
    host.record_delivery(first, "sent", "p1")
    assert [r.seq for r in host.undelivered()] == [second]
    out_id = runner.out.execute("SELECT id FROM messages_out WHERE seq = ?", (first,)).fetchone()[0]
    assert host.platform_id_of(out_id) == "p1"


def test_routing_round_trip_and_state(ends) -> None:
    host, runner = ends
    assert runner.routing() is None
    host.set_routing(Route("fake", "chat1", "t9"))
    assert runner.routing() == Route("fake", "chat1", "t9")
    runner.set_state("k", "v")
    assert runner.get_state("k") == "v"


def test_the_runner_cannot_write_inbound(ends) -> None:
    _, runner = ends
    with pytest.raises(sqlite3.OperationalError):
        runner.inbound.execute("DELETE FROM messages_in")


def test_doorbell_wakes_and_never_blocks(tmp_path: Path) -> None:
    folder = SessionFolder(tmp_path / "s")
    HostEnd(folder).close()
    ringer, listener = Doorbell(folder.bell_in), Doorbell(folder.bell_in)
    assert select.select([listener.fileno()], [], [], 0)[0] == []
    for _ in range(100_000):  # far more than a pipe holds
        ringer.ring()
    assert select.select([listener.fileno()], [], [], 0)[0] == [listener.fileno()]
    listener.drain()
    assert select.select([listener.fileno()], [], [], 0)[0] == []
    (tmp_path / "plain").write_text("")
    with pytest.raises(PermissionError):
        Doorbell(tmp_path / "plain")


def test_xml_format_escapes_and_marks_context() -> None:
    msgs = [
        InboundMessage(2, "fake:c:1", "chat", False, "a < b & c", sender_name='Bob "B"', route=Route("fake", "c")),
        InboundMessage(4, "fake:c:2", "chat", True, "@Andy?", sender_name="Al", route=Route("fake", "c", "t1")),
    ]
    xml = format_messages(msgs)
    assert "a &lt; b &amp; c" in xml and "sender='Bob \"B\"'" in xml
    assert 'context="true"' in xml.splitlines()[1] and 'context="true"' not in xml.splitlines()[2]
    assert 'thread="t1"' in xml and 'id="2"' in xml


def test_internal_is_stripped() -> None:
    assert strip_internal("<internal>plan</internal>Hello <INTERNAL>x</INTERNAL>there") == "Hello there"
    assert strip_internal("Answer.<internal>never closed") == "Answer."


def test_partials_are_followed_by_the_host_but_never_replayed(tmp_path: Path) -> None:
    folder = SessionFolder(tmp_path / "s")
    host, runner = HostEnd(folder), RunnerEnd(folder)
    runner.write_partial("st1", 2, "Hel")
    runner.write_partial("st1", 2, "Hello wor")
    [p] = host.new_partials(1000)
    assert (p.stream_id, p.in_reply_to, p.text) == ("st1", 2, "Hello wor")  # the latest whole text, once
    assert host.new_partials(1000) == []
    runner.write_partial("st1", 2, "x" * 50)
    assert [q.text for q in host.new_partials(10)] == ["x" * 10]  # bounded: the runner is untrusted
    runner.write_partial("st1", 2, "written before a host crash")
    runner.close()
    host.close()
    # A new host does not show what was written before it opened the folder…
    host = HostEnd(folder)
    assert host.new_partials(1000) == []
    # …and a new runner starts from an empty table whose revisions still grow past the host's cursor.
    runner = RunnerEnd(folder)
    assert runner.out.execute("SELECT count(*) FROM partials").fetchone()[0] == 0
    runner.write_partial("st2", 4, "fresh")
    assert [q.text for q in host.new_partials(1000)] == ["fresh"]
    runner.close()
    host.close()


def test_interrupts_are_taken_once_and_old_ones_are_not_seen_by_a_new_runner(ends) -> None:
    host, runner = ends
    assert not runner.take_interrupt()
    host.request_interrupt()
    assert runner.take_interrupt()
    assert not runner.take_interrupt()
    host.request_interrupt()
    fresh = RunnerEnd(runner.folder)
    assert not fresh.take_interrupt()  # meant for the runner that was running then
    assert not fresh.stop_requested()  # an interrupt is not a stop
    fresh.close()
