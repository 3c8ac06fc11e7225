"""What every `nanoclaw` subcommand shares: `--home` and loading the settings.

Its own module so command modules (doctor, setup, service, …) can use it
without importing `nanoclaw.cli.main`, which imports them.
"""

from __future__ import annotations

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
