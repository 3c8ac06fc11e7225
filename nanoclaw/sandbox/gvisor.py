"""gVisor runtime: the podman runtime with runsc as its OCI runtime, so a user-space kernel sits
between the agent and the host's.

Same image, mounts, limits, uid, labels and orphan cleanup as podman (this is
`OciRuntime` with a different `cli()`); what changes is what the agent's
system calls reach: gVisor's Sentry, not the host kernel. podman rather than
`runsc run` on a bundle of our own: podman already has the image store, the
cgroup limits and the labels, and measured here it costs ~0.2 s more per
start than runsc alone (docs/architecture.md).

What crosses gVisor's boundary, each proven by tests/integration/test_gvisor.py:
shared mmaps of mounted files (coherent both ways), FIFOs (with
`host-fifo=open`: doorbells work), connecting to the host's unix sockets
(`host-uds=open`: the vault proxy). What does not: POSIX file locks (the
Sentry keeps its own), which SQLite's WAL needs to share a database between
processes. So on this runtime the runner reaches its end of the session
through the host (protocol/link.py) instead of opening the databases itself.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import ClassVar

from nanoclaw.errors import SandboxUnavailable
from nanoclaw.sandbox.base import Limits, RuntimeCheck
from nanoclaw.sandbox.oci import DEFAULT_IMAGE, PodmanRuntime

RUNSC_FLAGS = (
    "network=none",  # no network stack at all; runsc refuses a sandbox network in the root namespace anyway
    "host-uds=open",  # connect to the host's unix sockets that are mounted in (the proxy, the session link)
    "host-fifo=open",  # open the host's FIFOs that are mounted in (the doorbells)
    "file-access-mounts=shared",  # mounts are changed by the host too: revalidate, map host pages directly
    # Also apply podman's seccomp profile inside the Sentry, so the agent meets the same refusals as on the
    # other runtimes. One quirk of runsc 20221219 with it: select(2) is refused (poll and epoll work).
    "oci-seccomp",
)
# The container's cgroup holds gVisor's own kernel (Sentry) and file proxy (gofer) as well as the agent:
# their Go threads and memory come on top of what the agent may use. With the ptrace platform each task
# of the agent costs the host a Sentry thread and a stub, hence pids times PIDS_PER_TASK.
KERNEL_PIDS = 256
PIDS_PER_TASK = 8
KERNEL_MEMORY_MB = 512  # the Sentry's own, and its memory file's copies of the agent's forked pages
INSTALL_HINT = "install gVisor and podman: sudo apt-get install runsc podman (then: nanoclaw sandbox build)"


def runsc_path() -> str | None:
    return shutil.which("runsc") or shutil.which("runsc", path="/usr/sbin:/usr/bin:/usr/local/bin")


class GvisorRuntime(PodmanRuntime):
    name = "gvisor"
    shares_file_locks: ClassVar[bool] = False

    @classmethod
    def cli(cls) -> list[str]:
        podman = shutil.which("podman")
        runsc = runsc_path()
        if not podman or not runsc:
            raise SandboxUnavailable(f"{'podman' if not podman else 'runsc'} is not installed; {INSTALL_HINT}")
        args = [podman, "--runtime", runsc]
        for flag in RUNSC_FLAGS:
            args += ["--runtime-flag", flag]
        return args

    def limit_args(self, limits: Limits) -> list[str]:
        """The agent's limits inside gVisor's kernel, the container's cgroup a wall around both.

        gVisor enforces the rlimits itself (a fork bomb meets RLIMIT_NPROC in the
        Sentry); the cgroup, which also holds the Sentry and the gofer, gets their
        share on top, so the agent's budget is the same as on the other runtimes.
        """
        memory = limits.memory_mb + KERNEL_MEMORY_MB
        args = ["--pids-limit", str(limits.pids * PIDS_PER_TASK + KERNEL_PIDS), "--memory", f"{memory}m",
                "--memory-swap", f"{memory}m", "--cpus", str(limits.cpus)]
        for ulimit in ("nofile=1024:1024", f"nproc={limits.pids}:{limits.pids}", f"fsize={limits.file_mb << 20}",
                       f"cpu={limits.cpu_seconds}", "core=0"):
            args += ["--ulimit", ulimit]
        return args

    @classmethod
    def install_hint(cls) -> str:
        return INSTALL_HINT

    @classmethod
    def check(cls) -> RuntimeCheck:
        runsc = runsc_path()
        if runsc is None:
            return RuntimeCheck(False, "runsc (gVisor) not found on PATH", INSTALL_HINT)
        podman = PodmanRuntime.check()
        if not podman.ok:
            return RuntimeCheck(False, f"gVisor runs through podman, and {podman.detail}",
                                podman.fix.replace("--runtime podman", "--runtime gvisor"))
        version = subprocess.run([runsc, "--version"], capture_output=True, text=True, timeout=30)
        first = (version.stdout.splitlines() or ["runsc"])[0]
        # A real start: the host may forbid what runsc needs (ptrace, namespaces, a rootless user).
        probe = subprocess.run([*cls.cli(), "run", "--rm", "--network", "none", "--read-only",
                                "--ulimit", "nofile=1024:1024", DEFAULT_IMAGE, "true"],
                               capture_output=True, text=True, timeout=120)
        if probe.returncode != 0:
            why = (probe.stderr.strip().splitlines() or ["no output"])[-1][:200]
            return RuntimeCheck(False, f"{first} cannot start a sandbox here: {why}",
                                "gVisor needs root (or rootless podman with runsc configured) and ptrace; "
                                "see `runsc help platforms`")
        return RuntimeCheck(True, f"{first} through {podman.detail}")
