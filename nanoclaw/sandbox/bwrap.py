"""bubblewrap runtime: the Linux default; no image, starts in milliseconds.

The runner runs the host's own Python and venv, bind-mounted read-only at the
same paths, in fresh user, PID, IPC, UTS, cgroup and network namespaces.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from nanoclaw.errors import SandboxUnavailable
from nanoclaw.sandbox.base import Runtime, RuntimeCheck, SandboxProcess, SandboxSpec

INSTALL_HINT = "install bubblewrap: sudo apt-get install bubblewrap (Fedora: sudo dnf install bubblewrap)"
LABEL_VAR = "NANOCLAW_SANDBOX_LABEL"
SANDBOX_UID = 1000
# bwrap's own process (pid 1 inside, readable at /proc/1/environ) keeps the
# environment it was started with, so it is started with almost none.
LAUNCH_ENV = {"PATH": "/usr/bin:/bin"}
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few files from /etc a Python process and TLS clients need; nothing else of /etc.
_ETC = ("ld.so.cache", "ssl", "ca-certificates", "localtime", "alternatives", "nsswitch.conf", "mime.types")


class BwrapProcess(SandboxProcess):
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid

    async def wait(self) -> int:
        return await self.proc.wait()

    def kill(self) -> None:
        # --die-with-parent and the PID namespace take everything inside down with bwrap.
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


class BwrapRuntime(Runtime):
    name = "bwrap"

    def __init__(self, state_dir: Path, log_dir: Path | None = None) -> None:
        self.state_dir = state_dir
        self.log_dir = log_dir
        self._etc = self._write_identity_files()

    @classmethod
    def check(cls) -> RuntimeCheck:
        exe = shutil.which("bwrap")
        if not exe:
            return RuntimeCheck(False, "bwrap not found on PATH", INSTALL_HINT)
        probe = subprocess.run(
            [exe, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
            capture_output=True, text=True, timeout=10,
        )
        if probe.returncode != 0:
            return RuntimeCheck(
                False, f"bwrap cannot create namespaces: {probe.stderr.strip()[:200]}",
                "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root",
            )
        return RuntimeCheck(True, exe)

    def _write_identity_files(self) -> Path:
        """A passwd/group naming only the sandbox user, so the host's users stay hidden."""
        etc = self.state_dir / "bwrap-etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "passwd").write_text(f"agent:x:{SANDBOX_UID}:{SANDBOX_UID}:agent:/home/agent:/bin/sh\n")
        (etc / "group").write_text(f"agent:x:{SANDBOX_UID}:\n")
        (etc / "hostname").write_text("nanoclaw\n")
        return etc

    def command(self, spec: SandboxSpec) -> list[str]:
        exe = shutil.which("bwrap")
        if not exe:
            raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
        args = [
            exe, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "nanoclaw",
            "--clearenv", "--setenv", LABEL_VAR, spec.label,
            "--ro-bind", "/usr", "/usr",
            # tmpfs first: the project (and its venv) may itself live under /tmp.
            "--tmpfs", "/tmp", "--tmpfs", "/home/agent",
        ]
        for path in _SYSTEM_LINKS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for name in _ETC:
            if os.path.exists(f"/etc/{name}"):
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for name in ("passwd", "group", "hostname"):
            args += ["--ro-bind", str(self._etc / name), f"/etc/{name}"]
        for path in _python_paths():
            args += ["--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        for m in spec.mounts:
            args += ["--bind" if m.writable else "--ro-bind", str(m.source), m.target]
        for key, value in spec.env.items():
            args += ["--setenv", key, value]
        args += ["--chdir", spec.cwd, "--", *spec.argv]
        return args

    async def start(self, spec: SandboxSpec) -> SandboxProcess:
        args = self.command(spec)
        stderr = subprocess.DEVNULL
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stderr = open(self.log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, start_new_session=True,
                env=LAUNCH_ENV,
            )
        except FileNotFoundError as exc:
            raise SandboxUnavailable(f"cannot start bwrap: {exc}; {INSTALL_HINT}") from exc
        finally:
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        return BwrapProcess(proc)

    def stop_orphans(self, label: str) -> int:
        marker = f"\0{LABEL_VAR}\0{label}\0".encode()
        stopped = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if os.path.basename(cmdline.split(b"\0", 1)[0]) == b"bwrap" and marker in cmdline + b"\0":
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                    stopped += 1
                except ProcessLookupError:
                    pass
        return stopped


def _python_paths() -> list[str]:
    """The interpreter, the venv and NanoClaw's own package directory, each at its host path."""
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    package_dir = os.path.realpath(Path(__file__).resolve().parents[1])
    if not any(package_dir.startswith(p + os.sep) for p in paths):
        paths.add(package_dir)
    # Drop paths nested in others: bwrap mounts them already.
    ordered = sorted(paths)
    return [p for p in ordered if not any(p != q and p.startswith(q + os.sep) for q in ordered)]
