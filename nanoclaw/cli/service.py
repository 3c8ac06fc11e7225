"""`nanoclaw service …` and `nanoclaw logs` — run the host in the background and read its logs."""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import click

from nanoclaw import service as svc
from nanoclaw.cli.options import home_option, load_settings
from nanoclaw.config import Settings
from nanoclaw.errors import ConfigError, HostNotRunning, NanoClawError


def _manager() -> svc.ServiceManager:
    try:
        return svc.current_manager()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _host_pid(settings: Settings) -> int | None:
    from nanoclaw.client import LocalClient

    try:
        with LocalClient(settings.socket_path, timeout=3) as client:
            return client.request("ping").get("pid")
    except (HostNotRunning, OSError, ValueError):
        return None


def _env_file() -> Path | None:
    """The `.env` this shell's commands read, so the service reads the same one."""
    path = Path(os.environ.get("NANOCLAW_ENV_FILE") or ".env")
    return path if path.is_file() else None


def _run_step(args: list[str]) -> None:
    click.echo(f"  $ {' '.join(args)}")
    result = svc.run_command(args, timeout=30)
    if result.returncode != 0:
        raise click.ClickException(
            f"`{' '.join(args)}` failed: {(result.stderr or result.stdout).strip() or 'exit ' + str(result.returncode)}"
        )


def install_service(settings: Settings, *, dry_run: bool = False, start: bool = True) -> None:
    """Write the service file for `settings.home` and (unless told not to) start it. Used by `setup` too."""
    from nanoclaw.host.bootstrap import ensure_home

    manager = _manager()
    env_file = _env_file()
    try:
        spec = svc.ServiceSpec.for_settings(settings, env_file)
        content = manager.render(spec)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    if dry_run:
        click.echo(f"# {manager.name}: would write {manager.path}", err=True)
        click.echo(content.decode(), nl=False)
        click.echo("# then run: " + " && ".join(" ".join(c) for c in manager.activate_commands()), err=True)
        return
    ensure_home(settings)  # the logs folder must exist before launchd opens its output files
    unchanged = manager.path.is_file() and manager.path.read_bytes() == content
    manager.path.parent.mkdir(parents=True, exist_ok=True)
    if not unchanged:
        manager.path.write_bytes(content)
    click.echo(f"{'Kept' if unchanged else 'Wrote'} the {manager.name} service file {manager.path}")
    click.echo(f"  runs:  {' '.join(spec.command)}")
    click.echo(f"  home:  {spec.home}")
    click.echo(f"  logs:  {spec.log_file} (rotated at 10 MB; read them with: nanoclaw logs -f)")
    if env_file is not None:
        click.echo(f"  also reads settings from {env_file.resolve()}")
    commands = manager.activate_commands()
    if not start:
        click.echo("Not started (--no-start). Start it with:")
        for command in commands:
            click.echo(f"  {' '.join(command)}")
        return
    if not manager.available():
        click.echo(
            f"{manager.name} cannot be reached here (no user session bus: under sudo, su or in a container?).\n"
            "The service file is written; start it from a login session with:"
        )
        for command in commands:
            click.echo(f"  {' '.join(command)}")
        click.echo("Until then, run the host in a terminal with: nanoclaw run")
        return
    pid = _host_pid(settings)
    if pid is not None:
        click.echo(f"Note: a host is already running on {settings.home} (pid {pid}). The service keeps retrying "
                   "every 5 s and takes over once you stop that one (Ctrl-C in its terminal).")
    click.echo("Starting it:")
    for command in commands:
        _run_step(command)
    if isinstance(manager, svc.SystemdUser):
        _linger_hint()
    click.echo("NanoClaw now runs as a service: it starts when you log in and restarts if it fails.")


def _linger_hint() -> None:
    import getpass

    user = getpass.getuser()
    result = svc.run_command(["loginctl", "show-user", user, "-p", "Linger", "--value"], 5)
    if result.returncode == 0 and result.stdout.strip() == "no":
        click.echo(f"To keep it running after you log out: loginctl enable-linger {user}")


@click.group()
def service() -> None:
    """Run NanoClaw in the background: starts at login, restarts on failure.

    Linux: a systemd user unit (~/.config/systemd/user/nanoclaw.service).
    macOS: a launchd agent (~/Library/LaunchAgents/dev.nanoclaw.plist).
    The host writes its logs to NANOCLAW_HOME/logs/host.log, rotated at 10 MB.

    \b
    nanoclaw service install --dry-run   show the file it would write
    nanoclaw service install             write it and start the service
    nanoclaw service status              installed? running? where are the logs?
    nanoclaw service logs -f             follow the host's log
    nanoclaw service uninstall           stop it and remove the file
    """


@service.command()
@click.option("--dry-run", is_flag=True, help="print the service file and the commands instead of installing")
@click.option("--no-start", is_flag=True, help="write the service file but do not start the service")
@home_option
@click.pass_context
def install(ctx: click.Context, dry_run: bool, no_start: bool) -> None:
    """Install NanoClaw as a per-user service for this home and start it.

    \b
    Example: nanoclaw service install
             nanoclaw --home ~/work-assistant service install --dry-run
    """
    install_service(load_settings(ctx), dry_run=dry_run, start=not no_start)


@service.command()
@home_option
@click.pass_context
def uninstall(ctx: click.Context) -> None:
    """Stop the service and remove its file (the home, its data and logs stay)."""
    manager = _manager()
    if not manager.path.is_file():
        click.echo(f"No NanoClaw service is installed ({manager.path} does not exist).")
        return
    reachable = manager.available()
    if reachable:
        click.echo("Stopping it:")
        for command in manager.deactivate_commands():
            click.echo(f"  $ {' '.join(command)}")
            result = svc.run_command(command, 30)
            if result.returncode != 0:  # not loaded is fine: the file goes anyway
                click.echo(f"    ({(result.stderr or result.stdout).strip() or 'exit ' + str(result.returncode)})")
    else:
        click.echo(f"{manager.name} cannot be reached here; if the service runs, stop it from a login session with:")
        for command in manager.deactivate_commands():
            click.echo(f"  {' '.join(command)}")
    manager.path.unlink()
    if reachable:
        for command in manager.after_removal_commands():
            svc.run_command(command, 30)
    click.echo(f"Removed {manager.path}. Your home, data and logs are untouched.")


@service.command()
@home_option
@click.pass_context
def status(ctx: click.Context) -> None:
    """Whether the service is installed and running, and where its logs are."""
    settings = load_settings(ctx)
    manager = _manager()
    state = manager.state()
    click.echo(f"service: {manager.name} {state.path} ({'installed' if state.installed else 'not installed'})")
    if state.installed:
        click.echo(f"state:   {state.detail}")
        if state.home and Path(state.home) != settings.home.expanduser().resolve():
            click.echo(f"         note: the service runs home {state.home}, not {settings.home}")
    pid = _host_pid(settings)
    click.echo(f"host:    {'answers, pid ' + str(pid) if pid else 'not running'} ({settings.socket_path})")
    log_file = settings.logs_dir / svc.LOG_FILE
    size = f"{log_file.stat().st_size / 1e6:.1f} MB" if log_file.is_file() else "not written yet"
    click.echo(f"logs:    {log_file} ({size}) · nanoclaw logs -f")
    if not state.installed:
        click.echo("Install it with: nanoclaw service install")


# -- logs ------------------------------------------------------------------------


def _last_lines(path: Path, count: int) -> tuple[list[str], int]:
    """The last `count` lines and the offset where the file ended."""
    with open(path, "rb") as f:
        lines = deque((line.decode(errors="replace").rstrip("\n") for line in f), maxlen=max(count, 0))
        return list(lines), f.tell()


def _follow(path: Path, offset: int, poll: float = 0.3) -> None:
    """Print lines appended after `offset`; reopen when the file is rotated or truncated."""
    f: Any = None
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: SIM115 - kept open across loop turns
                    f.seek(offset)
                except FileNotFoundError:
                    time.sleep(poll)
                    continue
            line = f.readline()
            if line:
                click.echo(line.decode(errors="replace").rstrip("\n"))
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is None or st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell():
                f.close()
                f, offset = None, 0  # rotated: the new file is read from its start
                continue
            time.sleep(poll)
    finally:
        if f is not None:
            f.close()


@click.command()
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), default=50, show_default=True,
              help="how many of the last lines to print")
@click.option("-f", "--follow", is_flag=True, help="keep printing new lines as they are written (Ctrl-C stops)")
@home_option
@click.pass_context
def logs(ctx: click.Context, count: int, follow: bool) -> None:
    """Print the host's log (NANOCLAW_HOME/logs/host.log).

    The service writes it; so does `nanoclaw run --log-file`.

    \b
    Example: nanoclaw logs -n 100
             nanoclaw logs --follow
    """
    settings = load_settings(ctx)
    path = settings.logs_dir / svc.LOG_FILE
    offset = 0
    if path.is_file():
        lines, offset = _last_lines(path, count)
        for line in lines:
            click.echo(line)
    elif not follow:
        raise click.ClickException(
            f"no log at {path} yet: the host writes it when it runs as a service (nanoclaw service install) "
            f"or with: nanoclaw run --log-file {path}"
        )
    else:
        click.echo(f"waiting for {path} …", err=True)
    if follow:
        try:
            _follow(path, offset)
        except KeyboardInterrupt:
            pass


service.add_command(logs)
