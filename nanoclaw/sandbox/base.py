"""The contract a sandbox runtime implements. Read this file to write one."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar

from nanoclaw.sandbox.identity import SANDBOX_UID

if TYPE_CHECKING:
    from nanoclaw.config import Settings


def label_for(home: Path) -> str:
    """The label of every sandbox a NanoClaw home starts: orphan cleanup (and tests) find exactly its own."""
    return "nc-" + hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048
    pids: int = 512
    cpus: float = 1.0
    cpu_seconds: int = 3600  # per process; a runaway loop is killed, the runner restarts
    file_mb: int = 1024  # largest file a sandbox may write


@dataclass
class Launch:
    """How to start one sandbox as a child process (tests start probes the same way)."""

    argv: list[str]
    env: dict[str, str]
    preexec: Callable[[], None] | None = None
    pass_fds: tuple[int, ...] = ()
    cleanup: Callable[[], None] = lambda: None  # after the sandbox ended
    cwd: str | None = None  # where the launcher runs (podman's monitor drops an `oom` file there)


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a runtime needs to start one runner."""

    label: str  # identifies sandboxes of one NanoClaw home, for orphan cleanup
    name: str  # unique per session
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    cwd: str
    limits: Limits = field(default_factory=Limits)
    image: str | None = None  # image runtimes: this instead of their default (a group's own packages)
    uid: int = SANDBOX_UID  # the agent's uid: its group's own on a root host (sandbox/identity.py)
    # A pooled sandbox (host/pool.py): its runner reports readiness on stdout and waits on stdin for the host
    # to mount a session into it; it starts at a lower CPU priority, restored at adoption.
    pooled: bool = False


@dataclass(frozen=True)
class RuntimeCheck:
    ok: bool
    detail: str
    fix: str = ""


class SandboxProcess(ABC):
    pid: int

    async def ready(self) -> bool:
        """A pooled sandbox: wait until its runner has done all that needs no session (False: it died)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be pooled")

    def hold_folder(self) -> None:
        """A pooled sandbox: a blank session folder is mounted on /workspace; the runner opens it now."""
        raise NotImplementedError(f"{type(self).__name__} cannot be pooled")

    def adopt(self, remounted: bool = True) -> None:
        """A pooled sandbox: it serves a session now, at normal CPU priority. `remounted`: the session's folder
        was mounted over /workspace (the runner opens it again); else the folder it holds became the session's."""
        raise NotImplementedError(f"{type(self).__name__} cannot be pooled")

    @abstractmethod
    async def wait(self) -> int:
        """Wait for the sandbox to end; its exit code (negative = killed by that signal)."""

    @abstractmethod
    def kill(self) -> None:
        """Stop the sandbox and everything in it now."""


class Runtime(ABC):
    name: ClassVar[str]
    doorbells: ClassVar[bool] = True  # FIFOs reach the sandbox (not across a VM boundary)
    # start(spec) with spec.pooled works: its mounts reach a running sandbox (where sandbox/attach.py can).
    adoptable: ClassVar[bool] = False
    # POSIX file locks reach the sandbox, so host and runner may share the session's SQLite files
    # (WAL needs them). Where they do not (gVisor's own kernel), the runner's end goes through the host.
    shares_file_locks: ClassVar[bool] = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """The runtime as the host uses it: its state and runner logs under the home."""
        return cls(settings.state_dir, settings.logs_dir / "runners")  # type: ignore[call-arg]

    @classmethod
    @abstractmethod
    def check(cls) -> RuntimeCheck:
        """Whether this runtime can run here, and if not, how to fix it."""

    @abstractmethod
    def launch(self, spec: SandboxSpec) -> Launch:
        """The command, environment and set-up that start `spec` (the caller closes pass_fds)."""

    @abstractmethod
    async def start(self, spec: SandboxSpec) -> SandboxProcess:
        """Start the runner of `spec` inside a fresh sandbox."""

    @abstractmethod
    def stop_orphans(self, label: str) -> int:
        """Stop sandboxes with `label` left by an earlier host; how many were stopped."""
