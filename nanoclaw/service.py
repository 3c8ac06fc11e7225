"""Run the host as a per-user service: a systemd user unit on Linux, a launchd agent on macOS.

The files are generated from a `ServiceSpec` by pure functions (`systemd_unit`,
`launchd_plist`) so tests can check them; a `ServiceManager` writes them and
drives systemctl / launchctl. The host logs to `NANOCLAW_HOME/logs/host.log`
itself (`nanoclaw run --log-file`, rotated at 10 MB), so logs survive without
a journal and `nanoclaw logs` can read them.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from nanoclaw.config import Settings, user_config_dir
from nanoclaw.errors import ConfigError

UNIT_NAME = "nanoclaw.service"
LAUNCHD_LABEL = "dev.nanoclaw"
LOG_FILE = "host.log"  # in NANOCLAW_HOME/logs
SERVICE_OUTPUT = "service.log"  # launchd's stdout/stderr (start-up errors before logging is set up)


@dataclass(frozen=True)
class ServiceSpec:
    """What the service runs: `command` with `environment`, in `home`, logging to `log_file`."""

    command: tuple[str, ...]
    home: Path
    log_file: Path
    environment: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_settings(cls, settings: Settings, env_file: Path | None = None) -> ServiceSpec:
        home = settings.home.expanduser().resolve()
        log_file = home / "logs" / LOG_FILE
        environment = {"NANOCLAW_HOME": str(home)}
        if settings.config_dir.expanduser() != user_config_dir({**os.environ, "NANOCLAW_HOME": str(home)}):
            environment["NANOCLAW_CONFIG_DIR"] = str(settings.config_dir.expanduser().resolve())  # as set up
        if env_file is not None:
            environment["NANOCLAW_ENV_FILE"] = str(env_file.resolve())
        return cls((*nanoclaw_command(), "run", "--log-file", str(log_file)), home, log_file, environment)


def nanoclaw_command() -> tuple[str, ...]:
    """The absolute command that starts this installation's `nanoclaw` (the venv's script)."""
    script = Path(sys.executable).parent / "nanoclaw"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script.absolute()),)
    return (str(Path(sys.executable).absolute()), "-m", "nanoclaw")


# -- systemd -------------------------------------------------------------------

_SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def _systemd_escape(text: str) -> str:
    if any(c in text for c in "\n\r\0"):
        raise ConfigError(f"{text!r} cannot be written into a systemd unit (it has a line break)")
    return text.replace("%", "%%")  # % starts a specifier everywhere in a unit


def _systemd_word(arg: str) -> str:
    """One ExecStart argument: quoted when needed; `$` doubled (variable expansion), `%` doubled."""
    text = arg if _SYSTEMD_PLAIN.fullmatch(arg) else '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _systemd_escape(text).replace("$", "$$")


def _systemd_assignment(name: str, value: str) -> str:
    """One Environment= assignment: quoted whole when needed; `$` has no meaning there, `%` does."""
    text = f"{name}={value}"
    if not _SYSTEMD_PLAIN.fullmatch(text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _systemd_escape(text)


def systemd_unit(spec: ServiceSpec) -> str:
    exec_start = " ".join(_systemd_word(a) for a in spec.command)
    env_lines = "".join(f"Environment={_systemd_assignment(k, v)}\n" for k, v in spec.environment.items())
    return (
        "# Written by `nanoclaw service install`; re-run it instead of editing.\n"
        "[Unit]\n"
        "Description=NanoClaw personal AI assistant\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={exec_start}\n"
        f"{env_lines}"
        f"WorkingDirectory={_systemd_escape(str(spec.home))}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "# The host stops its sandboxes on SIGTERM; give it time.\n"
        "TimeoutStopSec=30\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


# -- launchd -------------------------------------------------------------------


def launchd_plist(spec: ServiceSpec) -> bytes:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"), **spec.environment}
    output = str(spec.home / "logs" / SERVICE_OUTPUT)
    return plistlib.dumps({
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": list(spec.command),
        "EnvironmentVariables": environment,
        "WorkingDirectory": str(spec.home),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart when it fails, not after a clean stop
        "ThrottleInterval": 5,
        "StandardOutPath": output,
        "StandardErrorPath": output,
    })


# -- managers ------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceState:
    installed: bool
    path: Path
    running: bool | None  # None: unknown (the service manager cannot be asked)
    detail: str
    home: str | None = None  # NANOCLAW_HOME the installed file runs with
    failed: bool = False  # the service manager gave up on it (crash loop, bad unit)


def run_command(args: list[str], timeout: float = 10) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(args, 127, "", str(exc))


class ServiceManager(ABC):
    """Writes one service file and asks the OS service manager to (de)activate it."""

    name = ""
    path: Path

    @abstractmethod
    def render(self, spec: ServiceSpec) -> bytes:
        """The service file's content."""

    @abstractmethod
    def available(self) -> bool:
        """Whether the OS service manager can be asked right now."""

    @abstractmethod
    def activate_commands(self) -> list[list[str]]:
        """Commands that load and start the written file."""

    @abstractmethod
    def deactivate_commands(self) -> list[list[str]]:
        """Commands that stop the service and unload the file."""

    def after_removal_commands(self) -> list[list[str]]:
        """Commands to run once the file is deleted."""
        return []

    @abstractmethod
    def state(self) -> ServiceState:
        """Installed? running? asked without changing anything."""

    @abstractmethod
    def installed_home(self) -> str | None:
        """NANOCLAW_HOME of the installed file, if any."""


class SystemdUser(ServiceManager):
    name = "systemd --user"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
        self.path = Path(base).expanduser() / "systemd" / "user" / UNIT_NAME

    def render(self, spec: ServiceSpec) -> bytes:
        return systemd_unit(spec).encode()

    def available(self) -> bool:
        if shutil.which("systemctl") is None:
            return False
        return run_command(["systemctl", "--user", "show-environment"], 5).returncode == 0

    def activate_commands(self) -> list[list[str]]:
        return [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", "nanoclaw"]]

    def deactivate_commands(self) -> list[list[str]]:
        return [["systemctl", "--user", "disable", "--now", "nanoclaw"]]

    def after_removal_commands(self) -> list[list[str]]:
        return [["systemctl", "--user", "daemon-reload"]]

    def installed_home(self) -> str | None:
        if not self.path.is_file():
            return None
        match = re.search(r'^Environment="?NANOCLAW_HOME=(.*?)"?$', self.path.read_text(), re.M)
        return match.group(1).replace("%%", "%").replace('\\"', '"').replace("\\\\", "\\") if match else None

    def state(self) -> ServiceState:
        installed = self.path.is_file()
        if not self.available():
            why = "systemctl not found" if shutil.which("systemctl") is None else "no systemd user session"
            return ServiceState(installed, self.path, None, f"unknown ({why})", self.installed_home())
        out = run_command(["systemctl", "--user", "show", "nanoclaw", "-p", "ActiveState", "-p", "SubState",
                    "-p", "MainPID", "-p", "UnitFileState"], 5)
        props = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        active = props.get("ActiveState", "unknown")
        detail = f"{active} ({props.get('SubState', '?')}), {props.get('UnitFileState') or 'not enabled'}"
        if props.get("MainPID", "0") not in ("", "0"):
            detail += f", pid {props['MainPID']}"
        return ServiceState(installed, self.path, active in ("active", "activating", "reloading"), detail,
                            self.installed_home(), failed=active == "failed")


class Launchd(ServiceManager):
    name = "launchd"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.path = Path(env.get("HOME") or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        self.domain = f"gui/{os.getuid()}"

    def render(self, spec: ServiceSpec) -> bytes:
        return launchd_plist(spec)

    def available(self) -> bool:
        return shutil.which("launchctl") is not None

    def activate_commands(self) -> list[list[str]]:
        return [["launchctl", "bootstrap", self.domain, str(self.path)]]

    def deactivate_commands(self) -> list[list[str]]:
        return [["launchctl", "bootout", f"{self.domain}/{LAUNCHD_LABEL}"]]

    def installed_home(self) -> str | None:
        if not self.path.is_file():
            return None
        try:
            data = plistlib.loads(self.path.read_bytes())
        except Exception:  # a damaged plist: status says "not readable" through home None
            return None
        return data.get("EnvironmentVariables", {}).get("NANOCLAW_HOME")

    def state(self) -> ServiceState:
        installed = self.path.is_file()
        if not self.available():
            return ServiceState(installed, self.path, None, "unknown (launchctl not found)", self.installed_home())
        out = run_command(["launchctl", "print", f"{self.domain}/{LAUNCHD_LABEL}"], 5)
        if out.returncode != 0:
            return ServiceState(installed, self.path, False, "not loaded", self.installed_home())
        state = re.search(r"^\s*state = (\S+)", out.stdout, re.M)
        pid = re.search(r"^\s*pid = (\d+)", out.stdout, re.M)
        running = bool(state and state.group(1) == "running")
        detail = f"loaded, {state.group(1) if state else 'state ?'}" + (f", pid {pid.group(1)}" if pid else "")
        return ServiceState(installed, self.path, running, detail, self.installed_home())


def current_manager(env: Mapping[str, str] | None = None) -> ServiceManager:
    """The service manager of this OS: systemd (user) on Linux, launchd on macOS."""
    if sys.platform == "darwin":
        return Launchd(env)
    if sys.platform.startswith("linux"):
        return SystemdUser(env)
    raise ConfigError(f"running NanoClaw as a service is supported on Linux and macOS, not {sys.platform}: "
                      "start it with `nanoclaw run` instead")
