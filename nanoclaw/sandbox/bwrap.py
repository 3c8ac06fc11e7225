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
from typing import Callable

from nanoclaw.errors import SandboxUnavailable
from nanoclaw.protocol import adoption
from nanoclaw.sandbox import limits, processes, seccomp
from nanoclaw.sandbox.base import Launch, Runtime, RuntimeCheck, SandboxProcess, SandboxSpec
from nanoclaw.sandbox.identity import SANDBOX_UID

INSTALL_HINT = "install bubblewrap: sudo apt-get install bubblewrap (Fedora: sudo dnf install bubblewrap)"
LABEL_VAR = "NANOCLAW_SANDBOX_LABEL"
# The runner's environment is bwrap's own (never --setenv: argv is visible to every host user in
# `ps`, and it carries the session's proxy token). bwrap passes it on; nothing of the host's is in it.
LAUNCH_ENV = {"PATH": "/usr/bin:/bin"}
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few files from /etc a Python process and TLS clients need; nothing else of /etc.
_ETC = ("ld.so.cache", "ssl", "ca-certificates", "localtime", "alternatives", "nsswitch.conf", "mime.types")




class BwrapProcess(SandboxProcess):
    def __init__(self, proc: asyncio.subprocess.Process, cleanup: Callable[[], None],
                 ready_fd: int | None = None) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.cleanup = cleanup
        self.ready_fd = ready_fd  # a pooled sandbox: the read end of its runner's stdout, until it said ready

    async def wait(self) -> int:
        code = await self.proc.wait()
        if self.proc.stdin is not None:  # a pooled sandbox's pipe: its transport ends with the process
            self.proc.stdin.close()
        self._close_ready()
        cleanup, self.cleanup = self.cleanup, lambda: None  # once, however many wait
        cleanup()
        return code

    async def ready(self) -> bool:
        if self.ready_fd is None:
            raise RuntimeError("not a pooled sandbox, or asked twice")
        fd, loop, line = self.ready_fd, asyncio.get_running_loop(), b""
        try:
            # One short line; the runner then points its stdout elsewhere, so the pipe is closed after it.
            while not line.endswith(b"\n") and len(line) <= len(adoption.READY):
                readable = loop.create_future()
                loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
                chunk = os.read(fd, 64)
                if not chunk:
                    break  # it died first
                line += chunk
        finally:
            self._close_ready()
        return line == adoption.READY

    def _close_ready(self) -> None:
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None

    def hold_folder(self) -> None:
        if self.proc.stdin is None:
            raise RuntimeError("not a pooled sandbox")
        self.proc.stdin.write(adoption.HOLD)

    def adopt(self, remounted: bool = True) -> None:
        if self.proc.stdin is None:
            raise RuntimeError("not a pooled sandbox")
        processes.renice(self.pid, 0)
        self.proc.stdin.write(adoption.ADOPT_REMOUNTED if remounted else adoption.ADOPT)

    def kill(self) -> None:
        # --die-with-parent and the PID namespace take everything inside down with bwrap.
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


class BwrapRuntime(Runtime):
    name = "bwrap"
    adoptable = True  # on a root host (sandbox/attach.py says whether this one can)

    def __init__(self, state_dir: Path, log_dir: Path | None = None) -> None:
        self.state_dir = state_dir
        self.log_dir = log_dir
        self._seccomp = seccomp.write_filter(state_dir / "seccomp.bpf")

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

    def _identity_files(self, uid: int) -> Path:
        """A passwd/group naming only the sandbox user (its group's uid), so the host's users stay hidden."""
        etc = self.state_dir / "bwrap-etc" / str(uid)
        if not (etc / "hostname").is_file():
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "passwd").write_text(f"agent:x:{uid}:{uid}:agent:/home/agent:/bin/sh\n")
            (etc / "group").write_text(f"agent:x:{uid}:\n")
            (etc / "hostname").write_text("nanoclaw\n")
        return etc

    def launch(self, spec: SandboxSpec) -> Launch:
        exe = shutil.which("bwrap")
        if not exe:
            raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
        seccomp_fd = os.open(self._seccomp, os.O_RDONLY)
        scope = limits.systemd_scope(spec.limits)
        cgroup = None if scope else limits.make_cgroup(f"nanoclaw-{spec.label}", spec.name, spec.limits)
        rlimits = limits.rlimits(spec.limits, contained=bool(scope or cgroup))
        argv = [*scope, exe, *self._arguments(spec, seccomp_fd)]

        def cleanup() -> None:
            if cgroup is not None:
                cgroup.remove()

        preexec = limits.preexec(cgroup, rlimits)
        if spec.pooled:  # warming up must not slow a live turn: a lower priority, restored at adoption
            preexec = _niced(preexec)
        return Launch(argv, {**LAUNCH_ENV, **spec.env}, preexec, (seccomp_fd,), cleanup)

    def _arguments(self, spec: SandboxSpec, seccomp_fd: int) -> list[str]:
        if os.getuid() == 0:
            # No user namespace: inside it, uid 1000 would be the host's uid 0, which passes
            # root-only kernel checks (/proc/sys writes). setpriv drops to a plain uid instead.
            args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
            command = [_setpriv(), "--reuid", str(spec.uid), "--regid", str(spec.uid), "--clear-groups",
                       "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *spec.argv]
        else:
            args = ["--unshare-all", "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
            command = list(spec.argv)
        args += [
            "--die-with-parent", "--new-session", "--hostname", "nanoclaw",
            "--setenv", LABEL_VAR, spec.label,
            "--ro-bind", "/usr", "/usr",
            # tmpfs first: the project (and its venv) may itself live under /tmp.
            "--perms", "1777", "--tmpfs", "/tmp", "--perms", "0755", "--dir", "/home",
            "--perms", "1777", "--tmpfs", "/home/agent", "--perms", "0755", "--dir", "/etc",
        ]
        made = {"/", "/tmp", "/home", "/home/agent", "/etc"}
        for path in _SYSTEM_LINKS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for name in _ETC:
            if os.path.exists(f"/etc/{name}"):
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        etc = self._identity_files(spec.uid if os.getuid() == 0 else SANDBOX_UID)
        for name in ("passwd", "group", "hostname"):
            args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
        for path in _python_paths():
            args += [*_parents(path, made), "--ro-bind", path, path]
            made.add(path)
        args += ["--proc", "/proc", "--dev", "/dev"]
        for m in spec.mounts:
            args += [*_parents(m.target, made), "--bind" if m.writable else "--ro-bind", str(m.source), m.target]
            made.add(m.target)
        # The filter applies to the runner and everything it starts, after bwrap has set up.
        args += ["--seccomp", str(seccomp_fd), "--chdir", spec.cwd, "--", *command]
        return args

    async def start(self, spec: SandboxSpec) -> SandboxProcess:
        launch = self.launch(spec)
        out = subprocess.DEVNULL
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - handed to the child
        # A pooled runner's stdin and stdout are pipes to the host: adoption in, readiness out (a plain pipe
        # the host reads once and closes).
        ready_fd, ready_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK) if spec.pooled else (None, None)
        stdin, stdout = (subprocess.PIPE, ready_w) if spec.pooled else (subprocess.DEVNULL, out)
        try:
            proc = await asyncio.create_subprocess_exec(
                *launch.argv, stdin=stdin, stdout=stdout, stderr=out, start_new_session=True,
                env=launch.env, preexec_fn=launch.preexec, pass_fds=launch.pass_fds,
            )
        except (FileNotFoundError, subprocess.SubprocessError) as exc:
            launch.cleanup()
            if ready_fd is not None:
                os.close(ready_fd)
            raise SandboxUnavailable(f"cannot start bwrap: {exc}; {INSTALL_HINT}") from exc
        finally:
            for fd in launch.pass_fds:
                os.close(fd)
            if out is not subprocess.DEVNULL:
                out.close()
            if ready_w is not None:
                os.close(ready_w)
        return BwrapProcess(proc, launch.cleanup, ready_fd)

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


def _niced(preexec: Callable[[], None] | None) -> Callable[[], None]:
    def run() -> None:
        if preexec is not None:
            preexec()
        os.nice(processes.POOLED_NICE)

    return run


def _parents(target: str, made: set[str]) -> list[str]:
    """Create the folders above a mount point 0755: bwrap makes them 0700, closed to the sandbox user."""
    args: list[str] = []
    for parent in reversed(Path(target).parents):
        if str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _setpriv() -> str:
    exe = shutil.which("setpriv", path="/usr/bin:/bin")
    if not exe:
        raise SandboxUnavailable("setpriv is missing; install util-linux: sudo apt-get install util-linux")
    return exe


def _python_paths() -> list[str]:
    """The interpreter, the venv and NanoClaw's own package directory, each at its host path."""
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    package_dir = os.path.realpath(Path(__file__).resolve().parents[1])
    if not any(package_dir.startswith(p + os.sep) for p in paths):
        paths.add(package_dir)
    # Drop paths nested in others: bwrap mounts them already.
    ordered = sorted(paths)
    return [p for p in ordered if not any(p != q and p.startswith(q + os.sep) for q in ordered)]
