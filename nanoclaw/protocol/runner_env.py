"""The runner's configuration, passed from host to sandbox as environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping

PREFIX = "NANOCLAW_RUNNER_"


@dataclass(frozen=True)
class RunnerConfig:
    workspace: str = "/workspace"
    provider: str = "mock"
    model: str = ""
    assistant_name: str = "Andy"
    channel_type: str = ""
    doorbell: bool = True
    poll_interval: float = 0.5
    idle_timeout: float = 300.0
    heartbeat_interval: float = 2.0
    is_admin: bool = False
    max_turns: int = 60  # bounds a model that loops calling tools
    model_max_retries: int = 3
    context_window: int = 32_000  # tokens the openai provider may send (history is trimmed to fit)
    formatting: str = ""  # the channel's formatting rules, for the system prompt
    mcp_servers: str = ""  # JSON {name: config} of the MCP servers the owner approved (claude provider only)
    pooled: bool = False  # started before its session is known: wait on stdin until the host mounts it (host/pool.py)
    link: str = ""  # the session link's socket (protocol/link.py); empty: the runner opens the databases

    def to_env(self) -> dict[str, str]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[PREFIX + f.name.upper()] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RunnerConfig:
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            kind = type(f.default)
            kwargs[f.name] = raw == "1" if kind is bool else kind(raw)
        return cls(**kwargs)  # type: ignore[arg-type]
