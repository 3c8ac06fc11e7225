"""`nanoclaw groups …` — agent groups, chats and their wiring (works with or without a running host)."""

from __future__ import annotations

from typing import Any

import click

from nanoclaw import db
from nanoclaw.config import Settings
from nanoclaw.db import agent_groups, group_mcp_servers, group_mounts, held_messages, messaging_groups, wirings
from nanoclaw.errors import NanoClawError


def _conn(ctx: click.Context) -> Any:
    try:
        settings = Settings.load(home=ctx.obj.get("home"))
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    if not settings.db_path.exists():
        raise click.ClickException(f"no NanoClaw home at {settings.home} yet: start it once with `nanoclaw run`")
    return settings, db.connect(settings.db_path)


@click.group(invoke_without_command=True)
@click.pass_context
def groups(ctx: click.Context) -> None:
    """List agent groups and chats; add agent groups; wire chats to them.

    \b
    nanoclaw groups                                   list everything
    nanoclaw groups add family --name "Family helper"
    nanoclaw groups wire telegram:-100123 family --trigger mention
    nanoclaw groups mount family ~/Pictures/holidays
    nanoclaw groups mcp family --remove files
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_groups)


@groups.command("list")
@click.pass_context
def list_groups(ctx: click.Context) -> None:
    """Agent groups, wired chats, chats that wrote but are not wired, and people's roles (owner, admin, blocked)."""
    _settings, conn = _conn(ctx)
    click.echo("agent groups:")
    for g in agent_groups.list_all(conn):
        extra = " admin" if g.is_admin else ""
        click.echo(f"  {g.id:<16} {g.name}{extra}  provider={g.provider or 'default'}")
        for m in group_mounts.for_group(conn, g.id):
            click.echo(f"  {'':<16}   /workspace/extra/{m.name} ← {m.host_path} ({'rw' if m.writable else 'ro'})")
        for server in group_mcp_servers.for_group(conn, g.id):
            click.echo(f"  {'':<16}   MCP server {server.name}")
    click.echo("wired chats:")
    for w in wirings.list_all(conn):
        chat = messaging_groups.get(conn, w.messaging_group_id)
        if chat is None:
            continue
        trig = w.trigger + (f" {w.trigger_value}" if w.trigger_value else "")
        click.echo(f"  {chat.channel_type}:{chat.platform_id:<20} → {w.agent_group_id}  trigger={trig}"
                   f" session={w.session_mode} priority={w.priority}")
    unknown = messaging_groups.unwired(conn)
    click.echo("unwired chats (wrote to the assistant, not answered):" if unknown else "unwired chats: none")
    for chat in unknown:
        kind = "DM" if chat.is_dm else "group"
        held = held_messages.count(conn, chat.id)
        state = chat.admission or (f"{held} message{'s' * (held != 1)} waiting for your answer" if held else "")
        click.echo(f"  {chat.channel_type}:{chat.platform_id}  {chat.name or ''} ({kind}){'  ' + state if state else ''}")
    from nanoclaw.host.owners import identities

    people = identities(conn)
    click.echo("people with a role:" if people else "people with a role: none")
    for user in people:
        click.echo(f"  {user.role:<8} {user.channel_type}:{user.platform_user_id}  {user.display_name or ''}")


@groups.command("add")
@click.argument("group_id")
@click.option("--name", help="display name [default: the id]")
@click.option("--provider", help="model provider for this group [default: the host's]")
@click.option("--model", help="model for this group")
@click.pass_context
def add_group(ctx: click.Context, group_id: str, name: str | None, provider: str | None, model: str | None) -> None:
    """Create agent group GROUP_ID with its folder and memory file."""
    from nanoclaw.host.folders import prepare_group

    settings, conn = _conn(ctx)
    if agent_groups.get(conn, group_id):
        raise click.ClickException(f"agent group {group_id!r} exists already")
    try:
        agent_groups.create(conn, group_id, name, provider=provider, model=model)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    memory = prepare_group(settings, conn, group_id)
    click.echo(f"created agent group {group_id} (memory: {memory})")


@groups.command("wire")
@click.argument("chat")
@click.argument("group_id")
@click.option("--trigger", type=click.Choice(wirings.TRIGGERS), default="mention", show_default=True,
              help="mention: @Name anywhere; prefix: text starts with --trigger-value; always; dm: DMs only")
@click.option("--trigger-value", help="the prefix, or another mention word")
@click.option("--session-mode", type=click.Choice(wirings.SESSION_MODES), default="per-thread", show_default=True,
              help="shared: one session per chat; per-thread: one per thread; agent-shared: one for all chats")
@click.option("--response-scope", type=click.Choice(wirings.RESPONSE_SCOPES), default="thread", show_default=True,
              help="reply in the message's thread, or in the main chat")
@click.option("--priority", type=int, default=0, show_default=True, help="higher wirings are tried first")
@click.option("--dm", is_flag=True, help="register the chat as a direct message (every message triggers)")
@click.option("--allow-bots", is_flag=True,
              help="messages written by other bots may trigger too (off: two bots cannot answer each other forever)")
@click.pass_context
def wire(ctx: click.Context, chat: str, group_id: str, dm: bool, **options: Any) -> None:
    """Wire CHAT (channel:platform_id, e.g. telegram:-100123) to agent group GROUP_ID."""
    _settings, conn = _conn(ctx)
    channel, sep, platform_id = chat.partition(":")
    if not sep or not channel or not platform_id:
        raise click.ClickException(f"chat {chat!r} must look like channel:platform_id, e.g. telegram:-100123")
    if agent_groups.get(conn, group_id) is None:
        raise click.ClickException(f"no agent group {group_id!r}; create it with: nanoclaw groups add {group_id}")
    existing = messaging_groups.find(conn, channel, platform_id)
    group = messaging_groups.upsert(conn, channel, platform_id, is_dm=dm or bool(existing and existing.is_dm))
    try:
        w = wirings.wire(conn, group.id, group_id, **options)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wired {chat} → {group_id} (trigger {w.trigger}, session {w.session_mode})")
    from nanoclaw.cli.options import ask_host

    reply = ask_host(_settings, "chat_wired", timeout=3, chat=chat)  # a running host answers what it said meanwhile
    if reply and reply.get("released"):
        click.echo(f"{reply['released']} waiting message{'s' * (reply['released'] != 1)} went to {group_id}")


@groups.command("policy")
@click.argument("chat")
@click.argument("policy", type=click.Choice(["open", "allowlist", "ask"]))
@click.pass_context
def policy(ctx: click.Context, chat: str, policy: str) -> None:
    """Who may talk to the assistant in CHAT: open (everyone), allowlist, or ask (the owner approves newcomers)."""
    _settings, conn = _conn(ctx)
    channel, _, platform_id = chat.partition(":")
    group = messaging_groups.find(conn, channel, platform_id)
    if group is None:
        raise click.ClickException(f"unknown chat {chat!r} (see nanoclaw groups)")
    messaging_groups.set_policy(conn, group.id, policy)
    click.echo(f"{chat}: sender policy {policy}")


@groups.command("allow")
@click.argument("chat")
@click.argument("user")
@click.option("--deny", is_flag=True, help="deny instead of allow")
@click.pass_context
def allow(ctx: click.Context, chat: str, user: str, deny: bool) -> None:
    """Allow (or --deny) USER (their platform user id) in CHAT."""
    from nanoclaw.db import users

    _settings, conn = _conn(ctx)
    channel, _, platform_id = chat.partition(":")
    group = messaging_groups.find(conn, channel, platform_id)
    if group is None:
        raise click.ClickException(f"unknown chat {chat!r} (see nanoclaw groups)")
    person = users.upsert(conn, channel, user)
    (users.deny if deny else users.allow)(conn, group.id, person.id)
    click.echo(f"{'denied' if deny else 'allowed'} {user} in {chat}")


@groups.command("set-model")
@click.argument("group_id")
@click.option("--provider", required=True, help="mock, claude, openai (any OpenAI-compatible endpoint), …")
@click.option("--model", help="model name, e.g. llama3.1:8b or claude-sonnet-4-5")
@click.option("--base-url", help="endpoint for --provider openai, e.g. http://127.0.0.1:11434/v1 (Ollama)")
@click.pass_context
def set_model(ctx: click.Context, group_id: str, provider: str, model: str | None, base_url: str | None) -> None:
    """Choose the model of agent group GROUP_ID (takes effect when its runners next start).

    \b
    nanoclaw groups set-model family --provider openai --model llama3.1:8b --base-url http://127.0.0.1:11434/v1
    The key stays on the host (OPENAI_API_KEY); the sandbox never sees it.
    """
    from nanoclaw import registry

    _settings, conn = _conn(ctx)
    if agent_groups.get(conn, group_id) is None:
        raise click.ClickException(f"no agent group {group_id!r}")
    installed = registry.names(registry.PROVIDERS)
    if provider not in installed:
        raise click.ClickException(f"provider {provider!r} is not installed (installed: {', '.join(installed)})")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise click.ClickException(f"--base-url must start with http:// or https://, not {base_url!r}")
    agent_groups.set_model(conn, group_id, provider, model, base_url)
    click.echo(f"{group_id}: provider {provider}" + (f", model {model}" if model else "") + (f", {base_url}" if base_url else ""))


@groups.command("mount")
@click.argument("group_id")
@click.argument("path")
@click.option("--writable", is_flag=True, help="read-write (only where the allow-list entry is writable)")
@click.option("--name", help="name under /workspace/extra/ [default: the folder's name]")
@click.pass_context
def mount(ctx: click.Context, group_id: str, path: str, writable: bool, name: str | None) -> None:
    """Give GROUP_ID the host folder PATH at /workspace/extra/NAME, from its next start.

    PATH must be in the mount allow-list, ~/.config/nanoclaw/mount-allowlist.json
    (see docs/security.md); folders holding keys (.ssh, .aws, *.pem, …) never are.
    """
    from nanoclaw.host.admin import grant_mount
    from nanoclaw.sandbox.mounts import Allowlist

    settings, conn = _conn(ctx)
    try:
        allowlist = Allowlist.for_settings(settings)
        granted = grant_mount(conn, allowlist, group_id, path, writable=writable, name=name)
    except NanoClawError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{group_id}: /workspace/extra/{granted.name} ← {granted.host_path} "
               f"({'read-write' if granted.writable else 'read-only'}), from its next start")


@groups.command("unmount")
@click.argument("group_id")
@click.argument("name")
@click.pass_context
def unmount(ctx: click.Context, group_id: str, name: str) -> None:
    """Take the folder mounted as /workspace/extra/NAME away from GROUP_ID."""
    _settings, conn = _conn(ctx)
    if not group_mounts.remove(conn, group_id, name):
        raise click.ClickException(f"{group_id} has no mount named {name!r} (see nanoclaw groups list)")
    click.echo(f"{group_id}: /workspace/extra/{name} removed, from its next start")


@groups.command("mcp")
@click.argument("group_id")
@click.option("--remove", "remove_name", metavar="NAME", help="remove the MCP server NAME from the group")
@click.pass_context
def mcp(ctx: click.Context, group_id: str, remove_name: str | None) -> None:
    """List the MCP servers GROUP_ID's agents have (or --remove one), with what each runs or connects to.

    An agent asks for a server with its add_mcp_server tool and you approve it
    in the admin chat; the claude provider starts them. A change takes effect
    when the group's runners next start.

    \b
    nanoclaw groups mcp family
    nanoclaw groups mcp family --remove files
    """
    from nanoclaw.host.mcp_servers import describe

    _settings, conn = _conn(ctx)
    if agent_groups.get(conn, group_id) is None:
        raise click.ClickException(f"no agent group {group_id!r} (see nanoclaw groups list)")
    if remove_name is not None:
        if not group_mcp_servers.remove(conn, group_id, remove_name):
            raise click.ClickException(f"{group_id} has no MCP server named {remove_name!r} "
                                       f"(see nanoclaw groups mcp {group_id})")
        click.echo(f"{group_id}: MCP server {remove_name} removed, from its next start")
        return
    servers = group_mcp_servers.for_group(conn, group_id)
    if not servers:
        click.echo(f"{group_id} has no MCP servers (an agent asks for one with add_mcp_server; you approve it)")
    for server in servers:
        click.echo(f"{server.name}: {describe(server.config)}")
