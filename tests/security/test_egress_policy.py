"""Egress policy from a real sandbox: allow, deny with a readable 403, rate limits that trip and recover,
and requests held for the owner's approval (approved, denied, expired)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from nanoclaw.db import agent_groups, approvals
from nanoclaw.errors import ConfigError
from nanoclaw.host.app import Host
from nanoclaw.protocol.messages import Route
from nanoclaw.vault.policy import Policy
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel
from tests.security.probe import run_in_sandbox, session_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


class PlainUpstream:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.paths.append(head.split(" ")[1])
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def guarded(tmp_path: Path, private_config_dir: Path) -> AsyncIterator[tuple[Host, int, PlainUpstream]]:
    upstream = PlainUpstream()
    port = await upstream.start()
    private_config_dir.mkdir(parents=True, exist_ok=True)
    (private_config_dir / "egress-policy.json").write_text(json.dumps({
        "default": "allow",
        "groups": {"family": {"default": "deny", "rules": [
            {"host": "127.0.0.1", "path": "/ok*", "action": "allow", "rate": "2/second"},
            {"host": "127.0.0.1", "path": "/ask*", "action": "approve"},
        ]}},
    }))
    host = Host(make_settings(tmp_path / "home", egress_allow_private=True, egress_approval_timeout=1.5),
                channels=[FakeChannel])
    await host.start()
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    wire(host, "admin-dm", is_dm=True)
    host.egress_approvals.admin_route = lambda: Route("fake", "admin-dm")
    try:
        yield host, port, upstream
    finally:
        await host.stop()
        upstream.server.close()


async def get(host: Host, port: int, *paths: str) -> list[str]:
    """From inside the family group's sandbox, plain HTTP through the proxy socket; the status line of each."""
    session = session_for(host, "family", chat="fam")
    await host.supervisor.prepare(session)
    out = await asyncio.to_thread(run_in_sandbox, host, session, f"""
import json, os, socket
lines = []
for path in {list(paths)!r}:
    s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect('/run/nanoclaw/proxy.sock')
    auth = 'Proxy-Authorization: Basic ' + __import__('base64').b64encode(('nanoclaw:' + os.environ['NANOCLAW_PROXY_TOKEN']).encode()).decode()
    s.sendall(f'GET http://127.0.0.1:{port}{{path}} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n{{auth}}\\r\\nConnection: close\\r\\n\\r\\n'.encode())
    data = b''
    while (chunk := s.recv(65536)): data += chunk
    head, _, body = data.partition(b'\\r\\n\\r\\n')
    lines.append(head.split(b'\\r\\n')[0].decode() + ' | ' + body.decode(errors='replace').strip())
print(json.dumps({{"lines": lines}}))
""", 60)
    return list(out["lines"])


async def test_allowed_denied_and_rate_limited_requests(guarded: tuple[Host, int, PlainUpstream]) -> None:
    host, port, upstream = guarded
    first = await get(host, port, "/ok/1", "/ok/2", "/ok/3", "/elsewhere")
    assert first[0].startswith("HTTP/1.1 200") and first[1].startswith("HTTP/1.1 200")
    assert first[2].startswith("HTTP/1.1 429") and "rate limit 2 per 1 s reached" in first[2]
    assert first[3].startswith("HTTP/1.1 403") and "GET 127.0.0.1/elsewhere is not allowed for this agent" in first[3]
    await asyncio.sleep(1.1)  # the window moves on
    assert (await get(host, port, "/ok/4"))[0].startswith("HTTP/1.1 200")
    assert upstream.paths == ["/ok/1", "/ok/2", "/ok/4"]  # refused requests never left


async def _held(host: Host, port: int, path: str) -> tuple[asyncio.Task[list[str]], str]:
    task = asyncio.ensure_future(get(host, port, path))
    for _ in range(200):
        row = host.conn.execute("SELECT id FROM approvals WHERE kind = 'egress' AND status = 'open'").fetchone()
        if row:
            return task, str(row[0])
        await asyncio.sleep(0.05)
    raise AssertionError("no approval card appeared")


async def test_a_held_request_is_approved_denied_or_expires(guarded: tuple[Host, int, PlainUpstream]) -> None:
    host, port, upstream = guarded
    ch = fake(host)
    task, approval_id = await _held(host, port, "/ask/1")
    card = next(m for m in ch.sent if m.route.platform_id == "admin-dm")
    assert "family wants GET https://127.0.0.1/ask/1" in card.text or "family wants GET" in card.text
    assert f"/approve {approval_id}" in card.text
    assert "Approved" in await host.gate.decide(approval_id, True, "owner")
    assert (await task)[0].startswith("HTTP/1.1 200")

    task, approval_id = await _held(host, port, "/ask/2")
    assert "Denied" in await host.gate.decide(approval_id, False, "owner")
    assert (await task)[0].startswith("HTTP/1.1 403") and "did not approve" in (await task)[0]

    task, approval_id = await _held(host, port, "/ask/3")  # nobody answers within 1.5 s
    assert (await task)[0].startswith("HTTP/1.1 403")
    assert approvals.get(host.conn, approval_id).status == "expired"  # type: ignore[union-attr]
    assert any(m.text.startswith("Expired: family wanted GET 127.0.0.1/ask/3") for m in ch.sent)
    assert upstream.paths == ["/ask/1"]


async def test_cards_of_an_earlier_process_are_closed_at_start(guarded: tuple[Host, int, PlainUpstream]) -> None:
    host, _port, _upstream = guarded
    left = approvals.create(host.conn, "egress", "family:api.example.test",
                            {"method": "GET", "host": "api.example.test", "path": "/x",
                             "card": ["fake", "admin-dm", None, "m-1"]}, 600)
    assert await host.egress_approvals.sweep() == 1
    assert approvals.get(host.conn, left.id).status == "expired"  # type: ignore[union-attr]
    assert any(m.text.startswith("Expired (NanoClaw restarted)") for m in fake(host).sent)


def test_an_invalid_policy_file_fails_closed_with_the_reason(tmp_path: Path) -> None:
    from nanoclaw.vault.proxy import EgressProxy, Upstream

    path = tmp_path / "egress-policy.json"
    path.write_text('{"default": "maybe"}')
    proxy = EgressProxy(tmp_path / "sockets", Upstream(), policy_path=path)
    decision = proxy.judge("main", "example.com", "GET", "/")
    assert decision.action == "deny" and "'maybe' is not one of allow, deny, approve" in decision.why


@pytest.mark.parametrize("content,why", [
    ('{"rules": [{"action": "allow"}]}', "needs a host"),
    ('{"rules": [{"host": "x", "action": "sometimes"}]}', "is not one of"),
    ('{"rules": [{"host": "x", "action": "allow", "rate": "lots"}]}', "should look like 60/hour"),
    ('{"rules": [{"host": "x", "action": "allow", "path": "api"}]}', "must start with /"),
    ('{"groups": {"g": []}}', "must be an object"),
    ('{"default": "allow",', "not valid JSON"),
])
def test_malformed_policies_say_what_is_wrong(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "egress-policy.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=why):
        Policy.load(path)


def test_rule_order_group_first_then_global_then_defaults(tmp_path: Path) -> None:
    path = tmp_path / "egress-policy.json"
    path.write_text(json.dumps({"default": "deny", "rules": [{"host": "*.example.com", "action": "allow"}],
                                "groups": {"g": {"rules": [{"host": "bad.example.com", "action": "deny"}]}}}))
    policy = Policy.load(path)
    decide: Any = policy.decide
    assert decide("g", "bad.example.com", "GET", "/").action == "deny"
    assert decide("g", "ok.example.com", "GET", "/").action == "allow"
    assert decide("other", "bad.example.com", "GET", "/").action == "allow"
    assert (decide("g", "elsewhere.org", "GET", "/").action, decide("g", "elsewhere.org", "GET", "/").rule) == \
        ("deny", "default")
