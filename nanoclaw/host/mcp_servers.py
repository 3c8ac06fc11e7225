"""`add_mcp_server`: an agent asks for an MCP server, the owner approves it in the admin chat.

A stdio server runs inside the group's own sandbox (`command` + `args`); a
remote one (`url`) is reached like everything else, through the vault proxy,
which adds the credential header of a secret stored with `nanoclaw secrets add`:
no secret is ever part of the request (env is stored in clear, so names that
look like secrets are refused). On approval the server is stored for the group
and its idle runners are retired, so the next start passes it to the runner
(RunnerConfig.mcp_servers). Only the claude provider starts MCP servers.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from nanoclaw.db import agent_groups, approvals, group_mcp_servers
from nanoclaw.db.approvals import Approval
from nanoclaw.db.sessions import Session
from nanoclaw.errors import DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.mcp_servers")

KIND = "add_mcp_server"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
RESERVED = ("nanoclaw",)  # the NanoClaw tools' own server
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD")
TRANSPORTS = ("http", "sse")
MAX_COMMAND = 500
MAX_ARG = 1000
MAX_ARGS = 50
MAX_URL = 2000
MAX_ENV = 20
MAX_ENV_VALUE = 1000
TTL = 24 * 3600

Card = Callable[[Route, str, str, tuple[str, ...], str], Awaitable[object]]


def server_config(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check an add_mcp_server request (from an untrusted runner); the name and the config in the SDK's shape.

    Raises DestinationRefused with a reason the agent can act on.
    """
    name = payload.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in RESERVED:
        raise DestinationRefused(
            f"bad server name {str(name)[:40]!r}: 1-32 lowercase letters, digits, - or _, starting with a letter or "
            f"digit (and not {', '.join(RESERVED)})")
    command, url = payload.get("command"), payload.get("url")
    if (command is None) == (url is None):
        raise DestinationRefused("give either command (a stdio server run in your sandbox) or url (a remote server), "
                                 "not both, not neither")
    if url is not None:
        for key in ("args", "env"):
            if payload.get(key):
                raise DestinationRefused(f"{key} is only for stdio servers (command), not with url")
        return name, {"type": _transport(payload.get("transport")), "url": _url(url)}
    if payload.get("transport") is not None:
        raise DestinationRefused("transport is only for remote servers (url)")
    args = payload.get("args") or []
    if not isinstance(args, list) or len(args) > MAX_ARGS:
        raise DestinationRefused(f"args must be a list of at most {MAX_ARGS} strings")
    config: dict[str, Any] = {"type": "stdio", "command": _line("command", command, MAX_COMMAND),
                              "args": [_line("each of args", a, MAX_ARG, empty=True) for a in args]}
    env = _env(payload.get("env") or {})
    if env:
        config["env"] = env
    return name, config


def _line(what: str, value: object, limit: int, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value.strip() and not empty):
        raise DestinationRefused(f"{what} must be a non-empty string" if not empty else f"{what} must be a string")
    if len(value) > limit:
        raise DestinationRefused(f"{what} is longer than {limit} characters")
    if any(c in value for c in "\x00\r\n"):
        raise DestinationRefused(f"{what} must not contain NUL or line breaks")
    return value


def _transport(value: object) -> str:
    if value is None:
        return "http"
    if value not in TRANSPORTS:
        raise DestinationRefused(f"transport must be one of {', '.join(TRANSPORTS)}")
    return str(value)


def _url(value: object) -> str:
    url = _line("url", value, MAX_URL)
    if any(c.isspace() for c in url):
        raise DestinationRefused("url must not contain spaces")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DestinationRefused(f"url must be http:// or https:// with a host, not {url[:80]!r}")
    if parts.username or parts.password:
        raise DestinationRefused("url must not hold a user or password: the owner stores the credential with "
                                 "`nanoclaw secrets add` and the vault adds it to the server's requests")
    return url


def _env(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_ENV:
        raise DestinationRefused(f"env must be at most {MAX_ENV} NAME: value pairs")
    env = {}
    for key, val in value.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            raise DestinationRefused(f"env name {str(key)[:64]!r} must be A-Z, 0-9 and _, not starting with a digit")
        word = next((w for w in SECRET_WORDS if w in key), None)
        if word is not None:
            raise DestinationRefused(
                f"env {key} looks like a secret ({word}); env is stored in clear and visible in the sandbox. Ask the "
                "owner to store the credential with `nanoclaw secrets add` (or use request_credential): the vault "
                "adds it to the server's requests on the way out")
        env[key] = _line(f"env {key}", val, MAX_ENV_VALUE, empty=True)
    return env


def describe(config: dict[str, Any]) -> str:
    """What a server config runs or connects to, exactly, for the owner."""
    if config.get("type") == "stdio":
        line = shlex.join([str(config.get("command", "")), *map(str, config.get("args", []))])
        env = config.get("env") or {}
        if env:
            line = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items()) + " " + line
        return f"runs in the sandbox: {line}"
    return f"connects to {config.get('url')} ({config.get('type')}, through the vault proxy)"


class McpServerRequests:
    def __init__(self, conn: sqlite3.Connection, send_card: Card, admin_route: Callable[[], Route | None],
                 restart_group: Callable[[str], None], default_provider: str) -> None:
        self.conn = conn
        self.send_card = send_card
        self.admin_route = admin_route
        self.restart_group = restart_group
        self.default_provider = default_provider

    async def request(self, session: Session, action: str, payload: dict[str, Any]) -> str:
        """The agent's tool call: ask the owner; returns at once."""
        name, config = server_config(payload)
        group = session.agent_group_id
        current = {s.name: s.config for s in group_mcp_servers.for_group(self.conn, group)}
        if current.get(name) == config:
            return f"The MCP server {name} is already added with exactly this configuration."
        for waiting in approvals.all_open_for(self.conn, KIND, group):
            if waiting.payload.get("name") == name and waiting.payload.get("config") == config:
                return f"Already asked the owner about the MCP server {name} ({waiting.id}); no answer yet."
        admin = self.admin_route()
        if admin is None:
            raise DestinationRefused("there is no admin chat to ask the owner in")
        reason = str(payload.get("reason") or "")[:500]
        approval = approvals.create(self.conn, KIND, group, {"name": name, "config": config, "reason": reason}, TTL)
        lines = [f"Agent group {group} asks to add the MCP server {name!r}. It {describe(config)}"]
        if name in current:
            lines.append(f"This replaces its current {name!r}, which {describe(current[name])}")
        if reason:
            lines.append(f"Why: {reason}")
        row = agent_groups.get(self.conn, group)
        provider = (row.provider if row else None) or self.default_provider
        if provider != "claude":
            lines.append(f"Note: {group} uses the {provider} provider, which does not start MCP servers.")
        lines.append(f"(/approve {approval.id} · /deny {approval.id})")
        await self.send_card(admin, "Add MCP server", "\n".join(lines), ("Approve", "Deny"), approval.id)
        log.info("mcp_server.requested", approval=approval.id, group=group, server=name, type=config["type"])
        return (f"Asked the owner to approve the MCP server {name} ({approval.id}). If they do, its tools are there "
                "from your next start; nothing changes before.")

    async def decide(self, approval: Approval, approve: bool) -> str:
        group, name = approval.subject, str(approval.payload.get("name", ""))
        if not approve:
            log.info("mcp_server.denied", approval=approval.id, group=group, server=name)
            return f"Denied: {group} does not get the MCP server {name} ({approval.id})."
        if agent_groups.get(self.conn, group) is None:
            return f"Agent group {group} is gone; nothing added ({approval.id})."
        group_mcp_servers.put(self.conn, group, name, dict(approval.payload["config"]))
        self.restart_group(group)
        log.info("mcp_server.added", approval=approval.id, group=group, server=name)
        return f"Approved ({approval.id}): {group} has the MCP server {name} from its next start."
