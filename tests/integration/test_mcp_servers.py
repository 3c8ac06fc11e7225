"""add_mcp_server: an agent asks, the owner approves in the admin chat, the group's next runner has the server."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from nanoclaw import db
from nanoclaw.cli import main
from nanoclaw.db import agent_groups, approvals, group_mcp_servers, users
from nanoclaw.errors import DestinationRefused
from nanoclaw.host.app import Host
from nanoclaw.host.bootstrap import first_run
from nanoclaw.host.mcp_servers import server_config
from nanoclaw.protocol.runner_env import RunnerConfig
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel

FILES = {"name": "files", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/workspace/agent"],
         "env": {"LOG_LEVEL": "info"}, "reason": "to browse my folder"}


def tool(args: dict[str, object]) -> str:
    return f"[mock:tool=add_mcp_server:{json.dumps(args)}]"


def family_with_admin_chat(host: Host) -> tuple[FakeChannel, FakeChannel]:
    """A 'family' group in the chat 'fam'; the owner's admin chat is a DM on a platform with buttons."""
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    host.conn.execute("DELETE FROM wirings WHERE agent_group_id = 'main'")  # the owner moved main off the terminal
    wire(host, "admin-dm", channel="fakerich", is_dm=True)
    wire(host, "fam", group="family", trigger="always")
    users.upsert(host.conn, "fakerich", "owner", role="owner")
    return fake(host), fake(host, "fakerich")


def approval_id(answer: str) -> str:
    assert answer.startswith("Asked the owner to approve the MCP server"), answer
    return answer.split("(")[1].split(")")[0]


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.05)


def family_session(host: Host) -> str:
    return host.conn.execute("SELECT id FROM sessions WHERE agent_group_id = 'family'").fetchone()[0]


@pytest.mark.sandbox
async def test_approved_with_the_button_the_next_runner_has_the_server(host: Host) -> None:
    fam, admin = family_with_admin_chat(host)
    await fam.say(tool(FILES), chat="fam")
    oa = approval_id((await fam.wait_sent(1))[0].text)
    card = (await admin.wait_sent(1))[0]
    assert (card.kind, card.card_id, card.buttons, card.title) == ("card", oa, ("Approve", "Deny"), "Add MCP server")
    assert ("It runs in the sandbox: LOG_LEVEL=info npx -y @modelcontextprotocol/server-filesystem /workspace/agent"
            in card.text)
    assert "Why: to browse my folder" in card.text and f"/approve {oa}" in card.text
    assert "mock provider, which does not start MCP servers" in card.text
    assert group_mcp_servers.for_group(host.conn, "family") == []  # nothing before the owner says so
    session = family_session(host)
    assert session in host.supervisor.live

    # Anyone in the admin chat sees the buttons; only the owner's (or an admin's) press counts.
    assert await admin.click(oa, "Approve", sender="guest") == "Only the owner or an admin may decide this."
    assert group_mcp_servers.for_group(host.conn, "family") == []
    assert await admin.click(oa, "Approve", sender="owner") is None
    told = (await admin.wait_sent(2))[1].text
    assert told == f"Approved ({oa}): family has the MCP server files from its next start."
    [stored] = group_mcp_servers.for_group(host.conn, "family")
    assert stored.config == {"type": "stdio", "command": "npx", "args": FILES["args"], "env": {"LOG_LEVEL": "info"}}
    await wait_until(lambda: session not in host.supervisor.live)  # retired, so the next start has it

    # The next runner gets the server in its environment (RunnerConfig), seen from inside the sandbox.
    await fam.say("[mock:read=/proc/self/environ]", chat="fam")
    environ = dict(v.split("=", 1) for v in (await fam.wait_sent(2))[1].text.split("\x00") if "=" in v)
    config = RunnerConfig.from_env(environ)
    assert json.loads(config.mcp_servers) == {"files": stored.config}

    # Asking again for the same thing changes nothing.
    await fam.say(tool(FILES), chat="fam")
    assert (await fam.wait_sent(3))[2].text == "The MCP server files is already added with exactly this configuration."


@pytest.mark.sandbox
async def test_denied_or_expired_requests_add_nothing(host: Host) -> None:
    fam, admin = family_with_admin_chat(host)
    remote = {"name": "issues", "url": "https://mcp.example.com/mcp", "transport": "sse"}
    await fam.say(tool(remote), chat="fam")
    first = approval_id((await fam.wait_sent(1))[0].text)
    card = (await admin.wait_sent(1))[0]
    assert "It connects to https://mcp.example.com/mcp (sse, through the vault proxy)" in card.text
    await fam.say(tool(remote), chat="fam")  # a second identical request: no second card
    assert (await fam.wait_sent(2))[1].text.startswith(f"Already asked the owner about the MCP server issues ({first})")

    refused = await admin.say(f"/deny {first}", chat="admin-dm", sender="stranger", is_dm=True)
    assert not refused.accepted  # only the owner or an admin decides
    await admin.say(f"/deny {first}", chat="admin-dm", sender="owner", is_dm=True)
    await wait_until(lambda: any(f"Denied: family does not get the MCP server issues ({first})" in s.text
                                 for s in admin.sent))
    assert approvals.get(host.conn, first).status == "denied"  # type: ignore[union-attr]

    await fam.say(tool({**remote, "transport": "http"}), chat="fam")
    second = approval_id((await fam.wait_sent(3))[2].text)
    host.conn.execute("UPDATE approvals SET expires_at = ? WHERE id = ?", (time.time() - 1, second))  # a day later
    await admin.say(f"/approve {second}", chat="admin-dm", sender="owner", is_dm=True)
    await wait_until(lambda: any(f"{second} is not open (already decided, expired or unknown)." in s.text
                                 for s in admin.sent))
    assert approvals.expire(host.conn) == [second] and approvals.get(host.conn, second).status == "expired"  # type: ignore[union-attr]
    assert group_mcp_servers.for_group(host.conn, "family") == []


@pytest.mark.sandbox
async def test_bad_requests_are_refused_with_the_reason(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    cases = [
        ({"name": "Files!", "command": "npx"}, "bad server name 'Files!'"),
        ({"name": "nanoclaw", "command": "npx"}, "and not nanoclaw"),
        ({"name": "both", "command": "npx", "url": "https://x.example"}, "either command"),
        ({"name": "neither"}, "either command"),
        ({"name": "gh", "command": "npx", "env": {"GITHUB_TOKEN": "ghp_x"}}, "`nanoclaw secrets add`"),
        ({"name": "old", "url": "ftp://files.example.com/mcp"}, "url must be http:// or https://"),
    ]
    for i, (args, reason) in enumerate(cases, 1):
        await ch.say(tool(args), chat="chat1")
        reply = (await ch.wait_sent(i))[-1].text
        assert reply.startswith("Refused: ") and reason in reply, reply
    assert host.conn.execute("SELECT count(*) FROM approvals").fetchone()[0] == 0


@pytest.mark.parametrize("args,reason", [
    ({"name": "a" * 33, "command": "x"}, "bad server name"),
    ({"name": "x", "command": "node", "args": ["ok", "two\nlines"]}, "must not contain NUL or line breaks"),
    ({"name": "x", "command": "a\x00b"}, "must not contain NUL"),
    ({"name": "x", "command": "   "}, "command must be a non-empty string"),
    ({"name": "x", "command": "node", "args": ["a"] * 51}, "at most 50"),
    ({"name": "x", "command": "node", "env": {f"V{i}": "1" for i in range(21)}}, "at most 20"),
    ({"name": "x", "command": "node", "env": {"lower": "1"}}, "must be A-Z"),
    ({"name": "x", "command": "node", "env": {"DB_PASSWORD": "1"}}, "looks like a secret (PASSWORD)"),
    ({"name": "x", "command": "node", "env": {"OPENAI_API_KEY": "1"}}, "looks like a secret (KEY)"),
    ({"name": "x", "command": "node", "transport": "sse"}, "transport is only for remote servers"),
    ({"name": "x", "url": "https://me:pw@mcp.example.com"}, "must not hold a user or password"),
    ({"name": "x", "url": "https://mcp.example.com", "env": {"A": "1"}}, "env is only for stdio servers"),
    ({"name": "x", "url": "https://mcp.example.com", "transport": "ws"}, "transport must be one of http, sse"),
    ({"name": "x", "url": "javascript:alert(1)"}, "url must be http:// or https://"),
])
def test_every_part_of_a_request_is_checked(args: dict[str, object], reason: str) -> None:
    with pytest.raises(DestinationRefused) as refused:
        server_config(args)
    assert reason in str(refused.value)


def test_the_claude_provider_adds_the_approved_servers_and_allows_their_tools() -> None:
    from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

    from nanoclaw.runner.providers.base import ProviderContext
    from nanoclaw.runner.providers.claude import ClaudeProvider
    from nanoclaw.runner.tools import TOOLS

    servers = {"files": server_config(FILES)[1],
               "issues": server_config({"name": "issues", "url": "https://mcp.example.com/sse", "transport": "sse"})[1],
               "nanoclaw": {"type": "stdio", "command": "evil"}}  # never replaces the NanoClaw tools
    config = RunnerConfig(provider="claude", mcp_servers=json.dumps(servers))
    context = ProviderContext(config, lambda _key: None, lambda _key, _value: None, TOOLS, None)  # type: ignore[arg-type]
    options = ClaudeProvider(context)._options()
    assert options.mcp_servers["files"] == {"type": "stdio", "command": "npx", "args": FILES["args"],
                                            "env": {"LOG_LEVEL": "info"}}
    assert options.mcp_servers["issues"] == {"type": "sse", "url": "https://mcp.example.com/sse"}
    assert options.mcp_servers["nanoclaw"]["type"] == "sdk"
    assert {"mcp__files", "mcp__issues", "mcp__nanoclaw__add_mcp_server"} <= set(options.allowed_tools)
    # What the SDK hands Claude Code.
    command = SubprocessCLITransport(prompt="", options=replace(options, cli_path="claude"))._build_command()
    passed = json.loads(command[command.index("--mcp-config") + 1])["mcpServers"]
    assert passed["files"]["command"] == "npx" and passed["issues"]["url"] == "https://mcp.example.com/sse"
    assert ClaudeProvider(ProviderContext(RunnerConfig(), lambda _k: None, lambda _k, _v: None, TOOLS,
                                          None))._options().mcp_servers.keys() == {"nanoclaw"}  # type: ignore[arg-type]


def test_the_owner_lists_and_removes_servers_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path / "home")
    conn = db.connect(settings.db_path)
    first_run(conn, settings)
    group_mcp_servers.put(conn, "main", "files", server_config(FILES)[1])
    group_mcp_servers.put(conn, "main", "issues", server_config({"name": "issues", "url": "https://mcp.example.com"})[1])
    monkeypatch.setenv("NANOCLAW_HOME", str(settings.home))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(main, ["groups", "mcp", "main"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "files: runs in the sandbox: LOG_LEVEL=info npx -y @modelcontextprotocol/server-filesystem /workspace/agent",
        "issues: connects to https://mcp.example.com (http, through the vault proxy)",
    ]
    assert "MCP server files" in runner.invoke(main, ["groups", "list"]).output
    removed = runner.invoke(main, ["groups", "mcp", "main", "--remove", "files"])
    assert removed.exit_code == 0 and "MCP server files removed, from its next start" in removed.output
    assert [s.name for s in group_mcp_servers.for_group(conn, "main")] == ["issues"]
    again = runner.invoke(main, ["groups", "mcp", "main", "--remove", "files"])
    assert again.exit_code == 1 and "main has no MCP server named 'files'" in again.output
    ghost = runner.invoke(main, ["groups", "mcp", "ghost"])
    assert ghost.exit_code == 1 and "no agent group 'ghost'" in ghost.output
    runner.invoke(main, ["groups", "mcp", "main", "--remove", "issues"])
    assert "main has no MCP servers" in runner.invoke(main, ["groups", "mcp", "main"]).output
