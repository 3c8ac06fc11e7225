"""`nanoclaw …` — run the assistant and talk to it.

Every command reads settings from NANOCLAW_* variables and `.env`; `--home`
picks another NanoClaw home (default ~/.nanoclaw).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from nanoclaw.cli.options import home_option  # noqa: F401 - also used by the command modules
from nanoclaw.config import Settings
from nanoclaw.errors import HostNotRunning, NanoClawError


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return Settings.load(home=ctx.obj.get("home"), **overrides)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc


def _client(settings: Settings, timeout: float | None = 10.0) -> Any:
    from nanoclaw.client import LocalClient

    try:
        return LocalClient(settings.socket_path, timeout=timeout)
    except HostNotRunning as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), help="NanoClaw home folder [env NANOCLAW_HOME; default ~/.nanoclaw]")
@click.version_option(package_name="nanoclaw")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """NanoClaw: a personal AI assistant whose agents run in OS sandboxes.

    \b
    Set it up (first time):     nanoclaw setup
    Start the assistant:        nanoclaw run
    Chat with it:               nanoclaw chat
    One message, one answer:    nanoclaw send "what's on today?"
    What is running:            nanoclaw status
    Check this machine:         nanoclaw doctor
    Link your chat accounts:    nanoclaw owner link
    Run it in the background:   nanoclaw service install
    """
    ctx.ensure_object(dict)
    ctx.obj["home"] = home


@main.command()
@click.option("--provider", help="model provider: mock, claude, … [default: claude when a key is set, else mock]")
@click.option("--runtime", help="sandbox runtime [default: bwrap]")
@click.option("--name", "assistant_name", help="assistant name, also the trigger word (@Name) [default: Andy]")
@click.option("--model", help="default model for agent groups that set none")
@click.option("--max-sandboxes", type=int, help="how many sandboxes may run at once [default: 8]")
@click.option("--idle-timeout", type=float, help="seconds before an idle runner exits [default: 300]")
@click.option("--no-doorbell", is_flag=True, default=None, help="poll only (for runtimes where FIFOs do not cross)")
@click.option("--log-level", help="DEBUG, INFO, WARNING [default: INFO]")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path),
              help="write logs to this file, rotated at 10 MB, 5 old files kept [default: stderr]")
@home_option
@click.pass_context
def run(ctx: click.Context, no_doorbell: bool | None, log_file: Path | None, **options: Any) -> None:
    """Start the host: channels, router, runners, delivery.

    Runs in the foreground until Ctrl-C or SIGTERM. Talk to it from another
    terminal with `nanoclaw chat`.
    """
    from nanoclaw import logs
    from nanoclaw.host.app import Host

    from nanoclaw.host.privileges import drop_unneeded_capabilities

    settings = _settings(ctx, doorbell=False if no_doorbell else None, **options)
    logs.setup(settings.log_level, log_file)
    drop_unneeded_capabilities()  # before any thread: module loading, clock, kernel log… gone for good
    try:
        host = Host(settings)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    from nanoclaw.host.web import login_url

    click.echo(
        f"NanoClaw is running — home {settings.home}, provider {host.settings.provider}, "
        f"runtime {host.settings.runtime}.\nChat with it: nanoclaw chat, or in a browser: {login_url(settings)}\n"
        "(Ctrl-C stops the host)",
        err=True,
    )
    try:
        asyncio.run(host.run_forever())
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("web-url")
@home_option
@click.pass_context
def web_url(ctx: click.Context) -> None:
    """Print the link that logs a browser into the web chat and dashboard.

    The link holds the owner's token: anyone with it can talk to the assistant
    as you. Open it on this machine; the browser keeps a login cookie afterwards.
    """
    from nanoclaw.host import bootstrap
    from nanoclaw.host.web import login_url

    settings = _settings(ctx)
    bootstrap.ensure_home(settings)
    click.echo(login_url(settings))


@main.command()
@click.argument("text")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="seconds to wait for the answer")
@home_option
@click.pass_context
def send(ctx: click.Context, text: str, timeout: float) -> None:
    """Send TEXT to the assistant from the terminal chat and print the answer.

    \b
    Example: nanoclaw send "remind me what we decided yesterday"
    """
    settings = _settings(ctx)
    with _client(settings, timeout=timeout) as client:
        client.request("subscribe")
        reply = client.request("send", text=text)
        if not reply.get("ok"):
            raise click.ClickException(reply.get("error") or "the host refused the message")
        if reply.get("reply"):
            click.echo(reply["reply"])
        if not reply.get("triggered", True):
            return
        deadline = time.monotonic() + timeout
        try:
            for event in client.events():
                if event.get("event") == "message":
                    click.echo(event.get("text", ""))
                elif event.get("event") == "processed" and reply["id"] in event.get("ids", []):
                    if event.get("status") == "failed":
                        raise click.ClickException("the assistant could not process the message")
                    return
                if time.monotonic() > deadline:
                    break
        except TimeoutError:
            pass
        raise click.ClickException(f"no answer within {timeout:.0f} s (it will show in `nanoclaw chat` when it comes)")


@main.command()
@home_option
@click.pass_context
def chat(ctx: click.Context) -> None:
    """Chat with the assistant in this terminal (Ctrl-D or /quit to leave)."""
    settings = _settings(ctx)
    client = _client(settings, timeout=None)
    hello = client.request("subscribe")
    name = hello.get("assistant", settings.assistant_name)
    click.echo(f"Chatting with {name}. Ctrl-D or /quit to leave.", err=True)
    lock = threading.Lock()

    def receive() -> None:
        try:
            for event in client.events():
                with lock:
                    if event.get("event") == "message":
                        click.echo(f"\r{name}: {event.get('text', '')}")
                    elif event.get("event") == "typing" and event.get("on"):
                        click.echo(f"\r{name} is typing…", err=True)
                    elif event.get("ok") is False:
                        click.echo(f"\r! {event.get('error')}", err=True)
        except (HostNotRunning, OSError, ValueError):
            click.echo("\nThe host went away.", err=True)

    threading.Thread(target=receive, daemon=True).start()
    while True:
        try:
            line = input()
        except (EOFError, KeyboardInterrupt):
            break
        if line.strip() in ("/quit", "/exit"):
            break
        if not line.strip():
            continue
        try:
            client.write({"op": "send", "text": line})
        except OSError:
            click.echo("The host went away.", err=True)
            sys.exit(1)
    client.close()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the raw status as JSON")
@home_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each channel's connection, agent groups, sessions, live runners and the start queue."""
    settings = _settings(ctx)
    with _client(settings) as client:
        reply = client.request("status")
    if not reply.get("ok"):
        raise click.ClickException(reply.get("error", "status failed"))
    data = reply["status"]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"host pid {data['pid']} up {data['uptime']:.0f} s · home {data['home']}")
    click.echo(f"provider {data['provider']} · runtime {data['runtime']}")
    click.echo("channels:")
    for name, health in (data.get("channel_health") or {}).items():
        click.echo(f"  {name:<12} {health.get('text') or health.get('state')}")
        if health.get("state") == "failed" and health.get("fix"):
            click.echo(f"  {'':<12} fix: {health['fix']}")
    click.echo(f"runners {data['live_runners']}/{data['max_sandboxes']} live · queue {len(data['queue'])}"
               f" · delivered {data['delivered']}")
    memory, pool = data["memory"], data["pool"]
    click.echo(f"memory: runners {memory['runners_mb']} MB · pool {memory['pool_mb']} MB · budget {memory['budget_mb']} MB")
    ready = sum(1 for p in pool["sandboxes"] if p["ready"])
    click.echo(f"pool: off ({pool['off']})" if pool["off"] else
               f"pool: {ready} ready of {pool['target']} · {pool['adopted']} adopted since start")
    click.echo("agent groups: " + ", ".join(g["id"] + (" (admin)" if g["admin"] else "") for g in data["agent_groups"]))
    click.echo(f"sessions ({len(data['sessions'])}):")
    for s in data["sessions"]:
        runner = (f"runner pid {s['runner_pid']} up {s['runner_uptime']} s, {s['runner_rss_mb']} MB"
                  if s["runner_pid"] else "no runner")
        thread = f" thread {s['thread']}" if s["thread"] else ""
        click.echo(f"  session {s['id']}  {s['agent_group']} ← {s['chat']}{thread}  [{s['mode']}]  {runner}")


from nanoclaw.cli.groups import groups  # noqa: E402
from nanoclaw.cli.doctor import doctor  # noqa: E402

main.add_command(groups)
main.add_command(doctor)

from nanoclaw.cli.service import logs, service  # noqa: E402
from nanoclaw.cli.setup import setup  # noqa: E402

main.add_command(setup)
main.add_command(service)
main.add_command(logs)

from nanoclaw.cli.tasks import tasks  # noqa: E402

main.add_command(tasks)

from nanoclaw.cli.backup import backup, restore  # noqa: E402

main.add_command(backup)
main.add_command(restore)

from nanoclaw.cli.sandbox import sandbox  # noqa: E402

main.add_command(sandbox)

from nanoclaw.cli.secrets import secrets  # noqa: E402

main.add_command(secrets)

from nanoclaw.cli.channels import channels  # noqa: E402
from nanoclaw.cli.owner import owner  # noqa: E402
from nanoclaw.cli.pairing import pairing  # noqa: E402

main.add_command(channels)
main.add_command(owner)
main.add_command(pairing)
