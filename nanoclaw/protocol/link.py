"""The runner's end of a session through a unix socket, for sandboxes whose boundary does not pass file locks.

SQLite's WAL lets a writer and readers in different processes share a
database because they see each other's POSIX locks and its `-shm` memory.
Under gVisor the memory is shared (mmaps of mounted files are the host's
pages) but the locks are not: the Sentry keeps its own, so a host reading
outbound.db cannot stop the runner from checkpointing under it, and the
runner's first open would reset the `-shm` the host is using. So on such a
runtime only host processes open the session's databases: the host serves
one socket per session (`LinkServer`), and the runner's `LinkedRunnerEnd`
asks it for what `RunnerEnd` would have read or written. The folder's other
parts (FIFOs, heartbeat, inbox/outbox files) stay files.

Wire format: one JSON object per line each way, `{"op": name, "args": [...]}`
answered by `{"result": ...}` or `{"error": "..."}`. Everything the runner
sends is hostile input: a fixed set of operations, parameterised SQL, one
connection at a time, bounded lines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from nanoclaw.protocol.doorbell import Doorbell
from nanoclaw.protocol.folder import SessionFolder
from nanoclaw.protocol.messages import InboundMessage, OutboundMessage, Route
from nanoclaw.protocol.runner_end import RunnerEnd

MAX_LINE = 8 << 20  # one request or answer; a reply text, a payload


class LinkError(ConnectionError):
    """The host's end of the link is gone or refused a request."""


def _route(value: Any) -> Route | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError("a route is an object")
    return Route(str(value["channel_type"]), str(value["platform_id"]),
                 None if value.get("thread_id") is None else str(value["thread_id"]))


def _seqs(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError("seqs are a list of integers")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value


def _str(value: Any, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


# -- the host's side ------------------------------------------------------------------------------

class _Session:
    """One session's served end: the RunnerEnd the host opened for the sandbox, and its socket."""

    def __init__(self, end: RunnerEnd, server: asyncio.AbstractServer, path: Path) -> None:
        self.end = end
        self.server = server
        self.path = path
        self.busy = False  # one connection at a time: the runner's

    def close(self) -> None:
        self.server.close()
        self.path.unlink(missing_ok=True)
        self.end.close()


class LinkServer:
    """Serves each session's end of the protocol to its sandbox (host side)."""

    def __init__(self, socket_dir: Path) -> None:
        self.socket_dir = socket_dir
        self._sessions: dict[str, _Session] = {}

    def path(self, session_id: str) -> Path | None:
        served = self._sessions.get(session_id)
        return served.path if served else None

    async def open(self, session_id: str, folder: SessionFolder) -> Path:
        """Open the runner's end of `folder` and serve it; called before each sandbox start.

        Opened afresh each time, while no sandbox of the session runs. The caller
        passes the folder pinned by its descriptor (HostEnd.pinned()) right after
        checking its database files are plain files (HostEnd.check_files()): the
        host never opens by path a file a sandbox could have swapped for a link.
        """
        self.close(session_id)
        end = RunnerEnd(folder, doorbell=False)
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.socket_dir / f"{session_id}.sock"
        path.unlink(missing_ok=True)
        served: _Session | None = None

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert served is not None
            await _serve_connection(served, reader, writer)

        try:
            server = await asyncio.start_unix_server(serve, path=str(path), limit=MAX_LINE)
        except OSError:
            end.close()
            raise
        os.chmod(path, 0o600)  # the host and the sandbox user (a root host hands it over at start)
        served = self._sessions[session_id] = _Session(end, server, path)
        return path

    def close(self, session_id: str) -> None:
        served = self._sessions.pop(session_id, None)
        if served is not None:
            served.close()

    def close_all(self) -> None:
        for session_id in list(self._sessions):
            self.close(session_id)


async def _serve_connection(served: _Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    if served.busy:
        writer.close()
        return
    served.busy = True
    end = served.end
    try:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError, ConnectionError):
                break  # a line over the limit: the runner is misbehaving, hang up
            if not line:
                break
            writer.write(json.dumps(_answer(end, line)).encode() + b"\n")
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        end.rollback()  # a runner that died mid-turn: nothing of the turn was committed
        served.busy = False
        writer.close()


def _answer(end: RunnerEnd, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        op = OPERATIONS[request["op"]]
        args = request.get("args", [])
        if not isinstance(args, list):
            raise TypeError("args are a list")
        return {"result": op(end, *args)}
    except (ValueError, KeyError, TypeError, sqlite3.Error) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _begin(end: RunnerEnd) -> None:
    end.begin()


def _commit(end: RunnerEnd) -> None:
    end.commit()


def _rollback(end: RunnerEnd) -> None:
    end.rollback()


def _write(end: RunnerEnd, kind: Any, text: Any, route: Any, to_name: Any, in_reply_to: Any, payload: Any,
           out_id: Any = None) -> int:
    if in_reply_to is not None and (not isinstance(in_reply_to, int) or isinstance(in_reply_to, bool)):
        raise TypeError("in_reply_to is an integer")
    if payload is not None and not isinstance(payload, dict):
        raise TypeError("a payload is an object")
    return end.write(kind=_str(kind), text=_str(text, optional=True), route=_route(route),
                     to_name=_str(to_name, optional=True), in_reply_to=in_reply_to, payload=payload,
                     id=_str(out_id, optional=True))


OPERATIONS: dict[str, Callable[..., Any]] = {
    "pending": lambda end: [dataclasses.asdict(m) for m in end.pending()],
    "routing": lambda end: dataclasses.asdict(r) if (r := end.routing()) else None,
    "destinations": lambda end: {name: dataclasses.asdict(r) for name, r in end.destinations().items()},
    "stop_requested": lambda end: end.stop_requested(),
    "take_interrupt": lambda end: end.take_interrupt(),
    "get_state": lambda end, key: end.get_state(_str(key)),
    "set_state": lambda end, key, value: end.set_state(_str(key), _str(value, optional=True)),
    "checkpoint": lambda end: end.checkpoint(),
    "begin": _begin,
    "commit": _commit,
    "rollback": _rollback,
    "ack": lambda end, seqs, status, error=None: end.ack(_seqs(seqs), _str(status), _str(error, optional=True)),
    "write": _write,
    "message_id": lambda end, seq: end.message_id(seq if isinstance(seq, int) else -1),
    "write_partial": lambda end, stream_id, in_reply_to, text: end.write_partial(
        _str(stream_id), in_reply_to if isinstance(in_reply_to, int) and not isinstance(in_reply_to, bool) else None,
        _str(text)),
    "drop_partials": lambda end: end.drop_partials(),
    "runs_of": lambda end, turn: end.runs_of(_int(turn)),
    "said_before": lambda end, turn, seqs: [dataclasses.asdict(m) for m in end.said_before(_int(turn), _seqs(seqs))],
}


# -- the runner's side ----------------------------------------------------------------------------

class LinkedRunnerEnd:
    """What `RunnerEnd` offers the runner, each read and write done by the host over the link."""

    def __init__(self, folder: SessionFolder, socket_path: str, doorbell: bool = True) -> None:
        self.folder = folder
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(socket_path)
        self._file = self._sock.makefile("rwb")
        self.bell_in = Doorbell(folder.bell_in) if doorbell else None
        self.bell_out = Doorbell(folder.bell_out) if doorbell else None

    def _call(self, op: str, *args: Any) -> Any:
        try:
            self._file.write(json.dumps({"op": op, "args": list(args)}).encode() + b"\n")
            self._file.flush()
            line = self._file.readline(MAX_LINE)
        except OSError as exc:
            raise LinkError(f"the session link broke: {exc}") from exc
        if not line:
            raise LinkError("the host closed the session link")
        answer = json.loads(line)
        if "error" in answer:
            raise LinkError(f"the host refused {op}: {answer['error']}")
        return answer["result"]

    def close(self) -> None:
        for bell in (self.bell_in, self.bell_out):
            if bell:
                bell.close()
        try:
            self._file.close()
        except OSError:
            pass  # the host already hung up
        self._sock.close()

    def pending(self) -> list[InboundMessage]:
        return [InboundMessage(**{**m, "route": _route(m["route"])}) for m in self._call("pending")]

    def routing(self) -> Route | None:
        return _route(self._call("routing"))

    def destinations(self) -> dict[str, Route]:
        return {name: Route(**r) for name, r in self._call("destinations").items()}

    def stop_requested(self) -> bool:
        return bool(self._call("stop_requested"))

    def take_interrupt(self, fresh: bool = True) -> bool:
        return bool(self._call("take_interrupt"))  # the host's end asks its database every time

    def get_state(self, key: str) -> str | None:
        value = self._call("get_state", key)
        return None if value is None else str(value)

    def set_state(self, key: str, value: str | None) -> None:
        self._call("set_state", key, value)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`with end.transaction(): ...` commits the block at once, as RunnerEnd's does."""
        self._call("begin")
        try:
            yield
        except BaseException:
            self._call("rollback")
            raise
        self._call("commit")

    def ack(self, seqs: list[int], status: str, error: str | None = None) -> None:
        self._call("ack", seqs, status, error)

    def write(self, *, kind: str, text: str | None, route: Route | None = None, to_name: str | None = None,
              in_reply_to: int | None = None, payload: dict[str, Any] | None = None, id: str | None = None) -> int:
        return int(self._call("write", kind, text, dataclasses.asdict(route) if route else None, to_name,
                              in_reply_to, payload, id))

    def runs_of(self, turn: int) -> int:
        return int(self._call("runs_of", turn))

    def said_before(self, turn: int, seqs: list[int]) -> list[OutboundMessage]:
        return [OutboundMessage(**{**m, "route": _route(m["route"])}) for m in self._call("said_before", turn, seqs)]

    def message_id(self, seq: int) -> str:
        return str(self._call("message_id", seq))

    def checkpoint(self) -> None:
        self._call("checkpoint")

    def write_partial(self, stream_id: str, in_reply_to: int | None, text: str) -> None:
        self._call("write_partial", stream_id, in_reply_to, text)

    def drop_partials(self) -> None:
        self._call("drop_partials")

    # The doorbells and the heartbeat are files in the folder on every runtime.
    ring = RunnerEnd.ring
    beat = RunnerEnd.beat


AnyRunnerEnd = RunnerEnd | LinkedRunnerEnd
