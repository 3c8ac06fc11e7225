"""The contract a sandbox runtime implements. Read this file to write one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048
    pids: int = 512
    wall_seconds: float | None = None


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


@dataclass(frozen=True)
class RuntimeCheck:
    ok: bool
    detail: str
    fix: str = ""


class SandboxProcess(ABC):
    pid: int

    @abstractmethod
    async def wait(self) -> int:
        """Wait for the sandbox to end; its exit code (negative = killed by that signal)."""

    @abstractmethod
    def kill(self) -> None:
        """Stop the sandbox and everything in it now."""


class Runtime(ABC):
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def check(cls) -> RuntimeCheck:
        """Whether this runtime can run here, and if not, how to fix it."""

    @abstractmethod
    async def start(self, spec: SandboxSpec) -> SandboxProcess:
        """Start the runner of `spec` inside a fresh sandbox."""

    @abstractmethod
    def stop_orphans(self, label: str) -> int:
        """Stop sandboxes with `label` left by an earlier host; how many were stopped."""
