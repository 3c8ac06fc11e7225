"""A started host holds no library it has not used yet: the web server's, the vault's, the scheduler's.

What it costs (host RSS) is measured by `benchmarks.resources`; this test keeps the imports that made the
host twice as big from coming back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LAZY = ("aiohttp", "cryptography", "httpx", "markdown_it", "pygments", "croniter", "discord", "telegram", "slack_sdk", "nio")

PROBE = """
import asyncio, json, sys
from pathlib import Path
from nanoclaw.config import Settings
from nanoclaw.host.app import Host

async def main():
    host = Host(Settings(home=Path(sys.argv[1]), provider="mock", runtime="bwrap", web_port=0, disk_quota_mb=0))
    await host.start()
    try:
        print(json.dumps({"modules": sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2:]),
                          "web": host.web.url}))
    finally:
        await host.stop()

asyncio.run(main())
"""


def test_a_started_host_has_not_imported_what_it_has_not_used(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "home"), *LAZY], capture_output=True,
                         text=True, timeout=60, env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["web"].startswith("http://127.0.0.1:")  # the web server has its port …
    assert seen["modules"] == [], seen  # … and loads aiohttp with its first connection
