"""Layout of a session folder (DESIGN §3). The host creates and opens it in host_end.py, by descriptors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
