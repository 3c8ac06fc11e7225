"""Probes that only make sense under gVisor: the kernel the agent meets is gVisor's, and what of the
session protocol crosses its boundary (each fact checked here decides how sessions run on it).

The boundary facts also run on podman (runc, the host's kernel) as the control: there the same
probe gives the other answer, so each test can fail for the property its name claims.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import select
import subprocess
import sys
import textwrap
import time
import dataclasses
from pathlib import Path

import pytest

from nanoclaw.host.app import Host
from nanoclaw.protocol.doorbell import Doorbell
from tests.security.probe import popen_sandbox, run_in_sandbox, session_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
gvisor_only = pytest.mark.parametrize("runtime_name", ["gvisor"], indirect=True)
with_control = pytest.mark.parametrize("runtime_name", ["podman", "gvisor"], indirect=True)


@pytest.fixture
def session(jail: Host) -> str:
    return session_for(jail, "main")


def _folder(jail: Host, session: str) -> Path:
    jail.sessions.end(session)  # the folder and its files exist, as before a start
    return jail.sessions.folder(jail.sessions.get(session)).root


def _start(jail: Host, session: str, code: str) -> subprocess.Popen[str]:
    spec = jail.sessions.sandbox_spec(jail.sessions.get(session), jail.label)
    spec = dataclasses.replace(spec, argv=[sys.executable, "-I", "-c", textwrap.dedent(code)])
    return popen_sandbox(jail.runtime, spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, object]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


# --- The kernel the agent sees -------------------------------------------------------------------

@gvisor_only
def test_gvisor_the_kernel_the_agent_sees_is_gvisors(jail: Host, session: str) -> None:
    seen = run_in_sandbox(jail, session, """
        import json, os, subprocess
        dmesg = subprocess.run(["dmesg"], capture_output=True, text=True)
        print(json.dumps({"release": os.uname().release, "version": open("/proc/version").read(),
                          "dmesg": dmesg.stdout + dmesg.stderr}))
    """)
    host = os.uname()
    assert seen["release"] != host.release and host.release not in str(seen["version"])
    # The agent (no capabilities) may not read the kernel log; where it may, the log is gVisor's own.
    assert "gVisor" in str(seen["dmesg"]) or "Operation not permitted" in str(seen["dmesg"]), seen["dmesg"]
    assert "Linux version" not in str(seen["dmesg"])


@gvisor_only
def test_gvisor_host_kernel_interfaces_are_absent(jail: Host, session: str) -> None:
    seen = run_in_sandbox(jail, session, """
        import json, os
        def there(p):
            try:
                with open(p, "rb") as f: return f.read(256).decode(errors="replace")
            except OSError as e: return None
        print(json.dumps({p: there(p) for p in ("/proc/kallsyms", "/proc/modules", "/proc/sys/kernel/random/boot_id",
                                                "/proc/sys/kernel/osrelease", "/sys/kernel/debug/tracing/trace",
                                                "/proc/self/mountinfo", "/dev/kvm", "/proc/kcore")}
                         | {"sys_class_net": os.listdir("/sys/class/net") if os.path.isdir("/sys/class/net") else []}))
    """)
    assert seen["/proc/kallsyms"] in (None, "") and seen["/proc/modules"] in (None, "")
    assert seen["/proc/kcore"] is None and seen["/dev/kvm"] is None and seen["/sys/kernel/debug/tracing/trace"] is None
    host_boot = Path("/proc/sys/kernel/random/boot_id").read_text()
    assert seen["/proc/sys/kernel/random/boot_id"] != host_boot
    assert seen["/proc/sys/kernel/osrelease"] in (None, "") or os.uname().release not in str(seen["/proc/sys/kernel/osrelease"])
    # runc's mountinfo names the host folders behind each mount; gVisor's names none.
    assert str(jail.settings.home) not in str(seen["/proc/self/mountinfo"])
    assert set(seen["sys_class_net"]) <= {"lo"}  # type: ignore[arg-type]


# --- What crosses the boundary: the facts behind how sessions run on gVisor ------------------------

@with_control
def test_gvisor_file_locks_do_not_cross_the_boundary(jail: Host, session: str, runtime_name: str) -> None:
    """SQLite's WAL coordinates host and runner with POSIX locks: under gVisor the sandbox does not see the
    host's, so the runner cannot open the session's databases itself (protocol/link.py instead)."""
    lockfile = _folder(jail, session) / "lock-probe"
    lockfile.write_bytes(b"\0" * 8)
    os.chmod(lockfile, 0o666)
    fd = os.open(lockfile, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)  # the host holds byte 0, as SQLite would
        seen = run_in_sandbox(jail, session, """
            import errno, fcntl, json, os
            fd = os.open("/workspace/lock-probe", os.O_RDWR)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0); got = "acquired"
            except OSError as e:
                got = errno.errorcode[e.errno]
            print(json.dumps({"lock": got}))
        """)
    finally:
        os.close(fd)
    assert seen["lock"] == ("acquired" if runtime_name == "gvisor" else "EAGAIN"), seen
    assert jail.runtime.shares_file_locks is (runtime_name != "gvisor")


@gvisor_only
def test_gvisor_shared_mmaps_of_mounted_files_are_coherent_both_ways(jail: Host, session: str) -> None:
    """SQLite's -shm is a shared mmap: host and sandbox see each other's writes (file-access-mounts=shared)."""
    path = _folder(jail, session) / "shm-probe"
    path.write_bytes(b"\0" * 4096)
    os.chmod(path, 0o666)
    proc = _start(jail, session, """
        import json, mmap, os, time
        m = mmap.mmap(os.open("/workspace/shm-probe", os.O_RDWR), 4096, mmap.MAP_SHARED)
        deadline = time.time() + 30
        while m[0:5] != b"HELLO" and time.time() < deadline: time.sleep(0.01)
        seen = bytes(m[0:5]).decode(errors="replace")
        m[8:13] = b"WORLD"
        print(json.dumps({"seen": seen}))
    """)
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 4096, mmap.MAP_SHARED)
        m[0:5] = b"HELLO"
        deadline = time.monotonic() + 60
        while m[8:13] != b"WORLD" and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        host_saw = bytes(m[8:13])
        m.close()
    assert _finish(proc)["seen"] == "HELLO" and host_saw == b"WORLD"


@with_control
def test_gvisor_doorbell_fifos_ring_both_ways(jail: Host, session: str) -> None:
    """The doorbells are host FIFOs (runsc --host-fifo=open): a ring crosses in each direction."""
    root = _folder(jail, session)
    bell_in, bell_out = Doorbell(root / "bell.in"), Doorbell(root / "bell.out")
    try:
        proc = _start(jail, session, """
            import json, select
            from pathlib import Path
            from nanoclaw.protocol.doorbell import Doorbell
            bell_in, bell_out = Doorbell(Path("/workspace/bell.in")), Doorbell(Path("/workspace/bell.out"))
            bell_out.ring()
            watch = select.epoll()  # what the runner's event loop waits with
            watch.register(bell_in.fileno(), select.EPOLLIN)
            heard = bool(watch.poll(30))
            print(json.dumps({"heard": heard}))
        """)
        rang = bool(select.select([bell_out.fileno()], [], [], 60)[0])
        bell_in.ring()
        assert _finish(proc)["heard"] is True and rang
    finally:
        bell_in.close()
        bell_out.close()
    assert jail.runtime.doorbells
