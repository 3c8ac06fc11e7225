"""Known and open: an agent that truncates `outbound.db-shm` ends the host with SIGBUS.

SQLite maps a WAL database's `-shm` file into every process that uses the database,
the host too (it reads the runner's outbound.db). The runner writes that database,
so the agent can shrink the file under the host's mapping, and the host's next read
of it is a SIGBUS, which no Python code can catch. Under gVisor the runner reaches
outbound.db only through the session link and its files are read-only mount points
(tests/security/test_hostile_agent.py); on bwrap and podman the runner opens the
database itself. The host runs in a child process here, so the crash ends it, not the
test run; when the hole is closed this test passes and its strict marker must go.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

HOST = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from nanoclaw.host.app import Host
    from tests.conftest import fake, make_settings, wire
    from tests.fakes.channel import FakeChannel

    async def main(home):
        host = Host(make_settings(Path(home)), channels=[FakeChannel])
        await host.start()
        try:
            wire(host, "chat", trigger="always")
            ch = fake(host)
            await ch.say("hello", chat="chat")
            await ch.wait_sent(1, timeout=60)
            await ch.say("[mock:sh=truncate -s 0 /workspace/outbound.db-shm; echo truncated]", chat="chat")
            await ch.wait_sent(2, timeout=60)
            await ch.say("still there?", chat="chat")
            assert "still there?" in (await ch.wait_sent(3, timeout=60))[-1].text
        finally:
            await host.stop()
        print("the host survived", flush=True)

    asyncio.run(main(sys.argv[1]))
""")


@pytest.mark.xfail(strict=True, reason="open: the host maps outbound.db-shm, which a bwrap runner (and so its agent) "
                                       "can truncate; the host dies with SIGBUS")
def test_an_agent_truncating_the_shm_does_not_end_the_host(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", HOST, str(tmp_path / "home")], capture_output=True, text=True,
                         timeout=240, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and "the host survived" in out.stdout, (out.returncode, out.stderr[-2000:])
