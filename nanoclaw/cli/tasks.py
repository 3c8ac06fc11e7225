"""`nanoclaw tasks …` — scheduled tasks, through the running host."""

from __future__ import annotations

from typing import Any

import click

from nanoclaw.cli.options import home_option, load_settings


def _call(ctx: click.Context, op: str, **fields: Any) -> dict[str, Any]:
    from nanoclaw.client import LocalClient
    from nanoclaw.errors import HostNotRunning

    settings = load_settings(ctx)
    try:
        with LocalClient(settings.socket_path, timeout=30) as client:
            reply = client.request(op, **fields)
    except HostNotRunning as exc:
        raise click.ClickException(str(exc)) from exc
    if not reply.get("ok"):
        raise click.ClickException(reply.get("error") or f"{op} failed")
    return reply


def _line(task: dict[str, Any]) -> str:
    return (f"{task['id']}  {task['group']:<10} {task['status']:<9} next {task['next_run']:<17} "
            f"{task['schedule']} ({task['timezone']})  {task['prompt'][:60]}")


@click.group()
def tasks() -> None:
    """Scheduled tasks: add, list, pause, resume, cancel, run now.

    \b
    nanoclaw tasks add --group main --cron "0 8 * * 1" --prompt "send me the week's AI news"
    nanoclaw tasks list
    nanoclaw tasks run-now t-1a2b3c4d
    """


@tasks.command("add")
@click.option("--group", default="main", show_default=True, help="agent group that runs the task")
@click.option("--prompt", required=True, help="what the agent should do each time")
@click.option("--cron", help="cron expression, e.g. '0 9 * * *' (daily 09:00)")
@click.option("--every", type=float, help="interval in seconds (at least 60)")
@click.option("--at", "at_", help="run once at this ISO time, e.g. 2026-12-24T18:00")
@click.option("--timezone", help="IANA timezone [default: the host's]")
@click.option("--chat", help="deliver to this chat (channel:id) [default: the group's first wired chat]")
@home_option
@click.pass_context
def add(ctx: click.Context, group: str, prompt: str, cron: str | None, every: float | None, at_: str | None,
        timezone: str | None, chat: str | None) -> None:
    """Schedule PROMPT for an agent group (exactly one of --cron, --every, --at)."""
    given = [(k, v) for k, v in (("cron", cron), ("interval", every), ("once", at_)) if v is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --cron, --every or --at")
    kind, spec = given[0]
    reply = _call(ctx, "tasks_add", group=group, prompt=prompt, kind=kind,
                  spec=f"{spec:g}" if isinstance(spec, float) else spec, timezone=timezone, chat=chat)
    click.echo(f"added {_line(reply['task'])}")


@tasks.command("list")
@click.option("--group", help="only this agent group")
@click.option("--all", "all_", is_flag=True, help="include done and cancelled tasks")
@home_option
@click.pass_context
def list_tasks(ctx: click.Context, group: str | None, all_: bool) -> None:
    """Tasks with their id, status, next run (local time), schedule and prompt."""
    found = _call(ctx, "tasks_list", group=group, all=all_)["tasks"]
    if not found:
        click.echo("no tasks")
    for task in found:
        click.echo(_line(task))


def _simple(name: str, op: str, verb: str) -> None:
    @tasks.command(name)
    @click.argument("task_id")
    @home_option
    @click.pass_context
    def command(ctx: click.Context, task_id: str) -> None:
        reply = _call(ctx, op, id=task_id)
        click.echo(f"{verb} {_line(reply['task'])}" if "task" in reply else f"{verb} {task_id}")

    command.__doc__ = f"{verb.capitalize()} task TASK_ID."


_simple("pause", "tasks_pause", "paused")
_simple("resume", "tasks_resume", "resumed")
_simple("cancel", "tasks_cancel", "cancelled")


@tasks.command("run-now")
@click.argument("task_id")
@home_option
@click.pass_context
def run_now(ctx: click.Context, task_id: str) -> None:
    """Run task TASK_ID now (its schedule does not change); the result goes to its chat."""
    reply = _call(ctx, "tasks_run_now", id=task_id)
    click.echo(f"started {task_id} in session {reply['session']}")
