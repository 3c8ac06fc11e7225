"""Chaos: a stream of messages across many chats and agent groups while the host is SIGKILLed and
restarted at random and runners are killed; afterwards every message must be answered exactly once,
every one-off task must have run exactly once, and every database must pass integrity_check.

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
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cold_start import IMAGE_RUNTIMES, image_for

from benchmarks import ledger
from nanoclaw import db
from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, messaging_groups, tasks, wirings
from nanoclaw.host.bootstrap import first_run
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
    tokens = [f"MSG-{i:05d}" for i in range(args.messages)]
    progress(f"{args.messages} messages over {args.chats} chats, {args.groups} groups, {args.tasks} tasks…")
    while time.time() < deadline:
        burst = tokens[sent:sent + args.rate // 10]
        for token in burst:
            platform.execute("INSERT INTO inbox (msg_id, chat, text) VALUES (?,?,?)",
                             (token, f"c{rng.randrange(args.chats)}", f"hello {token}"))
        sent += len(burst)
        if time.time() >= next_kill and host_kills < args.kills:
            if rng.random() < 0.3 and kill_a_runner(home, args.runtime or "bwrap", rng):
                runner_kills += 1
            os.kill(host.pid, signal.SIGKILL)
            host.wait()
            host_kills += 1
            host = start_host(home, ledger_path, log, runtime)
            next_kill = time.time() + rng.uniform(0.5, 2.5) * pace
            progress(f"  kill {host_kills}: {sent} sent, {answered(platform)} answered")
        if (sent >= len(tokens) and host_kills >= args.kills and answered(platform) >= len(tokens)
                and answered(platform, "TASK-") >= args.tasks):
            break
        time.sleep(0.1)
    host.send_signal(signal.SIGTERM)
    host.wait(30)
    counts = {t: 0 for t in tokens}
    task_counts = {f"TASK-{i}": 0 for i in range(args.tasks)}
    for (text,) in platform.execute("SELECT text FROM outbox"):
        for word in text.split():
            word = word.strip(":,")
            if word in counts:
                counts[word] += 1
            if word in task_counts:
                task_counts[word] += 1
    return {
        "runtime": args.runtime or "bwrap", "messages": len(tokens), "chats": args.chats, "agent_groups": args.groups,
        "lost": sum(1 for c in counts.values() if c == 0),
        "duplicated": sum(1 for c in counts.values() if c > 1),
        "host_kills": host_kills, "runner_kills": runner_kills,
        "tasks": args.tasks, "tasks_not_once": sum(1 for c in task_counts.values() if c != 1),
        "tasks_missing": sum(1 for c in task_counts.values() if c == 0),
        "integrity_errors": len(integrity(home)), "seconds": round(time.time() - started, 1),
        "log": str(log),
    }


def answered(platform: sqlite3.Connection, prefix: str = "MSG-") -> int:
    return len({w for (t,) in platform.execute("SELECT text FROM outbox") for w in t.split() if w.startswith(prefix)})


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
