"""`nanoclaw backup` and `nanoclaw restore`."""

from __future__ import annotations

from pathlib import Path

import click

from nanoclaw.cli.options import home_option, load_settings
from nanoclaw.errors import NanoClawError


@click.command()
@click.argument("archive", type=click.Path(path_type=Path))
@home_option
@click.pass_context
def backup(ctx: click.Context, archive: Path) -> None:
    """Write a consistent snapshot of the NanoClaw home to ARCHIVE (.tar.gz), also while the host runs.

    \b
    nanoclaw backup ~/backups/nanoclaw-$(date +%F).tar.gz
    """
    from nanoclaw.backup import backup as do_backup

    settings = load_settings(ctx)
    try:
        counts = do_backup(settings, archive, config_dir=settings.config_dir)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backed up {counts['databases']} databases and {counts['files']} files to {archive}")
    if counts.get("skipped"):
        click.echo(f"left out {counts['skipped']} FIFOs, sockets, huge or too deeply nested files the agents made")


@click.command()
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="move an existing home aside (HOME.before-restore-TIME) first")
@home_option
@click.pass_context
def restore(ctx: click.Context, archive: Path, force: bool) -> None:
    """Restore ARCHIVE into the NanoClaw home (stop the host first)."""
    from nanoclaw.backup import restore as do_restore
    from nanoclaw.client import LocalClient
    from nanoclaw.errors import HostNotRunning

    settings = load_settings(ctx)
    try:
        LocalClient(settings.socket_path, timeout=2).close()
        raise click.ClickException("the host is running on this home: stop it before restoring")
    except HostNotRunning:
        pass
    try:
        counts = do_restore(archive, settings.home, force=force, config_dir=settings.config_dir)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"restored {counts['databases']} databases into {settings.home}; start it with: nanoclaw run")
    if counts.get("skipped"):
        click.echo(f"left out {counts['skipped']} links that pointed outside the home (absolute or ../); see the log")
    if counts["vault"]:
        click.echo(f"the vault's secrets went to {settings.config_dir}; they decrypt only with the vault.key "
                   "you kept from the old machine")
