"""A host for chaos runs: `python -m benchmarks.chaos_host HOME LEDGER [RUNTIME [IMAGE]]` (ledger channel, mock provider)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from benchmarks.ledger import LedgerChannel
from nanoclaw import logs
from nanoclaw.config import Settings
from nanoclaw.host.app import Host


def main() -> None:
    home, ledger = Path(sys.argv[1]), Path(sys.argv[2])
    runtime = sys.argv[3] if len(sys.argv) > 3 else ""
    image = sys.argv[4] if len(sys.argv) > 4 else ""
    LedgerChannel.path = ledger
    logs.setup("WARNING")
    settings = Settings(home=home, provider="mock", web_port=0, disk_quota_mb=0, max_attempts=20, retry_backoff=0.2, heartbeat_interval=0.5,
                        heartbeat_timeout=10.0, idle_timeout=5.0, max_sandboxes=8, log_level="WARNING",
                        runtime=runtime, sandbox_image=image)
    asyncio.run(Host(settings, channels=[LedgerChannel]).run_forever())


if __name__ == "__main__":
    main()
