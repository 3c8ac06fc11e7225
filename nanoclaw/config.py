"""Settings: NANOCLAW_* environment variables, an optional .env file, then CLI flags.

Precedence, lowest first: defaults, the credentials file written by `nanoclaw
setup` (`credentials.env` in the config dir, see `user_config_dir`), the home's
`config.env` (also written by setup), `.env` in the current directory (or the
file named by NANOCLAW_ENV_FILE), the process environment, explicit overrides.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from dotenv import dotenv_values

from nanoclaw.errors import ConfigError

ENV_PREFIX = "NANOCLAW_"
CONFIG_FILE = "config.env"  # in NANOCLAW_HOME
CREDENTIALS_FILE = "credentials.env"  # in user_config_dir(), outside the home and the project
VAULT_BACKENDS = ("builtin", "onecli")


DEFAULT_HOME = "~/.nanoclaw"


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the keys live (credentials.env, the vault and its key, the proxy's CA, allow-list, egress policy).

    NANOCLAW_CONFIG_DIR when set; else, for a home chosen with NANOCLAW_HOME (or `--home`), its `config/`
    folder, so two homes on one machine share nothing (it is outside the folders sandboxes see); else
    `$XDG_CONFIG_HOME/nanoclaw`, default `~/.config/nanoclaw` (also for NANOCLAW_HOME=~/.nanoclaw, the default).
    """
    env = os.environ if env is None else env
    if env.get("NANOCLAW_CONFIG_DIR"):
        return Path(env["NANOCLAW_CONFIG_DIR"]).expanduser()
    home = env.get("NANOCLAW_HOME")
    if home and _absolute(home, env) != _absolute(DEFAULT_HOME, env):
        return Path(home).expanduser() / "config"
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base).expanduser() / "nanoclaw"


def private_dir(path: Path) -> None:
    """Create `path` and every missing parent readable by the owner only (mkdir -p would give parents 0755, and
    a config dir inside a new home would leave that home readable by others)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def _absolute(path: str, env: Mapping[str, str]) -> Path:
    if path.startswith("~"):
        path = str(Path(env.get("HOME") or Path.home())) + path[1:]
    return Path(os.path.abspath(path))


def credentials_path(env: Mapping[str, str] | None = None) -> Path:
    return user_config_dir(env) / CREDENTIALS_FILE


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).expanduser())
    assistant_name: str = "Andy"
    runtime: str = ""  # empty: the first that works here (bwrap, podman, docker on Linux; apple on macOS)
    provider: str = ""  # empty: claude when a key is configured, else mock
    model: str = ""
    channels: str = ""  # extra channels to start even without their env vars, comma-separated
    max_sandboxes: int = 8
    # Sandboxes started ahead, ready for a session's first message (host/pool.py): -1 sizes the pool from free
    # memory, 0 turns it off. They count against max_sandboxes and the memory budget.
    pool_size: int = -1
    # Memory (MiB) live runners and the pool may take together; 0: half of the machine's (host/memory.py).
    memory_budget_mb: int = 0
    task_prewarm: float = 30.0  # seconds before a scheduled task is due that its sandbox is started
    # Limits of one sandbox (bwrap: rlimits; podman/docker: cgroup limits).
    sandbox_memory_mb: int = 2048
    sandbox_pids: int = 512
    sandbox_cpus: float = 1.0
    sandbox_cpu_seconds: int = 3600  # CPU time of one process in the sandbox
    sandbox_file_mb: int = 1024  # largest file an agent may write
    # Disk each agent group may fill (its folder, sessions and Claude state together), enforced by the kernel:
    # a filesystem image per group, loop-mounted (root hosts). 0 turns the quota off.
    disk_quota_mb: int = 5120
    sandbox_uid_base: int = 1_900_000_000  # root hosts: group N runs as this + N (sandbox/identity.py)
    turn_timeout: float = 1800.0  # wall time of one agent turn before its runner is stopped
    sandbox_image: str = ""  # podman/docker; empty: localhost/nanoclaw-agent:latest
    idle_timeout: float = 300.0
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 30.0
    max_attempts: int = 3
    max_agent_turns: int = 60
    model_max_retries: int = 3  # retries of a failed model API call before the person is told
    context_window: int = 32_000  # tokens of history the openai provider sends at most
    retry_backoff: float = 2.0
    doorbell: bool = True
    host_poll_interval: float = 1.0
    runner_poll_interval: float = 0.5
    max_message_bytes: int = 1_000_000
    log_level: str = "INFO"
    timezone: str = ""  # default timezone of scheduled tasks; empty: the host's
    # Let sandboxes reach loopback/private addresses through the proxy (local model servers, tests).
    egress_allow_private: bool = False
    egress_approval_timeout: float = 600.0
    web_port: int = 8700  # the host's web server: web chat, dashboard, credential forms, webhooks (0 = any free port)
    web_host: str = "127.0.0.1"  # loopback only unless you put it elsewhere on purpose (see docs/security.md)
    # Channels where replies arrive whole instead of growing as they are written, comma-separated ("all": none).
    streaming_off: str = ""
    # Where secrets live: builtin (~/.config/nanoclaw/vault.json) or onecli (the `onecli` CLI and its gateway;
    # ONECLI_GATEWAY_URL and ONECLI_CA_CERT are read from the environment/.env, see docs/security.md).
    vault_backend: str = "builtin"
    # Keys and credentials (NANOCLAW_CONFIG_DIR): see user_config_dir. Load() puts it beside a chosen home.
    config_dir: Path = field(default_factory=lambda: user_config_dir(), compare=False)
    # Variables read from env/.env that are not NANOCLAW_* (channel tokens, model keys).
    extra: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def trigger(self) -> str:
        return f"@{self.assistant_name}"

    @property
    def db_path(self) -> Path:
        return self.home / "nanoclaw.db"

    @property
    def socket_path(self) -> Path:
        return self.home / "nanoclaw.sock"

    @property
    def groups_dir(self) -> Path:
        return self.home / "groups"

    @property
    def sessions_dir(self) -> Path:
        return self.home / "sessions"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def mount_allowlist(self) -> Path:
        return self.config_dir / "mount-allowlist.json"

    @property
    def credentials_file(self) -> Path:
        return self.config_dir / CREDENTIALS_FILE

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE

    def with_overrides(self, **overrides: Any) -> Settings:
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **_coerce(clean))

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, env_file: str | Path | None = None, **overrides: Any
    ) -> Settings:
        env = dict(os.environ if env is None else env)
        path = env_file or env.get("NANOCLAW_ENV_FILE") or ".env"
        local = _read_env_file(Path(path))
        home = overrides.get("home") or env.get("NANOCLAW_HOME") or local.get("NANOCLAW_HOME")
        home_dir = Path(str(home)).expanduser() if home else Path(DEFAULT_HOME).expanduser()
        where = {**env, **{k: local[k] for k in ("NANOCLAW_CONFIG_DIR",) if local.get(k)}}
        if home:
            where["NANOCLAW_HOME"] = str(home)
        config_dir = Path(str(overrides["config_dir"])) if overrides.get("config_dir") else user_config_dir(where)
        merged: dict[str, str] = {}
        # What `nanoclaw setup` saved, taken literally (no ${VAR}); neither file may move the home it is in.
        for saved in (config_dir / CREDENTIALS_FILE, home_dir / CONFIG_FILE):
            merged.update({k: v for k, v in _read_env_file(saved, literal=True).items() if k != "NANOCLAW_HOME"})
        merged.update(local)
        merged.update(env)
        values: dict[str, Any] = {}
        names = {f.name for f in fields(cls)} - {"extra"}
        for key, raw in merged.items():
            if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):].lower() in names:
                values[key[len(ENV_PREFIX):].lower()] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["config_dir"] = config_dir
        extra = {k: v for k, v in merged.items() if not k.startswith(ENV_PREFIX)}
        settings = cls(**_coerce(values), extra=extra)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", self.assistant_name):
            raise ConfigError(
                f"assistant name {self.assistant_name!r} must be a word (letters, digits, - or _), e.g. Andy"
            )
        if self.vault_backend not in VAULT_BACKENDS:
            raise ConfigError(f"NANOCLAW_VAULT_BACKEND={self.vault_backend!r} is not one of {', '.join(VAULT_BACKENDS)}")
        for name in ("max_sandboxes", "max_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"NANOCLAW_{name.upper()} must be at least 1")

    def channel_enabled(self, name: str) -> bool:
        """A channel starts when listed in NANOCLAW_CHANNELS or when a variable named after it is set."""
        listed = {c.strip().lower() for c in self.channels.split(",") if c.strip()}
        if name.lower() in listed:
            return True
        prefix = name.upper() + "_"
        return any(k.startswith(prefix) and v for k, v in self.extra.items())

    def streams_to(self, channel: str) -> bool:
        """Whether replies in `channel` are shown while they are written (NANOCLAW_STREAMING_OFF turns it off)."""
        off = {c.strip().lower() for c in self.streaming_off.split(",") if c.strip()}
        return "all" not in off and channel.lower() not in off

    def default_provider(self, available: set[str]) -> str:
        if self.provider:
            return self.provider
        has_key = any(self.extra.get(k) for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"))
        return "claude" if has_key and "claude" in available else "mock"


def read_json_file(path: Path) -> Any:
    """A hand-edited JSON settings file (allow-list, egress policy), with the line and column of a mistake."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def _read_env_file(path: Path, literal: bool = False) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        return {k: v for k, v in dotenv_values(path, interpolate=not literal).items() if v is not None}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    types = {f.name: f.type for f in fields(Settings)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        kind = types.get(key)
        try:
            if kind == "Path":
                out[key] = Path(str(value)).expanduser()
            elif kind == "bool" and isinstance(value, str):
                out[key] = value.strip().lower() in ("1", "true", "yes", "on")
            elif kind == "int":
                out[key] = int(value)
            elif kind == "float":
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError as exc:
            raise ConfigError(f"NANOCLAW_{key.upper()}={value!r} is not a valid {kind}") from exc
    return out
