"""The session link (protocol/link.py): the runner's end of a session served by the host over a socket.

The runner's side is the real blocking client, run in a thread against the
host's asyncio server, on real session databases; the hostile cases are what
a compromised runner could send.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.host_end import HostEnd
from nanoclaw.protocol.link import LinkError, LinkedRunnerEnd, LinkServer, MAX_LINE
from nanoclaw.protocol.messages import Route, outbound_id
from nanoclaw.safefs import UnsafePath

ROUTE = Route("fake", "chat1", "t1")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[HostEnd, LinkServer, Path, SessionFolder]]:
    folder = SessionFolder(tmp_path / "s")
    host = HostEnd(folder, doorbell=False)
    links = LinkServer(tmp_path / "links")
    path = await links.open("s1", host.pinned())  # as the host serves it: through its descriptor
    yield host, links, path, folder
    links.close_all()
    host.close()


async def test_a_turn_through_the_link_is_what_the_host_reads(served) -> None:
    host, _, path, folder = served
    host.set_routing(ROUTE)
    seq = host.append(id="m1", kind="chat", text="hello", route=ROUTE, sender_name="Ann")

    def runner_turn() -> tuple[list[int], str, str]:
        end = LinkedRunnerEnd(folder, str(path), doorbell=False)
        try:
            pending = end.pending()
            with end.transaction():
                end.ack([m.seq for m in pending], "taken")
            with end.transaction():
                out = end.write(kind="chat", text="hi Ann", route=end.routing(), in_reply_to=pending[-1].seq)
                end.ack([m.seq for m in pending], "done")
            end.set_state("provider_session", "abc")
            return [m.seq for m in pending], end.message_id(out), pending[0].route.thread_id or ""
        finally:
            end.close()

    seqs, out_id, thread = await asyncio.to_thread(runner_turn)
    assert seqs == [seq] and thread == "t1"
    rows = host.undelivered()
    assert [(r.text, r.route, r.id) for r in rows] == [("hi Ann", ROUTE, out_id)]
    assert host.unfinished() == []


async def test_a_turn_run_again_learns_through_the_link_what_it_sent(served) -> None:
    """Issue 20 on a linked runtime: the ids of a turn's rows, its run count and what earlier runs said."""
    host, _, path, folder = served
    host.set_routing(ROUTE)
    seq = host.append(id="m1", kind="chat", text="hello", route=ROUTE)

    def two_runs() -> tuple[int, int, list[tuple[str, str | None, Route | None]]]:
        end = LinkedRunnerEnd(folder, str(path), doorbell=False)
        try:
            first = end.runs_of(seq)
            with end.transaction():
                end.ack([seq], "taken")
            with end.transaction():  # the progress message, then the runner is killed
                end.write(kind="chat", text="working on it", route=end.routing(), in_reply_to=seq,
                          id=outbound_id(seq, first, 0))
            second = end.runs_of(seq)
            said = end.said_before(seq, [seq])
            return first, second, [(m.id, m.text, m.route) for m in said]
        finally:
            end.close()

    first, second, said = await asyncio.to_thread(two_runs)
    assert (first, second) == (0, 1)
    assert said == [(outbound_id(seq, 0, 0), "working on it", ROUTE)]
    assert [r.id for r in host.undelivered()] == [outbound_id(seq, 0, 0)]


async def test_a_failed_block_and_a_dead_runner_commit_nothing(served) -> None:
    host, links, path, folder = served
    host.append(id="m1", kind="chat", text="hello", route=ROUTE)

    def runner() -> None:
        end = LinkedRunnerEnd(folder, str(path), doorbell=False)
        with pytest.raises(RuntimeError):
            with end.transaction():
                end.write(kind="chat", text="half a turn", route=ROUTE)
                raise RuntimeError("provider crashed")
        end.write(kind="chat", text="not in a block")  # autocommit outside a block, as RunnerEnd
        end._call("begin")
        end.write(kind="chat", text="died holding the transaction")
        end.close()  # the sandbox is gone: the host rolls back what it held open

    await asyncio.to_thread(runner)
    for _ in range(100):
        if not links._sessions["s1"].busy:
            break
        await asyncio.sleep(0.02)
    assert [r.text for r in host.undelivered()] == ["not in a block"]


def _raw(path: Path, *lines: bytes) -> list[dict[str, object]]:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        f = s.makefile("rwb")
        answers = []
        for line in lines:
            f.write(line + b"\n")
            f.flush()
            got = f.readline()
            answers.append(json.loads(got) if got else {})
        return answers


@pytest.mark.parametrize("request_line", [
    b'{"op": "drop_tables"}',
    b'{"op": "ack", "args": [["1; DROP TABLE messages_out"], "done"]}',
    b'{"op": "ack", "args": [[2], {"status": "done"}]}',
    b'{"op": "write", "args": ["chat", "x", "not a route", null, null, null]}',
    b'{"op": "write", "args": ["chat", "x", null, null, "2", null]}',
    b'{"op": "write", "args": ["chat", "x", {"channel_type": "fake"}, null, null, null]}',
    b'{"op": "get_state", "args": [["key"]]}',
    b'{"op": "write", "args": ["chat", "x", null, null, null, null, {"id": 1}]}',
    b'{"op": "runs_of", "args": ["1 OR 1=1"]}',
    b'{"op": "said_before", "args": [1, "1) OR (1=1"]}',
    b'{"op": "pending", "args": {"a": 1}}',
    b"not json at all",
])
async def test_hostile_requests_are_refused_and_change_nothing(served, request_line: bytes) -> None:
    host, _, path, _ = served
    (answer,) = await asyncio.to_thread(_raw, path, request_line)
    assert "error" in answer and "result" not in answer
    assert host.undelivered() == []
    # The link still serves the next request on a new connection.
    (ok,) = await asyncio.to_thread(_raw, path, b'{"op": "stop_requested"}')
    assert ok == {"result": False}


async def test_an_oversized_line_hangs_up(served) -> None:
    _, _, path, _ = served
    (answer,) = await asyncio.to_thread(_raw, path, b'{"op": "set_state", "args": ["k", "' + b"x" * MAX_LINE + b'"]}')
    assert answer == {}  # closed without an answer


async def test_one_connection_at_a_time(served) -> None:
    _, _, path, folder = served
    first = await asyncio.to_thread(LinkedRunnerEnd, folder, str(path), False)
    try:
        await asyncio.to_thread(first.stop_requested)
        second = await asyncio.to_thread(LinkedRunnerEnd, folder, str(path), False)
        with pytest.raises(LinkError):
            await asyncio.to_thread(second.stop_requested)
        second.close()
        assert await asyncio.to_thread(first.stop_requested) is False
    finally:
        first.close()


async def test_a_database_swapped_for_a_link_is_never_opened(tmp_path: Path) -> None:
    """What the host does before each start on such a runtime: check the files, then serve them pinned."""
    folder = SessionFolder(tmp_path / "s")
    end = HostEnd(folder, doorbell=False)
    target = tmp_path / "host-file"
    target.write_text("the host's own file")
    folder.outbound_db.unlink()
    folder.outbound_db.symlink_to(target)  # what a runner could leave behind
    with pytest.raises(UnsafePath, match="not a plain file"):
        end.check_files()
    assert target.read_text() == "the host's own file"
    end.close()
