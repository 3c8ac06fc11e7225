"""Apple's `container` CLI (macOS 26, Apple silicon): each sandbox a lightweight Linux VM.

The same image and limits as podman/docker, as far as the CLI allows: no
pids limit and no seccomp profile flag (the VM boundary stands in for both),
and networks instead of `--network none`: the sandbox joins an internal,
host-only network, and its way out is still only the proxy socket.

Doorbells are FIFOs, which do not cross the VM boundary, so sessions on this
runtime poll. Experimental: it is tested here against a stand-in `container`
executable that records its arguments, not on a Mac.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

from nanoclaw.errors import SandboxUnavailable
from nanoclaw.sandbox.base import RuntimeCheck, SandboxSpec
from nanoclaw.sandbox.oci import DEFAULT_IMAGE, IMAGE_PYTHON, LABEL_KEY, OciRuntime
from nanoclaw.sandbox.identity import SANDBOX_UID

NETWORK = "nanoclaw-internal"


class AppleRuntime(OciRuntime):
    name = "apple"
    cli_name = "container"
    doorbells: ClassVar[bool] = False

    @classmethod
    def install_hint(cls) -> str:
        return "install Apple's container tool (github.com/apple/container, macOS 26 on Apple silicon), then run: container system start"

    @classmethod
    def check(cls) -> RuntimeCheck:
        try:
            cli = cls.cli()
        except SandboxUnavailable:
            return RuntimeCheck(False, f"{cls.cli_name} not found on PATH", cls.install_hint())
        status = subprocess.run([*cli, "system", "status"], capture_output=True, text=True, timeout=30)
        if status.returncode != 0:
            return RuntimeCheck(False, "the container system service is not running", "container system start")
        image = subprocess.run([*cli, "image", "inspect", DEFAULT_IMAGE], capture_output=True, text=True, timeout=30)
        if image.returncode != 0:
            return RuntimeCheck(False, f"image {DEFAULT_IMAGE} is missing", "nanoclaw sandbox build --runtime apple")
        return RuntimeCheck(True, f"container, image {DEFAULT_IMAGE}")

    def command(self, spec: SandboxSpec) -> list[str]:
        self._ensure_network()
        limits = spec.limits
        args = [
            *self.cli(), "run", "--rm", "--name", self.container_name(spec),
            "--label", f"{LABEL_KEY}={spec.label}", "--network", NETWORK, "--no-dns",
            "--read-only", "--cap-drop", "ALL", "--user", f"{SANDBOX_UID}:{SANDBOX_UID}",
            "--memory", f"{limits.memory_mb}M", "--cpus", str(max(1, round(limits.cpus))),
            "--tmpfs", "/tmp", "--tmpfs", "/home/agent",
            "--ulimit", f"nproc={limits.pids}:{limits.pids}", "--ulimit", f"fsize={limits.file_mb << 20}",
            "--ulimit", f"cpu={limits.cpu_seconds}", "--ulimit", "core=0",
        ]
        for m in spec.mounts:
            args += ["--mount", f"type=bind,source={m.source},target={m.target}{'' if m.writable else ',readonly'}"]
        args += ["--env-file", str(self._env_file(spec))]
        argv = list(spec.argv)
        if argv and argv[0] == sys.executable:
            argv[0] = IMAGE_PYTHON
        return [*args, "--workdir", spec.cwd, spec.image or self.image, *argv]

    def _env_file(self, spec: SandboxSpec) -> Path:
        """The environment as a 0600 file in a 0700 folder: never in argv, where `ps` shows the proxy token."""
        folder = self.state_dir / "apple-env"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{spec.name}.env"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{key}={value}\n" for key, value in spec.env.items() if "\n" not in value)
        return path

    def _ensure_network(self) -> None:
        listed = subprocess.run([*self.cli(), "network", "list", "--format", "json"],
                                capture_output=True, text=True, timeout=30)
        try:
            names = {n.get("id") or n.get("name") for n in json.loads(listed.stdout or "[]")}
        except (json.JSONDecodeError, AttributeError):
            names = set()
        if NETWORK not in names:
            subprocess.run([*self.cli(), "network", "create", "--internal", NETWORK],
                           capture_output=True, text=True, timeout=60)

    def stop_orphans(self, label: str) -> int:
        try:
            cli = self.cli()
        except SandboxUnavailable:  # not installed: nothing of ours can be running
            return 0
        listed = subprocess.run([*cli, "list", "--all", "--format", "json"], capture_output=True, text=True, timeout=60)
        try:
            containers = json.loads(listed.stdout or "[]")
        except json.JSONDecodeError:
            return 0
        ids = []
        for c in containers:
            config = c.get("configuration", {}) if isinstance(c, dict) else {}
            cid = str(config.get("id", ""))
            if config.get("labels", {}).get(LABEL_KEY) == label or cid.startswith(f"{label}-"):
                ids.append(cid)
        if ids:
            subprocess.run([*cli, "delete", "--force", *ids], capture_output=True, timeout=120)
        return len(ids)
