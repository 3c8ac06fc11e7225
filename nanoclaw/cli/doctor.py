"""`nanoclaw doctor` — check this machine, each check one line, each failure with its fix."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from nanoclaw import envfile, registry
from nanoclaw.cli.options import home_option
from nanoclaw.config import Settings
from nanoclaw.errors import ConfigError, NanoClawError
from nanoclaw.sandbox import detect

MIN_FREE_BYTES = 1024**3
ANTHROPIC_URL = "https://api.anthropic.com"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # ok, but worth a look: printed with its fix, does not fail the doctor


def run_checks(settings: Settings, load_error: str | None = None) -> list[Check]:
    from nanoclaw.cli import channel_checks

    host = _host(settings)
    status = _running_status(settings) if host.ok and host.detail.startswith("running") else None
    running_provider = status.get("provider") if status else None
    each_channel = (channel_checks.from_host(status.get("channel_health") or {}) if status
                    else channel_checks.by_identify(settings))
    return [
        _python(), _config(settings, load_error), runtime_check(settings), _other_runtimes(settings),
        _agent_isolation(settings), _home(settings), _disk(settings),
        _database(settings), _secret_files(settings), _vault(settings),
        _model(settings, running_provider), _channels(settings), *each_channel,
        host, _service(settings),
    ]


def _python() -> Check:
    v = sys.version_info
    ok = v >= (3, 11)
    return Check("python", ok, f"Python {v.major}.{v.minor}.{v.micro} at {sys.executable}",
                 "" if ok else "install Python 3.11 or newer and re-run ./scripts/run")


def runtime_check(settings: Settings) -> Check:
    """The sandbox runtime can start sandboxes here (also used by `nanoclaw setup`)."""
    name = settings.runtime or detect.detect()
    how = "" if settings.runtime else "detected (NANOCLAW_RUNTIME chooses another): "
    result = detect.check(name)
    return Check(f"sandbox ({name})", result.ok, how + result.detail, result.fix)


def _other_runtimes(settings: Settings) -> Check:
    chosen = settings.runtime or detect.detect()
    others = [n for n in registry.names(registry.RUNTIMES) if n != chosen]
    checks = {n: detect.check(n) for n in others}
    usable = [n for n, c in checks.items() if c.ok]
    unusable = [f"{n} ({c.detail})" for n, c in checks.items() if not c.ok]
    detail = f"also usable: {', '.join(usable) or 'none'}"
    if unusable:
        detail += f"; not usable here: {'; '.join(unusable)}"
    return Check("other runtimes", True, detail)


def _home(settings: Settings) -> Check:
    home = settings.home
    if not home.exists():
        return Check("home", True, f"{home} does not exist yet; `nanoclaw run` creates it")
    mode = stat.S_IMODE(home.stat().st_mode)
    if mode & 0o077:
        return Check("home", False, f"{home} is readable by others (mode {mode:o})", f"chmod 700 {home}")
    if not os.access(home, os.W_OK):
        return Check("home", False, f"{home} is not writable", f"fix its owner: sudo chown -R $USER {home}")
    return Check("home", True, f"{home} (mode {mode:o})")


def _database(settings: Settings) -> Check:
    path = settings.db_path
    if not path.exists():
        return Check("database", True, "not created yet")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.close()
    except sqlite3.Error as exc:
        return Check("database", False, f"{path}: {exc}", "restore it from a backup, or move it away to start fresh")
    if result != "ok":
        return Check("database", False, f"{path}: {result}", "restore it from a backup")
    return Check("database", True, f"{path} (schema version {version})")


def _host(settings: Settings) -> Check:
    from nanoclaw.client import LocalClient
    from nanoclaw.errors import HostNotRunning

    try:
        with LocalClient(settings.socket_path, timeout=3) as client:
            pid = client.request("ping").get("pid")
        return Check("host", True, f"running (pid {pid})")
    except HostNotRunning:
        return Check("host", True, "not running (start it with: nanoclaw run)")
    except OSError as exc:
        return Check("host", False, f"socket {settings.socket_path} does not answer: {exc}",
                     "stop any stale host and start it again with: nanoclaw run")


def _config_files(settings: Settings) -> list[Path]:
    return [settings.credentials_file, settings.config_file, Path(os.environ.get("NANOCLAW_ENV_FILE") or ".env")]


def _config(settings: Settings, load_error: str | None) -> Check:
    files = [p for p in _config_files(settings) if p.is_file()]
    for path in files:
        bad = envfile.problems(path)
        if bad:
            return Check("config", False, f"{path} {bad[0]} cannot be read ({len(bad)} bad line{'s' * (len(bad) > 1)})",
                         f"edit {path}: each line must look like NAME=value (quote values with spaces)")
    if load_error:
        where = ", ".join(str(p) for p in files) or "the environment"
        return Check("config", False, load_error, f"correct it in {where} (or re-run: nanoclaw setup)")
    return Check("config", True, ", ".join(str(p) for p in files) if files else "defaults (no config file yet)")


def _disk(settings: Settings) -> Check:
    path = settings.home
    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    detail = f"{free / 1024**3:.1f} GB free for {settings.home}"
    if free < MIN_FREE_BYTES:
        return Check("disk", True, detail + " (under 1 GB)",
                     f"free some space on the disk holding {path}: sessions, logs and the database grow", warn=True)
    return Check("disk", True, detail)


def _secret_files(settings: Settings) -> Check:
    """The credentials file and config.env must be readable by their owner only."""
    from nanoclaw.config import user_config_dir

    found = []
    config = settings.config_dir
    for path in (settings.credentials_file, settings.config_file, config / "vault.key", config / "vault.json",
                 config / "ca.key"):
        if not path.is_file():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            return Check("key files", False, f"{path} is readable by others (mode {mode:o})", f"chmod 600 {path}")
        found.append(f"{path} ({mode:o})")
    if not found and config != user_config_dir({k: v for k, v in os.environ.items() if k != "NANOCLAW_HOME"}):
        shared = user_config_dir({k: v for k, v in os.environ.items() if k != "NANOCLAW_HOME"})
        if (shared / "credentials.env").is_file() or (shared / "vault.key").is_file():
            return Check("key files", True, f"none in {config}, this home's own place; {shared} has keys",
                         f"this home keeps its keys in {config} now: move them there, or set "
                         f"NANOCLAW_CONFIG_DIR={shared} to keep sharing that folder", warn=True)
    return Check("key files", True, ", ".join(found) if found else "none yet (nanoclaw setup writes them)")


def _vault(settings: Settings) -> Check:
    """The vault's secrets decrypt, and the egress policy and mount allow-list (hand-edited JSON) are valid."""
    from nanoclaw.sandbox.mounts import Allowlist
    from nanoclaw.vault.policy import POLICY_FILE, Policy
    from nanoclaw.vault.store import SecretStore

    config = settings.config_dir
    try:
        store = SecretStore.open(config)
        store.values()  # every secret must decrypt with this vault.key
        Policy.load(config / POLICY_FILE)
        allowlist = Allowlist.for_settings(settings)
    except NanoClawError as exc:
        return Check("vault", False, str(exc), f"fix or move aside the file named above (in {config})")
    policy = "egress policy set" if (config / POLICY_FILE).exists() else "no egress policy (all public hosts allowed)"
    return Check("vault", True, f"{len(store.rules())} secrets; {policy}; "
                                f"{len(allowlist.allowed)} folders in the mount allow-list")


def _running_status(settings: Settings) -> dict[str, Any] | None:
    """The running host's status: its provider (flags given to `nanoclaw run` may differ from the config) and
    how each channel's connection is doing."""
    from nanoclaw.client import LocalClient

    try:
        with LocalClient(settings.socket_path, timeout=3) as client:
            status = client.request("status").get("status")
    except (NanoClawError, OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def _model(settings: Settings, running_provider: str | None) -> Check:
    """The model key is set for the claude provider and, while the host runs, accepted by the API."""
    providers = set(registry.names(registry.PROVIDERS))
    provider = running_provider or settings.default_provider(providers)
    if provider not in providers:
        installed = ", ".join(sorted(providers))
        return Check("model", False, f"provider {provider!r} is not installed (installed: {installed})",
                     "set NANOCLAW_PROVIDER to one of those, or re-run: nanoclaw setup")
    if provider != "claude":
        note = " (canned answers, no key needed)" if provider == "mock" else ""
        return Check("model", True, f"provider {provider}{note}")
    key = settings.extra.get("ANTHROPIC_API_KEY") or settings.extra.get("ANTHROPIC_AUTH_TOKEN")
    if not key:
        return Check("model", False, "provider claude, but no Anthropic key is set",
                     f"run: nanoclaw setup (it stores the key in {settings.credentials_file})")
    if running_provider is None:
        return Check("model", True, "provider claude, key set (reachability is tested while the host runs)")
    return _reachable(settings)


def _reachable(settings: Settings) -> Check:
    base = (settings.extra.get("ANTHROPIC_BASE_URL") or ANTHROPIC_URL).rstrip("/")
    headers = {"anthropic-version": "2023-06-01"}
    if settings.extra.get("ANTHROPIC_API_KEY"):
        headers["x-api-key"] = settings.extra["ANTHROPIC_API_KEY"]
    else:
        headers["authorization"] = f"Bearer {settings.extra.get('ANTHROPIC_AUTH_TOKEN', '')}"
    request = urllib.request.Request(f"{base}/v1/models?limit=1", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310 - an https/http base URL
            json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return Check("model", False, f"{base} refused the key (HTTP {exc.code})",
                         "create a new key at https://console.anthropic.com/settings/keys, then: nanoclaw setup")
        return Check("model", True, f"{base} answered HTTP {exc.code}", "try again later; see https://status.anthropic.com",
                     warn=True)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check("model", False, f"cannot reach {base}: {reason}",
                     "check this machine's internet connection, DNS or HTTPS_PROXY")
    return Check("model", True, f"provider claude, key accepted by {base}")


def _agent_isolation(settings: Settings) -> Check:
    """Per-group uids, the disk quota, and how the host reaches the agents' folders."""
    from nanoclaw import safefs
    from nanoclaw.sandbox import quota
    from nanoclaw.sandbox.identity import UID_RANGE, check_uid_range

    parts = ["folders by openat2" if safefs.openat2_available() else "folders by an O_NOFOLLOW walk (no openat2)"]
    if os.geteuid() == 0:
        try:
            check_uid_range(settings.sandbox_uid_base)
        except ConfigError as exc:
            return Check("agent isolation", False, str(exc),
                         f"set NANOCLAW_SANDBOX_UID_BASE in {settings.config_file} to the start of {UID_RANGE} free uids")
        parts.append(f"one uid per agent group from {settings.sandbox_uid_base}")
    else:
        parts.append("agents run as your user inside a user namespace")
    if settings.disk_quota_mb <= 0:
        return Check("agent isolation", True, ", ".join(parts + ["no disk quota (NANOCLAW_DISK_QUOTA_MB=0)"]),
                     "an agent can fill this disk: set NANOCLAW_DISK_QUOTA_MB (default 5120)", warn=True)
    ok, why = quota.check()
    if not ok:
        return Check("agent isolation", True, ", ".join(parts + [f"no disk quota: {why}"]),
                     "run NanoClaw as root (or via its service) for per-group disk quotas", warn=True)
    return Check("agent isolation", True, ", ".join(parts + [f"disk quota {settings.disk_quota_mb} MB per group"]))


def _channels(settings: Settings) -> Check:
    installed = registry.names(registry.CHANNELS)
    listed = [c.strip().lower() for c in settings.channels.split(",") if c.strip()]
    missing = [c for c in listed if c not in installed]
    if missing:
        return Check("channels", False,
                     f"enabled but not installed: {', '.join(missing)} (installed: {', '.join(installed)})",
                     f"pip install nanoclaw-{missing[0]}, or remove it from NANOCLAW_CHANNELS in {settings.config_file}")
    enabled = [n for n in installed if n == "terminal" or settings.channel_enabled(n)]
    return Check("channels", True, ", ".join(enabled))


def _service(settings: Settings) -> Check:
    from nanoclaw import service

    try:
        manager = service.current_manager()
    except ConfigError:
        return Check("service", True, f"not supported on {sys.platform} (run the host with: nanoclaw run)")
    if not manager.path.is_file():
        return Check("service", True, "not installed (optional: nanoclaw service install)")
    state = manager.state()
    name = f"{manager.name} {manager.path.name}"
    if state.home and Path(state.home) != settings.home.expanduser().resolve():
        return Check("service", True, f"{name} runs home {state.home}, not {settings.home}",
                     f"nanoclaw --home {settings.home} service install (one service per user)", warn=True)
    if state.failed:
        return Check("service", False, f"{name}: {state.detail}",
                     "read why in: nanoclaw logs (or journalctl --user -u nanoclaw), "
                     "then: systemctl --user restart nanoclaw")
    if state.running is None:
        return Check("service", True, f"{name}: installed, state {state.detail}")
    if state.running is False:
        return Check("service", True, f"{name}: installed, {state.detail}",
                     "start it: " + " && ".join(" ".join(c) for c in manager.activate_commands()[-1:]), warn=True)
    return Check("service", True, f"{name}: {state.detail}")


def settings_or_defaults(ctx: click.Context) -> Settings:
    """Settings for a home whose config does not load: its defaults, so checks can still run."""
    from nanoclaw.config import user_config_dir

    home = ctx.obj.get("home") or os.environ.get("NANOCLAW_HOME")
    if not home:
        return Settings()
    return Settings(home=Path(home).expanduser(), config_dir=user_config_dir({**os.environ, "NANOCLAW_HOME": str(home)}))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the checks as JSON (name, ok, warn, detail, fix)")
@home_option
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check this machine, one line per check; every problem comes with its fix.

    Checks Python, the config files, the sandbox runtime, the home folder and
    its free disk space, the database, the key files' permissions, the model
    key (and, while the host runs, that the API accepts it), each chat channel
    (while the host runs: its connection; else its token, against the
    platform), the host and the service. Exits 1 when a check fails;
    warnings do not fail.

    \b
    Example: nanoclaw doctor
             NANOCLAW_HOME=/srv/assistant nanoclaw doctor
    """
    load_error = None
    try:
        settings = Settings.load(home=ctx.obj.get("home"))
    except NanoClawError as exc:
        load_error = str(exc)
        settings = settings_or_defaults(ctx)
    checks = run_checks(settings, load_error)
    failed = sum(not c.ok for c in checks)
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
        if failed:
            ctx.exit(1)
        return
    for check in checks:
        if not check.ok:
            mark = click.style("FAIL", fg="red")
        elif check.warn:
            mark = click.style("warn", fg="yellow")
        else:
            mark = click.style("ok  ", fg="green")
        click.echo(f"{mark} {check.name}: {check.detail}")
        if (not check.ok or check.warn) and check.fix:
            click.echo(f"     fix: {check.fix}")
    if failed:
        raise click.ClickException(f"{failed} check{'s' if failed > 1 else ''} failed")
    click.echo("All good.")
