"""`nanoclaw secrets` — the vault's secrets: values come from a hidden prompt or stdin, never from arguments.

They go to the backend NANOCLAW_VAULT_BACKEND selects: NanoClaw's own vault (builtin) or OneCLI.
"""

from __future__ import annotations

import sys
import time

import click

from nanoclaw.cli.options import load_settings
from nanoclaw.errors import NanoClawError
from nanoclaw.vault.backend import SecretBackend, open_backend
from nanoclaw.vault.store import SecretRule


def _store() -> SecretBackend:
    settings = load_settings(click.get_current_context().find_root())
    try:
        return open_backend(settings)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc


def _read_value(name: str) -> str:
    if sys.stdin.isatty():
        return click.prompt(f"value of {name} (typing is hidden)", hide_input=True, confirmation_prompt=True)
    value = sys.stdin.read()
    return value[:-1] if value.endswith("\n") else value


@click.group()
def secrets() -> None:
    """Secrets the vault injects into agents' requests; agents never see them.

    With NANOCLAW_VAULT_BACKEND=onecli they are kept in OneCLI (its `onecli` CLI),
    where a secret serves every agent group.

    \b
    printf %s "$TOKEN" | nanoclaw secrets add github --host api.github.com --format 'Bearer {value}'
    nanoclaw secrets list
    nanoclaw secrets rotate github        (asks for the new value)
    nanoclaw secrets rm github
    """


@secrets.command("add")
@click.argument("name")
@click.option("--host", required=True, help="host it is for; a glob such as *.example.com allowed")
@click.option("--header", default="Authorization", show_default=True, help="request header that carries it")
@click.option("--format", "value_format", default="Bearer {value}", show_default=True,
              help="the header's value, {value} replaced by the secret")
@click.option("--path", default="*", show_default=True, help="only for request paths matching this glob")
@click.option("--method", default="*", show_default=True, help="only for this HTTP method")
@click.option("--group", "groups", multiple=True, help="only for this agent group (repeatable) [default: all]")
def add(name: str, host: str, header: str, value_format: str, path: str, method: str, groups: tuple[str, ...]) -> None:
    """Store secret NAME; its value is read from a hidden prompt, or from stdin when piped."""
    store = _store()
    try:
        rule = store.add(SecretRule(name, host, header, value_format, path, method.upper(), groups), _read_value(name))
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    where = "" if store.scoped else " (in OneCLI, for every agent group)"
    click.echo(f"stored {rule.name}: injected as {rule.header} on requests to {rule.host}{where}")


@secrets.command("list")
def list_secrets() -> None:
    """The stored secrets and where each goes (never their values)."""
    try:
        rules = _store().rules()
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    if not rules:
        click.echo("no secrets yet (nanoclaw secrets add --help)")
    for r in rules:
        scope = ",".join(r.groups) or "all groups"  # OneCLI's are always all groups
        when = time.strftime("%Y-%m-%d", time.localtime(r.rotated_at))
        click.echo(f"{r.name:<20} {r.host:<28} {r.header}: {r.format.replace('{value}', '•••')}  "
                   f"{r.method} {r.path}  {scope}  set {when}")


@secrets.command("rotate")
@click.argument("name")
def rotate(name: str) -> None:
    """Replace the value of NAME (hidden prompt or stdin); its rule stays."""
    store = _store()
    try:
        store.rotate(name, _read_value(name))
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"rotated {name}")


@secrets.command("rm")
@click.argument("name")
def remove(name: str) -> None:
    """Delete secret NAME."""
    store = _store()
    try:
        store.remove(name)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"removed {name}")
