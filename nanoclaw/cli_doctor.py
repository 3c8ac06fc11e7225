"""`nanoclaw doctor` — check this machine, each failure with its fix."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from dataclasses import dataclass

import click

from nanoclaw import registry
from nanoclaw.config import Settings
from nanoclaw.errors import NanoClawError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(settings: Settings) -> list[Check]:
    checks = [_python(), _runtime(settings), _home(settings), _database(settings), _host(settings)]
    return checks


def _python() -> Check:
    v = sys.version_info
    ok = v >= (3, 11)
    return Check("python", ok, f"Python {v.major}.{v.minor}.{v.micro} at {sys.executable}",
                 "" if ok else "install Python 3.11 or newer and re-run ./scripts/run")


def _runtime(settings: Settings) -> Check:
    try:
        cls = registry.load(registry.RUNTIMES, settings.runtime)
    except LookupError as exc:
        return Check("sandbox", False, str(exc), "set NANOCLAW_RUNTIME to an installed runtime")
    result = cls.check()
    return Check(f"sandbox ({settings.runtime})", result.ok, result.detail, result.fix)


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


@click.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check Python, the sandbox, the home folder, the database and the host."""
    try:
        settings = Settings.load(home=ctx.obj.get("home"))
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    failed = 0
    for check in run_checks(settings):
        mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark} {check.name}: {check.detail}")
        if not check.ok:
            failed += 1
            click.echo(f"     fix: {check.fix}")
    if failed:
        raise click.ClickException(f"{failed} check{'s' if failed > 1 else ''} failed")
    click.echo("All good.")
