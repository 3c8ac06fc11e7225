"""`nanoclaw owner …` — the owner's accounts on chat apps: link one with a one-time code, list, unlink."""

from __future__ import annotations

import time

import click

from nanoclaw.cli.options import home_option, open_db


@click.group()
def owner() -> None:
    """One owner, many accounts: make your chat app accounts owner identities.

    An owner identity may answer approval cards and use /approve from any
    chat, and cards go to a direct chat with one. `link` prints a one-time
    code; send it to the assistant from the account to link (a direct message:
    that chat is then wired to main too).

    \b
    nanoclaw owner link
    nanoclaw owner list
    nanoclaw owner unlink telegram:123456789
    """


@owner.command()
@click.option("--ttl", type=click.IntRange(60, 7 * 24 * 3600), default=3600, show_default=True,
              help="seconds the code stays valid")
@click.option("--wait", "wait", type=float, default=0, metavar="SECONDS",
              help="wait this long for the code to be used and say who used it (the host must be running)")
@home_option
@click.pass_context
def link(ctx: click.Context, ttl: int, wait: float) -> None:
    """Print a one-time code; whoever sends it to the assistant becomes an owner identity."""
    from nanoclaw.db import owner_links

    _settings, conn = open_db(ctx)
    code = owner_links.create(conn, ttl)
    shown = f"{code[:4]}-{code[4:]}"
    click.echo(f"Send this code to the assistant from the chat account you want to link: {shown}")
    click.echo(f"(valid {ttl // 60} min, once; anyone who sends it becomes an owner: do not share it)")
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        who = owner_links.used(conn, code)
        if who:
            click.echo(f"Linked {who} as an owner.")
            return
        time.sleep(1)
    if wait:
        raise click.ClickException("the code was not used in time; it stays valid until it expires")


@owner.command("list")
@home_option
@click.pass_context
def list_identities(ctx: click.Context) -> None:
    """Owner and admin identities (and blocked people), one per line."""
    from nanoclaw.host.owners import identities

    _settings, conn = open_db(ctx)
    for user in identities(conn):
        click.echo(f"{user.role:<8} {user.channel_type}:{user.platform_user_id}  {user.display_name or ''}")


@owner.command()
@click.argument("identity", metavar="CHANNEL:USER_ID")
@home_option
@click.pass_context
def unlink(ctx: click.Context, identity: str) -> None:
    """Make CHANNEL:USER_ID (see nanoclaw owner list) a plain member again."""
    from nanoclaw.host.owners import unlink as demote

    channel, sep, user_id = identity.partition(":")
    if not sep or not channel or not user_id:
        raise click.ClickException(f"{identity!r} must look like channel:user_id, e.g. telegram:123456789")
    _settings, conn = open_db(ctx)
    if demote(conn, channel, user_id) is None:
        raise click.ClickException(f"{identity} is not an owner or admin identity (see nanoclaw owner list)")
    click.echo(f"{identity} is no longer an owner.")
