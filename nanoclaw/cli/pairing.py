"""`nanoclaw pairing …` — strangers who asked to talk to the assistant in a direct chat, and their codes."""

from __future__ import annotations

import time

import click

from nanoclaw.cli.options import ask_host, home_option, open_db


@click.group()
def pairing() -> None:
    """Approve people who asked to talk to the assistant with a pairing code.

    On a channel whose new chats are met with `pairing` (nanoclaw channels
    new-chats CHANNEL pairing), a stranger's first direct message gets an
    8-character code, valid for 1 hour; their messages wait until you approve
    it here, with the card's button or on the dashboard.

    \b
    nanoclaw pairing list
    nanoclaw pairing approve K7PQ2MXA
    nanoclaw pairing approve telegram K7PQ2MXA --group family
    nanoclaw pairing deny K7PQ2MXA
    """


@pairing.command("list")
@click.argument("channel", required=False)
@home_option
@click.pass_context
def list_requests(ctx: click.Context, channel: str | None) -> None:
    """Open pairing requests (of CHANNEL only, when given): code, who, first line, time left."""
    from nanoclaw.db import approvals

    _settings, conn = open_db(ctx)
    found = [a for a in approvals.open_of_kind(conn, "pairing") if channel in (None, a.payload.get("channel"))]
    if not found:
        click.echo("No open pairing requests.")
    for request in found:
        left = max(0, int((request.expires_at - time.time()) / 60))
        click.echo(f"{request.payload.get('code')}  {request.payload.get('channel'):<10} "
                   f"{request.payload.get('who')}  “{request.payload.get('first_line', '')}”  ({left} min left)")


@pairing.command("approve")
@click.argument("words", nargs=-1, required=True, metavar="[CHANNEL] CODE")
@click.option("--group", default="main", show_default=True, help="the agent group that answers them")
@home_option
@click.pass_context
def approve(ctx: click.Context, words: tuple[str, ...], group: str) -> None:
    """Let the person with this CODE talk to the assistant; what they wrote is answered."""
    _decide(ctx, words, approve=True, group=group)


@pairing.command("deny")
@click.argument("words", nargs=-1, required=True, metavar="[CHANNEL] CODE")
@home_option
@click.pass_context
def deny(ctx: click.Context, words: tuple[str, ...]) -> None:
    """Refuse the request with this CODE; that chat is not answered."""
    _decide(ctx, words, approve=False, group="")


def _decide(ctx: click.Context, words: tuple[str, ...], *, approve: bool, group: str) -> None:
    from nanoclaw.db import agent_groups, messaging_groups, users
    from nanoclaw.host.newcomers import wire_chat
    from nanoclaw.host.onboarding_ops import no_such_code
    from nanoclaw.host.pairing import find_code

    if len(words) > 2:
        raise click.ClickException("give the code, optionally after the channel: nanoclaw pairing approve [CHANNEL] CODE")
    code = words[-1]
    settings, conn = open_db(ctx)
    if approve and agent_groups.get(conn, group) is None:
        raise click.ClickException(f"no agent group {group!r} (see nanoclaw groups)")
    reply = ask_host(settings, "pairing_approve" if approve else "pairing_deny", code=code, group=group)
    if reply is not None:
        if not reply.get("ok"):
            raise click.ClickException(reply.get("error") or "the host refused")
        click.echo(reply["outcome"])
        return
    request = find_code(conn, code)  # the host is stopped: decide in the database; it answers at its next start
    if request is None:
        raise click.ClickException(no_such_code(code))
    from nanoclaw.db import approvals

    if approvals.decide(conn, request.id, "approved" if approve else "denied", "cli:owner") is None:
        raise click.ClickException(no_such_code(code))
    chat = messaging_groups.get(conn, int(request.payload["chat"]))
    if chat is None:
        raise click.ClickException("that chat no longer exists")
    if approve:
        wire_chat(conn, chat, group, users.get(conn, int(request.payload["user"])))
        click.echo(f"Approved: {request.payload.get('who')} talks to {group}; what they wrote is answered when the "
                   "host starts (nanoclaw run).")
    else:
        messaging_groups.set_admission(conn, chat.id, "ignored")
        click.echo(f"Denied: {request.payload.get('who')} is not answered.")
