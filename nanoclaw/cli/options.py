"""What every `nanoclaw` subcommand shares: `--home` and loading the settings.

Its own module so command modules (doctor, setup, service, …) can use it
without importing `nanoclaw.cli.main`, which imports them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import click

from nanoclaw.config import Settings
from nanoclaw.errors import NanoClawError


def home_option(command: Any) -> Any:
    """`--home` on a subcommand too, so `nanoclaw run --home X` works like `nanoclaw --home X run`."""

    def remember(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
        if value is not None:
            ctx.ensure_object(dict)["home"] = value

    return click.option(
        "--home", type=click.Path(path_type=Path), expose_value=False, callback=remember,
        help="NanoClaw home folder [env NANOCLAW_HOME; default ~/.nanoclaw]",
    )(command)


def load_settings(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings for the `--home` given on the command line, a bad setting as a sentence."""
    try:
        return Settings.load(home=(ctx.obj or {}).get("home"), **overrides)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc


def open_db(ctx: click.Context) -> tuple[Settings, sqlite3.Connection]:
    """The settings and the central database of an existing home (commands that work with the host stopped)."""
    from nanoclaw import db

    settings = load_settings(ctx)
    if not settings.db_path.exists():
        raise click.ClickException(f"no NanoClaw home at {settings.home} yet: run `nanoclaw setup` or `nanoclaw run`")
    return settings, db.connect(settings.db_path)


def ask_host(settings: Settings, op: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any] | None:
    """The running host's answer to `op`, or None when no host runs or it does not answer in time (the caller
    then works on the database)."""
    from nanoclaw.client import LocalClient
    from nanoclaw.errors import HostNotRunning

    try:
        with LocalClient(settings.socket_path, timeout=timeout) as client:
            return client.request(op, **fields)
    except (HostNotRunning, OSError, ValueError):
        return None
