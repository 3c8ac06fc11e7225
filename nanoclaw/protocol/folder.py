"""Layout of a session folder and its creation (DESIGN §3)."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from nanoclaw.protocol.schema import INBOUND_SCHEMA, OUTBOUND_SCHEMA, tune

# Paths as the runner sees them inside the sandbox.
SANDBOX_WORKSPACE = "/workspace"
SANDBOX_AGENT = "/workspace/agent"
SANDBOX_GLOBAL = "/workspace/global"
SANDBOX_PROXY_SOCKET = "/run/nanoclaw/proxy.sock"  # the host's proxy, bridged to 127.0.0.1 by the runner
SANDBOX_LINK_SOCKET = "/run/nanoclaw/session.sock"  # the session link, where the databases cannot be shared
SANDBOX_CA_CERT = "/etc/nanoclaw/ca.pem"  # the vault's CA (certificate only)
SANDBOX_CA_BUNDLE = "/etc/nanoclaw/ca-bundle.pem"  # the system's roots plus that CA


@dataclass(frozen=True)
class SessionFolder:
    root: Path

    @property
    def inbound_db(self) -> Path:
        return self.root / "inbound.db"

    @property
    def outbound_db(self) -> Path:
        return self.root / "outbound.db"

    @property
    def bell_in(self) -> Path:
        return self.root / "bell.in"

    @property
    def bell_out(self) -> Path:
        return self.root / "bell.out"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def heartbeat(self) -> Path:
        return self.root / ".heartbeat"

    def create(self) -> None:
        """Create the folder, both FIFOs and both (empty) databases. Idempotent."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.inbox.mkdir(exist_ok=True)
        self.outbox.mkdir(exist_ok=True)
        for bell in (self.bell_in, self.bell_out):
            if not bell.exists():
                os.mkfifo(bell, 0o600)
        for path, schema in ((self.inbound_db, INBOUND_SCHEMA), (self.outbound_db, OUTBOUND_SCHEMA)):
            if not path.exists():
                conn = sqlite3.connect(path)
                tune(conn)
                conn.executescript(schema)
                conn.close()

    def check_regular_files(self) -> None:
        """Refuse to open a session whose database files were replaced by links.

        A runner can write its folder; the host opens these files outside the
        sandbox, so a symlink or hard link here would point the host at a host file.
        """
        for base in (self.inbound_db, self.outbound_db):
            for suffix in ("", "-wal", "-shm"):
                path = Path(str(base) + suffix)
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    if suffix:
                        continue
                    raise
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    raise PermissionError(f"{path} is not a plain file (link or special file); refusing to open it")
