"""A real `nanoclaw run` process on a temp home, for tests that kill the host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nanoclaw.client import LocalClient
from nanoclaw.errors import HostNotRunning

NANOCLAW = str(Path(sys.executable).parent / "nanoclaw")


class HostProcess:
    def __init__(self, home: Path, *extra: str, env: dict[str, str] | None = None, wrapper: list[str] | None = None) -> None:
        self.home = home
        self.extra = list(extra)
        # No disk quota unless a test asks: hosts killed with SIGKILL would leave their images mounted.
        self.env = {**os.environ, "NANOCLAW_HOME": str(home), "NANOCLAW_IDLE_TIMEOUT": "30", "NANOCLAW_WEB_PORT": "0",
                    "NANOCLAW_DISK_QUOTA_MB": "0", **(env or {})}
        self.wrapper = wrapper or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HostProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home.parent / f"{self.home.name}-host.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*self.wrapper, NANOCLAW, "run", "--provider", "mock", *self.extra],
            env=self.env, stdout=log, stderr=log, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"host exited: {self.log()[-2000:]}")
            try:
                with LocalClient(self.home / "nanoclaw.sock", timeout=2) as c:
                    if c.request("ping").get("ok"):
                        return self
            except (HostNotRunning, OSError):
                time.sleep(0.05)
        raise AssertionError("host did not answer within 20 s")

    def client(self, timeout: float = 10) -> LocalClient:
        return LocalClient(self.home / "nanoclaw.sock", timeout=timeout)

    def log(self) -> str:
        path = self.home.parent / f"{self.home.name}-host.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
