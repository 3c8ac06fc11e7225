"""The bare protocol limit: what one round trip costs with nothing of NanoClaw around it.

Two processes, each the only writer of its own SQLite file (WAL, the pragmas
of `nanoclaw.protocol.schema.tune`), and two FIFO doorbells: the first commits
a row and rings; the second wakes, reads the row, commits its answer to its
own file and rings back; the first wakes and reads the answer. Two WAL
commits, two FIFO wakes, two processes — the floor under the warm round trip,
measured in the same run so their ratio shows what NanoClaw itself adds.

    python -m benchmarks.protocol_limit --json
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nanoclaw.protocol.schema import tune

_SCHEMA = "CREATE TABLE IF NOT EXISTS rows (seq INTEGER PRIMARY KEY, text TEXT NOT NULL)"


def _open(path: Path, *, readonly_other: Path | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    tune(conn)
    conn.execute(_SCHEMA)
    if readonly_other is not None:
        conn.execute("ATTACH DATABASE ? AS o", (f"file:{readonly_other}?mode=ro",))
    return conn


def _bell(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)


def _wait(fd: int) -> None:
    select.select([fd], [], [])
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def answerer(folder: Path) -> None:
    """The second process: each row in a.db is answered in b.db."""
    conn = _open(folder / "b.db", readonly_other=folder / "a.db")
    bell_in, bell_out = _bell(folder / "bell.in"), _bell(folder / "bell.out")
    seen = 0
    os.write(bell_out, b"!")  # ready
    while True:
        _wait(bell_in)
        for seq, text in conn.execute("SELECT seq, text FROM o.rows WHERE seq > ? ORDER BY seq", (seen,)).fetchall():
            if text == "stop":
                return
            conn.execute("INSERT INTO rows (seq, text) VALUES (?, ?)", (seq, "re: " + text))
            seen = seq
        os.write(bell_out, b"!")


def measure(samples: int, warmup: int = 50) -> list[float]:
    """Milliseconds per round trip, `samples` of them."""
    folder = Path(tempfile.mkdtemp(prefix="nanoclaw-protocol-limit-"))
    try:
        for name in ("bell.in", "bell.out"):
            os.mkfifo(folder / name)
        conn = _open(folder / "a.db")
        _open(folder / "b.db").close()
        conn.execute("ATTACH DATABASE ? AS o", (f"file:{folder / 'b.db'}?mode=ro",))
        bell_in, bell_out = _bell(folder / "bell.in"), _bell(folder / "bell.out")
        child = subprocess.Popen([sys.executable, "-m", "benchmarks.protocol_limit", "--answer", str(folder)])
        try:
            _wait(bell_out)
            times = []
            for seq in range(1, warmup + samples + 1):
                start = time.perf_counter()
                conn.execute("INSERT INTO rows (seq, text) VALUES (?, 'ping')", (seq,))
                os.write(bell_in, b"!")
                while conn.execute("SELECT text FROM o.rows WHERE seq = ?", (seq,)).fetchone() is None:
                    _wait(bell_out)
                times.append((time.perf_counter() - start) * 1000)
            conn.execute("INSERT INTO rows (seq, text) VALUES (?, 'stop')", (warmup + samples + 1,))
            os.write(bell_in, b"!")
            child.wait(timeout=10)
        finally:
            child.kill()
            child.wait()
        return times[warmup:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--samples", type=int, default=2000, help="round trips [2000]")
    parser.add_argument("--answer", type=Path, help=argparse.SUPPRESS)  # the second process
    args = parser.parse_args()
    if args.answer is not None:
        answerer(args.answer)
        return
    from benchmarks._harness import emit, summary

    emit(summary("protocol_limit", measure(args.samples)), args.json)


if __name__ == "__main__":
    main()
