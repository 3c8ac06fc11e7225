"""OCI runtimes: podman and docker, one implementation, the CLI chosen by name.

The runner comes from the image `nanoclaw sandbox build` makes (its own Python
and NanoClaw, see the package's Dockerfile); the host's files reach it only
through the spec's mounts. No network at all: the only way out is the proxy
socket in the session folder.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from nanoclaw.errors import SandboxUnavailable
from nanoclaw.logs import get_logger
from nanoclaw.sandbox import seccomp
from nanoclaw.sandbox.identity import SANDBOX_UID
from nanoclaw.sandbox.base import Launch, Limits, Runtime, RuntimeCheck, SandboxProcess, SandboxSpec

if TYPE_CHECKING:
    from nanoclaw.config import Settings

log = get_logger("nanoclaw.sandbox.oci")

DEFAULT_IMAGE = "localhost/nanoclaw-agent:latest"
IMAGE_PYTHON = "/opt/nanoclaw/bin/python"
LABEL_KEY = "org.nanoclaw.home"
# Without explicit rlimits runc may fail to apply the inherited ones; these are generous for one agent.
ULIMITS = ("nofile=1024:1024", "nproc=1024:1024")


def _force(cli: list[str]) -> list[str]:
    """`rm --force` kills at once: podman would first wait 10 s for the runner (PID 1, which ignores SIGTERM)."""
    return ["--force", "--time", "0"] if Path(cli[0]).name == "podman" else ["--force"]


class OciProcess(SandboxProcess):
    def __init__(self, proc: asyncio.subprocess.Process, cli: list[str], name: str) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.cli = cli
        self.name = name

    async def wait(self) -> int:
        return await self.proc.wait()

    def kill(self) -> None:
        # Killing the CLI client would leave the container running under its monitor.
        if self.proc.returncode is None:
            subprocess.Popen([*self.cli, "rm", *_force(self.cli), self.name],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class OciRuntime(Runtime):
    name: ClassVar[str]
    cli_name: ClassVar[str]

    def __init__(self, state_dir: Path, log_dir: Path | None = None, *, image: str = DEFAULT_IMAGE) -> None:
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.image = image or DEFAULT_IMAGE
        self._seccomp = seccomp.write_oci_profile(state_dir / "seccomp-oci.json") if self.cli_name == "podman" else None

    @classmethod
    def from_settings(cls, settings: Settings) -> OciRuntime:
        return cls(settings.state_dir, settings.logs_dir / "runners", image=settings.sandbox_image)

    @classmethod
    def cli(cls) -> list[str]:
        exe = shutil.which(cls.cli_name)
        if not exe:
            raise SandboxUnavailable(f"{cls.cli_name} is not installed; {cls.install_hint()}")
        extra = os.environ.get("NANOCLAW_OCI_RUNTIME")  # e.g. /usr/sbin/runc where crun is missing
        return [exe, "--runtime", extra] if extra and cls.cli_name == "podman" else [exe]

    @classmethod
    def install_hint(cls) -> str:
        return f"install {cls.cli_name}: sudo apt-get install {cls.cli_name}{' runc' if cls.cli_name == 'podman' else '.io'}"

    @classmethod
    def check(cls) -> RuntimeCheck:
        try:
            cli = cls.cli()
        except SandboxUnavailable:
            return RuntimeCheck(False, f"{cls.cli_name} not found on PATH", cls.install_hint())
        probe = subprocess.run([*cli, "version", "--format", "{{.Client.Version}}"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            return RuntimeCheck(False, f"{cls.cli_name} does not work: {probe.stderr.strip()[:200]}",
                                f"check `{cls.cli_name} info`")
        image = subprocess.run([*cli, "image", "exists" if cls.cli_name == "podman" else "inspect", DEFAULT_IMAGE],
                               capture_output=True, text=True, timeout=30)
        if image.returncode != 0:
            return RuntimeCheck(False, f"{cls.cli_name} {probe.stdout.strip()}, but image {DEFAULT_IMAGE} is missing",
                                f"nanoclaw sandbox build --runtime {cls.name}")
        return RuntimeCheck(True, f"{cls.cli_name} {probe.stdout.strip()}, image {DEFAULT_IMAGE}")

    def container_name(self, spec: SandboxSpec) -> str:
        return f"{spec.label}-{spec.name}"

    def launch(self, spec: SandboxSpec) -> Launch:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Values travel in the CLI's environment (`--env NAME` takes them from there), never in argv.
        return Launch(self.command(spec), {**os.environ, **spec.env}, cwd=str(self.state_dir))

    def command(self, spec: SandboxSpec) -> list[str]:
        args = [
            *self.cli(), "run", "--rm", "--interactive=false", "--name", self.container_name(spec),
            "--label", f"{LABEL_KEY}={spec.label}", "--hostname", "nanoclaw",
            "--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", f"{spec.uid}:{spec.uid}", *self._user_mapping(), *self.limit_args(spec.limits),
            "--tmpfs", "/tmp:rw,nosuid,nodev,size=256m",
            "--tmpfs", "/home/agent:rw,nosuid,nodev,size=64m,mode=1777",
        ]
        if self._seccomp is not None:
            args += ["--security-opt", f"seccomp={self._seccomp}"]
        for m in spec.mounts:
            args += ["--mount", f"type=bind,source={m.source},target={m.target}{'' if m.writable else ',readonly'}"]
        for key in spec.env:
            args += ["--env", key]
        argv = list(spec.argv)
        if argv and argv[0] == sys.executable:  # the spec names the host's interpreter; the image has its own
            argv[0] = IMAGE_PYTHON
        args += ["--workdir", spec.cwd, spec.image or self.image, *argv]
        return args

    def limit_args(self, limits: Limits) -> list[str]:
        """The flags that apply `limits` to the whole container."""
        args = ["--pids-limit", str(limits.pids), "--memory", f"{limits.memory_mb}m",
                "--memory-swap", f"{limits.memory_mb}m", "--cpus", str(limits.cpus)]
        for ulimit in (*ULIMITS, f"fsize={limits.file_mb << 20}", f"cpu={limits.cpu_seconds}", "core=0"):
            args += ["--ulimit", ulimit]
        return args

    def _user_mapping(self) -> list[str]:
        """Rootless podman: the sandbox user is the host user, so it can write the session's files."""
        if os.getuid() != 0 and self.cli_name == "podman":
            return ["--userns", f"keep-id:uid={SANDBOX_UID},gid={SANDBOX_UID}"]
        if os.getuid() != 0:
            return ["--user", f"{os.getuid()}:{os.getgid()}"]  # rootful docker for a non-root user
        return []


    async def start(self, spec: SandboxSpec) -> SandboxProcess:
        launch = await asyncio.to_thread(self.launch, spec)
        args = launch.argv
        out = subprocess.DEVNULL
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            # A container of the same name left by a crash would make `run` fail.
            await asyncio.to_thread(subprocess.run, [*self.cli(), "rm", *_force(self.cli()),
                                                      self.container_name(spec)], capture_output=True)
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, cwd=launch.cwd,
                env=launch.env,
            )
        except FileNotFoundError as exc:
            raise SandboxUnavailable(f"cannot start {self.cli_name}: {exc}; {self.install_hint()}") from exc
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        return OciProcess(proc, self.cli(), self.container_name(spec))

    def stop_orphans(self, label: str) -> int:
        try:
            cli = self.cli()
        except SandboxUnavailable:
            return 0
        found = subprocess.run([*cli, "ps", "--all", "--quiet", "--filter", f"label={LABEL_KEY}={label}"],
                               capture_output=True, text=True, timeout=60)
        ids = found.stdout.split()
        if ids:
            subprocess.run([*cli, "rm", *_force(cli), *ids], capture_output=True, timeout=120)
        return len(ids)


class PodmanRuntime(OciRuntime):
    name = "podman"
    cli_name = "podman"


class DockerRuntime(OciRuntime):
    name = "docker"
    cli_name = "docker"
