"""`nanoclaw channels …` — chat channels: how each is connected, and how it meets chats nobody wired."""

from __future__ import annotations

import click

from nanoclaw.cli.options import ask_host, home_option, open_db
from nanoclaw.db.channel_settings import NEW_CHATS


@click.group(invoke_without_command=True)
@click.pass_context
def channels(ctx: click.Context) -> None:
    """Each chat channel's connection and its default for new chats.

    \b
    nanoclaw channels                              list them
    nanoclaw channels new-chats telegram pairing   strangers on Telegram get a pairing code
    nanoclaw channels new-chats email main         direct mail is answered by main at once
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_channels)


@channels.command("list")
@home_option
@click.pass_context
def list_channels(ctx: click.Context) -> None:
    """Configured channels: connected, retrying (why, next try) or failed (why, fix); new chats: ask, main, …"""
    from nanoclaw import registry
    from nanoclaw.db import channel_settings

    settings, conn = open_db(ctx)
    reply = ask_host(settings, "status")
    health = (reply or {}).get("status", {}).get("channel_health", {}) if reply else {}
    names = sorted({*health, *(n for n in registry.names(registry.CHANNELS)
                               if n in ("terminal", "web") or settings.channel_enabled(n))})
    for name in names:
        state = health.get(name, {}).get("text") or ("host not running" if reply is None else "not started")
        policy = "-" if name in ("terminal", "web") else channel_settings.new_chats(conn, name)
        click.echo(f"{name:<12} {state}  · new chats: {policy}")
        if health.get(name, {}).get("state") == "failed" and health[name].get("fix"):
            click.echo(f"{'':<12} fix: {health[name]['fix']}")


@channels.command("new-chats")
@click.argument("channel")
@click.argument("policy", type=click.Choice(NEW_CHATS))
@home_option
@click.pass_context
def new_chats(ctx: click.Context, channel: str, policy: str) -> None:
    """How CHANNEL meets a chat nobody wired.

    \b
    ask      hold its messages and ask the owner (a card: answer with main or another agent, ignore, block)
    main     direct chats are answered by main at once (group chats are still asked about)
    pairing  a stranger in a direct chat gets a code the owner approves (nanoclaw pairing approve CODE)
    ignore   record the chat, answer nothing
    """
    from nanoclaw import registry
    from nanoclaw.db import channel_settings

    if channel not in registry.names(registry.CHANNELS):
        raise click.ClickException(f"no channel {channel!r} (installed: {', '.join(registry.names(registry.CHANNELS))})")
    _settings, conn = open_db(ctx)
    channel_settings.set_new_chats(conn, channel, policy)
    click.echo(f"{channel}: new chats → {policy}")
