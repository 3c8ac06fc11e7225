"""A root host keeps only the capabilities its work needs, and its sandboxes still start (bwrap and podman)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nanoclaw.host.privileges import NEVER_NEEDED
from tests.integration.hostproc import NANOCLAW, HostProcess

pytestmark = [pytest.mark.sandbox, pytest.mark.skipif(os.geteuid() != 0, reason="capabilities are dropped by root hosts")]


def capabilities(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":")), 16)


@pytest.mark.parametrize("runtime", ["bwrap", "podman"])
def test_a_root_host_drops_what_it_never_needs_and_still_answers(tmp_path: Path, runtime: str,
                                                                  request: pytest.FixtureRequest) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "NANOCLAW_RUNTIME": runtime, "NANOCLAW_DISK_QUOTA_MB": "64"}
    if runtime == "podman":
        env["NANOCLAW_SANDBOX_IMAGE"] = request.getfixturevalue("podman_image")
    host = HostProcess(tmp_path / "home", env=env).start()
    try:
        assert host.proc is not None
        never = sum(1 << n for n in NEVER_NEEDED.values())
        for field in ("CapBnd", "CapPrm", "CapEff"):
            assert capabilities(host.proc.pid, field) & never == 0, field
        keeps = capabilities(host.proc.pid, "CapEff")
        assert keeps & (1 << 21) and keeps & (1 << 7)  # CAP_SYS_ADMIN (namespaces, mounts), CAP_SETUID
        answer = subprocess.run([NANOCLAW, "send", "hello from a host without module loading"], env=host.env,
                                capture_output=True, text=True, timeout=120)
        assert "hello from a host without module loading" in answer.stdout, answer.stdout + answer.stderr
    finally:
        host.stop()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path / "home") not in mounts  # the quota images were let go when it stopped
