"""Chaos: a stream of messages across many chats and agent groups while the host is SIGKILLed and
restarted at random and runners are killed; afterwards the person must have received everything exactly
once, every one-off task must have run exactly once, and every database must pass integrity_check.

Everything the person receives is counted, not only final answers: a share of the messages make their
turn send a progress message mid-turn (send_message) and then work a while, so kills land mid-turn
after it went out; others send a card or a file. `lost` and `duplicated` are over all of them
(`messages_counted`: answers, `progress_messages`, `cards`, `files`); `turns_rerun` counts turns a kill
interrupted, and `progress_then_interrupted` those that had sent their progress message before it.

    python -m benchmarks.chaos --json            # 1,000 messages, 20 chats, 5 groups, >= 20 host kills
    python -m benchmarks.chaos --runtime gvisor --json   # the same on another sandbox runtime

On an image runtime (podman, gvisor) a runner kill is a SIGKILL of one of this run's containers (found by
its label): under gVisor the runner is not a host process at all.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.cold_start import IMAGE_RUNTIMES, image_for

from benchmarks import ledger
from nanoclaw import db
from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, messaging_groups, tasks, wirings
from nanoclaw.host.bootstrap import first_run
from nanoclaw.protocol.messages import turn_of
from nanoclaw.sandbox.base import label_for as sandbox_label


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare(home: Path, groups: int, chats: int, task_count: int, start: float) -> list[str]:
    settings = Settings(home=home, provider="mock", web_port=0, disk_quota_mb=0)
    conn = db.connect(settings.db_path)
    first_run(conn, settings)
    names = ["main"] + [f"g{i}" for i in range(1, groups)]
    for name in names[1:]:
        agent_groups.create(conn, name)
    chat_ids = []
    for i in range(chats):
        chat = messaging_groups.upsert(conn, "ledger", f"c{i}")
        wirings.wire(conn, chat.id, names[i % groups], trigger="always", session_mode="shared")
        chat_ids.append(chat.id)
    task_ids = []
    for i in range(task_count):
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + 5 + i * 4))
        task = tasks.create(conn, agent_group_id=names[i % groups], prompt=f"TASK-{i}", kind="once", spec=at,
                            timezone="UTC", next_run=start + 5 + i * 4, messaging_group_id=chat_ids[i % chats])
        task_ids.append(task.id)
    conn.close()
    return task_ids


def start_host(home: Path, ledger_path: Path, log: Path, runtime: list[str]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "benchmarks.chaos_host", str(home), str(ledger_path), *runtime],
                                stdout=out, stderr=out, start_new_session=True)


def kill_a_runner(home: Path, runtime: str, rng: random.Random) -> bool:
    """SIGKILL one runner of this run's host; False when none is running."""
    if runtime in IMAGE_RUNTIMES:
        found = subprocess.run(["podman", "ps", "--format", "{{.Names}}", "--filter",
                                f"label=org.nanoclaw.home={sandbox_label(home)}"], capture_output=True, text=True)
        names = found.stdout.split()
        if names:
            subprocess.run(["podman", "kill", "--signal", "KILL", rng.choice(names)], capture_output=True)
        return bool(names)
    pids = runner_pids(home)
    if pids:
        try:
            os.kill(rng.choice(pids), signal.SIGKILL)
        except ProcessLookupError:  # it finished between the listing and the kill
            return False
    return bool(pids)


def runner_pids(home: Path) -> list[int]:
    """Runners of this run's host only (their sandbox label names its home): never another host's on the machine."""
    marker = f"\0NANOCLAW_SANDBOX_LABEL={sandbox_label(home)}\0".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                env = b"\0" + Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if b"nanoclaw.runner" in cmd and not cmd.startswith(b"/usr/bin/bwrap") and marker in env:
                pids.append(int(entry))
    return pids


def message(i: int, rng: random.Random) -> tuple[str, list[str]]:
    """The text of message i and the tokens the person must receive once each because of it."""
    token = f"MSG-{i:05d}"
    roll = rng.random()
    if roll < 0.3:  # progress, then work long enough for kills to land mid-turn
        return (f"hello {token} [mock:say=PROGRESS-{i:05d}][mock:sleep={rng.uniform(0.3, 1.5):.2f}]",
                [token, f"PROGRESS-{i:05d}"])
    if roll < 0.36:
        return f"hello {token} [mock:card=CARD-{i:05d}][mock:sleep=0.3]", [token, f"CARD-{i:05d}"]
    if roll < 0.42:
        return f"hello {token} [mock:file=FILE-{i:05d}.txt][mock:sleep=0.3]", [token, f"FILE-{i:05d}"]
    return f"hello {token}", [token]


_TOKEN = {"answer": re.compile(r"\b(?:MSG|TASK)-\d+\b"), "progress": re.compile(r"PROGRESS-\d{5}"),
          "card": re.compile(r"CARD-\d{5}"), "file": re.compile(r"FILE-\d{5}")}


def received(platform: sqlite3.Connection) -> Counter[str]:
    """How often each token reached the person: answers (the mock's echo), progress messages, cards, files."""
    counts: Counter[str] = Counter()
    for kind, text, file_name in platform.execute("SELECT kind, text, file_name FROM outbox"):
        if kind == "file":
            counts.update(_TOKEN["file"].findall(file_name or ""))
        elif kind == "card":
            counts.update(_TOKEN["card"].findall(text))
        elif text.startswith("[mock]"):  # an answer echoes its messages, directives included: only their ids
            counts.update(_TOKEN["answer"].findall(text))
        elif _TOKEN["progress"].fullmatch(text):
            counts[text] += 1
    return counts


def mid_turn(platform: sqlite3.Connection) -> bool:
    """Whether some message's progress message reached the person and its answer has not yet."""
    counts = received(platform)
    return any(counts[f"MSG-{t[9:]}"] == 0 for t in counts if t.startswith("PROGRESS-"))


def interrupted_turns(home: Path) -> tuple[int, int]:
    """Turns a kill interrupted (their answer came from a later run), and those of them whose progress
    message had already been written by an earlier run: the case that used to reach the person twice."""
    rerun = progress_first = 0
    for path in home.glob("sessions/*/*/outbound.db"):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        runs: dict[int, set[int]] = {}
        progress_runs: dict[int, set[int]] = {}
        try:
            rows = conn.execute("SELECT id, text FROM messages_out WHERE kind = 'chat'").fetchall()
        except sqlite3.OperationalError:  # made by a host killed before its tables; no host opened it since
            rows = []
        for out_id, text in rows:
            turn = turn_of(out_id)
            if turn is None:
                continue
            runs.setdefault(turn[0], set()).add(turn[1])
            if _TOKEN["progress"].fullmatch(text or ""):
                progress_runs.setdefault(turn[0], set()).add(turn[1])
        conn.close()
        for turn, seen in runs.items():
            if max(seen) > 0:
                rerun += 1
                if any(run < max(seen) for run in progress_runs.get(turn, ())):
                    progress_first += 1
    return rerun, progress_first


def integrity(home: Path) -> list[str]:
    bad = []
    for path in [home / "nanoclaw.db", *home.glob("sessions/*/*/*.db")]:
        # Read-write like the next host would: a killed writer's WAL needs recovery, which mode=ro refuses.
        conn = sqlite3.connect(path)
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        conn.close()
        if result != "ok":
            bad.append(f"{path}: {result}")
    return bad


def run(args: argparse.Namespace) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="nanoclaw-chaos-"))
    home, ledger_path, log = workdir / "home", workdir / "ledger.db", workdir / "host.log"
    os.environ["XDG_CONFIG_HOME"] = str(workdir / "config")  # the hosts never touch the owner's config
    rng = random.Random(args.seed)
    started = time.time()
    task_ids = prepare(home, args.groups, args.chats, args.tasks, started)
    platform = ledger.connect(ledger_path)
    runtime = [args.runtime, image_for(args.runtime)] if args.runtime else []
    host = start_host(home, ledger_path, log, runtime)
    host_kills = runner_kills = sent = 0
    # A host's start includes its sandboxes': kill it no faster than its runners can answer between kills.
    pace = 4.0 if args.runtime in IMAGE_RUNTIMES else 1.0
    next_kill = time.time() + rng.uniform(0.5, 2.0) * pace
    deadline = time.time() + args.timeout
    messages = [message(i, rng) for i in range(args.messages)]
    expected = {token for _, tokens in messages for token in tokens} | {f"TASK-{i}" for i in range(args.tasks)}
    progress(f"{args.messages} messages over {args.chats} chats, {args.groups} groups, {args.tasks} tasks…")
    while time.time() < deadline:
        burst = messages[sent:sent + args.rate // 10]
        for i, (text, _tokens) in enumerate(burst, start=sent):
            platform.execute("INSERT INTO inbox (msg_id, chat, text) VALUES (?,?,?)",
                             (f"MSG-{i:05d}", f"c{rng.randrange(args.chats)}", text))
        sent += len(burst)
        # A kill waits a moment for a turn caught mid-way: its progress message out, its answer not yet.
        due = time.time() >= next_kill and (time.time() >= next_kill + 1.5 * pace or mid_turn(platform))
        if due and host_kills < args.kills:
            if rng.random() < 0.3 and kill_a_runner(home, args.runtime or "bwrap", rng):
                runner_kills += 1
            os.kill(host.pid, signal.SIGKILL)
            host.wait()
            host_kills += 1
            host = start_host(home, ledger_path, log, runtime)
            next_kill = time.time() + rng.uniform(0.5, 2.5) * pace
            progress(f"  kill {host_kills}: {sent} sent, {len(expected & set(received(platform)))} of "
                     f"{len(expected)} received")
        if sent >= len(messages) and host_kills >= args.kills and expected <= set(received(platform)):
            break
        time.sleep(0.1)
    host.send_signal(signal.SIGTERM)
    host.wait(30)
    counts = received(platform)
    every = [t for t in expected if not t.startswith("TASK-")]
    task_counts = [counts[f"TASK-{i}"] for i in range(args.tasks)]
    rerun, progress_first = interrupted_turns(home)
    return {
        "runtime": args.runtime or "bwrap", "messages": len(messages), "chats": args.chats,
        "agent_groups": args.groups, "messages_counted": len(every),
        "progress_messages": sum(1 for t in every if t.startswith("PROGRESS-")),
        "cards": sum(1 for t in every if t.startswith("CARD-")),
        "files": sum(1 for t in every if t.startswith("FILE-")),
        "lost": sum(1 for t in every if counts[t] == 0),
        "duplicated": sum(1 for t in every if counts[t] > 1),
        "host_kills": host_kills, "runner_kills": runner_kills,
        "turns_rerun": rerun, "progress_then_interrupted": progress_first,
        "tasks": args.tasks, "tasks_not_once": sum(1 for c in task_counts if c != 1),
        "tasks_missing": sum(1 for c in task_counts if c == 0),
        "integrity_errors": len(integrity(home)), "seconds": round(time.time() - started, 1),
        "log": str(log),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=8, help="one-off tasks due during the run")
    parser.add_argument("--kills", type=int, default=22, help="host SIGKILLs")
    parser.add_argument("--rate", type=int, default=40, help="messages per second")
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runtime", help="sandbox runtime of the hosts (bwrap, podman, gvisor) [bwrap]")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
