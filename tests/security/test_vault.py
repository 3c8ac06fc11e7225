"""The vault: a canary secret is injected into HTTPS from a real sandbox and leaks nowhere.

A fake HTTPS upstream on 127.0.0.1 has its own certificate (its own CA, which
only the host trusts); the sandbox talks to it through the proxy socket, which
intercepts with the vault's CA because a secret is stored for that host.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import AsyncIterator

import pytest

from nanoclaw.db import agent_groups
from nanoclaw.host.app import Host
from nanoclaw.vault.ca import CertificateAuthority
from nanoclaw.vault.store import SecretRule, SecretStore, VaultError
from tests.conftest import make_settings
from tests.fakes.channel import FakeChannel
from tests.security.probe import run_in_sandbox, session_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
CANARY = "sk-canary-7f3a9c2e1b"
NANOCLAW = str(Path(sys.executable).parent / "nanoclaw")


class FakeHttpsUpstream:
    """Answers every request with what it received, the Authorization header included (to test redaction)."""

    def __init__(self, folder: Path) -> None:
        self.ca = CertificateAuthority(folder / "upstream-ca", folder / "upstream-certs")
        self.seen: list[dict[str, str]] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                 ssl=self.ca.server_context("localhost"))
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *lines = head.strip().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        self.seen.append({"request": request_line, **headers})
        body = json.dumps({"you_sent": headers}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                     b"x-echo: %s\r\nconnection: close\r\n\r\n" % (len(body), headers.get("authorization", "").encode())
                     + body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeHttpsUpstream]:
    server = FakeHttpsUpstream(tmp_path)
    await server.start()
    # Only the host trusts the upstream's CA (httpx honours SSL_CERT_FILE); the sandbox trusts the vault's.
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca.cert_path))
    yield server
    server.server.close()


@pytest.fixture
async def vault_host(tmp_path: Path, private_config_dir: Path, upstream: FakeHttpsUpstream) -> AsyncIterator[Host]:
    SecretStore.open(private_config_dir).add(SecretRule("demo", "localhost", "Authorization", "Bearer {value}"), CANARY)
    host = Host(make_settings(tmp_path / "home", egress_allow_private=True), channels=[FakeChannel])
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


HTTPS_PROBE = """
import json, os, socket, ssl
s = socket.socket(socket.AF_UNIX); s.settimeout(20)
s.connect('/run/nanoclaw/proxy.sock')
s.sendall(b'CONNECT localhost:{port} HTTP/1.1\\r\\nHost: localhost:{port}\\r\\nProxy-Authorization: Bearer '
          + os.environ['NANOCLAW_PROXY_TOKEN'].encode() + b'\\r\\n\\r\\n')
assert s.recv(4096).startswith(b'HTTP/1.1 200')
tls = ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE']).wrap_socket(s, server_hostname='localhost')
tls.sendall(b'GET /v1/things?x=1 HTTP/1.1\\r\\nHost: localhost\\r\\nAuthorization: Bearer forged-by-agent\\r\\n'
            b'Connection: close\\r\\n\\r\\n')
data = b''
while True:
    chunk = tls.recv(65536)
    if not chunk: break
    data += chunk
print(json.dumps({{"response": data.decode(errors="replace"), "env": dict(os.environ)}}))
"""


async def sandbox_request(host: Host, port: int) -> dict[str, object]:
    session = session_for(host, "family", chat="fam")
    await host.supervisor.prepare(session)
    return await asyncio.to_thread(run_in_sandbox, host, session, HTTPS_PROBE.format(port=port))


@pytest.fixture
def family(vault_host: Host) -> None:
    agent_groups.create(vault_host.conn, "family")
    vault_host.folders.ensure_group("family")


async def test_canary_is_injected_into_https_from_a_real_sandbox_and_redacted_on_the_way_back(
    vault_host: Host, family: None, upstream: FakeHttpsUpstream
) -> None:
    seen = await sandbox_request(vault_host, upstream.port)
    assert upstream.seen[-1]["authorization"] == f"Bearer {CANARY}"  # injected; the agent's forged one replaced
    assert upstream.seen[-1]["request"] == "GET /v1/things?x=1 HTTP/1.1"
    response = str(seen["response"])
    assert response.startswith("HTTP/1.1 200") and "[redacted by NanoClaw]" in response
    assert CANARY not in response and CANARY not in json.dumps(seen["env"])


async def test_canary_leaks_nowhere_in_the_sandbox_env_files_or_proc(vault_host: Host, family: None,
                                                                     upstream: FakeHttpsUpstream) -> None:
    await sandbox_request(vault_host, upstream.port)
    session = session_for(vault_host, "family", chat="fam")
    found = await asyncio.to_thread(run_in_sandbox, vault_host, session, f"""
import json, os
hits = []
needle = {CANARY[:6]!r} + {CANARY[6:]!r}
for top in ("/workspace", "/home", "/tmp", "/etc", "/run", "/proc/self"):
    for root, dirs, files in os.walk(top):
        if root.startswith("/proc/self/") and root.count("/") > 3: continue
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p) or not os.path.isfile(p): continue
            try:
                if needle.encode() in open(p, "rb").read(4 << 20): hits.append(p)
            except OSError: pass
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for f in ("environ", "cmdline"):
            try:
                if needle.encode() in open(f"/proc/{{pid}}/{{f}}", "rb").read(): hits.append(f"/proc/{{pid}}/{{f}}")
            except OSError: pass
print(json.dumps({{"hits": hits, "env": needle in json.dumps(dict(os.environ))}}))
""", 60)
    assert found == {"hits": [], "env": False}


async def test_canary_is_not_in_logs_databases_or_any_file_in_clear(
    vault_host: Host, family: None, upstream: FakeHttpsUpstream, private_config_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    await sandbox_request(vault_host, upstream.port)
    assert any(r.getMessage().startswith("egress.request") and "decision=vault" in r.getMessage()
               for r in caplog.records)
    assert CANARY not in caplog.text
    for folder in (vault_host.settings.home, private_config_dir):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_socket() and not path.is_fifo():
                assert CANARY.encode() not in path.read_bytes(), path


def test_a_tampered_or_damaged_vault_is_a_clear_error_not_a_leak(private_config_dir: Path) -> None:
    store = SecretStore.open(private_config_dir)
    store.add(SecretRule("demo", "api.example.test"), CANARY)
    path = private_config_dir / "vault.json"
    data = json.loads(path.read_text())
    token = data["secrets"][0]["token"]
    data["secrets"][0]["token"] = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    path.write_text(json.dumps(data))
    with pytest.raises(VaultError, match="does not decrypt"):
        SecretStore.open(private_config_dir).for_request("api.example.test", "GET", "/", "main")
    path.write_text("{ not json")
    with pytest.raises(VaultError, match="damaged"):
        SecretStore.open(private_config_dir)


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([NANOCLAW, "secrets", *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ})


def test_secrets_cli_never_prints_or_stores_the_canary_in_clear(private_config_dir: Path) -> None:
    added = cli("add", "demo", "--host", "api.example.test", "--header", "Authorization",
                "--format", "Bearer {value}", stdin=CANARY)
    assert added.returncode == 0, added.stderr
    listed = cli("list")
    assert "demo" in listed.stdout and "api.example.test" in listed.stdout and "Bearer •••" in listed.stdout
    assert CANARY not in listed.stdout + listed.stderr + added.stdout + added.stderr
    assert oct((private_config_dir / "vault.key").stat().st_mode & 0o777) == "0o600"
    for path in private_config_dir.iterdir():
        assert CANARY.encode() not in path.read_bytes()
    assert cli("rotate", "demo", stdin="sk-canary-new-value").returncode == 0
    assert SecretStore.open(private_config_dir).for_request("api.example.test", "GET", "/", "g") == \
        [("Authorization", "Bearer sk-canary-new-value")]
    again = cli("add", "demo", "--host", "x.test", stdin="v-1234")
    assert again.returncode == 1 and "use `nanoclaw secrets rotate demo`" in again.stderr
    bad = cli("add", "weird", "--host", "https://x.test/path", stdin="v-1234")
    assert bad.returncode == 1 and "no scheme or path" in bad.stderr
    assert cli("rm", "demo").returncode == 0 and "no secrets yet" in cli("list").stdout
    assert "no secret named 'demo'" in cli("rm", "demo").stderr


def test_secret_rules_match_host_globs_methods_paths_and_groups_without_leaking(private_config_dir: Path) -> None:
    store = SecretStore.open(private_config_dir)
    store.add(SecretRule("gh", "*.github.com", "Authorization", "token {value}", "/repos/*", "GET", ("main",)), CANARY)
    assert store.for_request("api.github.com", "GET", "/repos/x", "main") == [("Authorization", f"token {CANARY}")]
    assert store.for_request("api.github.com", "POST", "/repos/x", "main") == []
    assert store.for_request("api.github.com", "GET", "/user", "main") == []
    assert store.for_request("api.github.com", "GET", "/repos/x", "family") == []
    assert store.for_request("github.com.evil.test", "GET", "/repos/x", "main") == []
    assert not store.wants("evil.test", "main") and store.wants("API.GITHUB.COM", "main")
    assert CANARY not in repr(store) and CANARY not in repr(store.rules())


# --- Credential collection: the agent asks, the person types it into a one-time form ----------------

def _link(text: str) -> str:
    return next(word for word in text.split() if word.startswith("http://127.0.0.1:"))


async def _ask_for_credential(host: Host) -> tuple[FakeChannel, str]:
    from tests.conftest import fake, wire

    wire(host, "chat1", trigger="always")
    ch = fake(host)
    ask = json.dumps({"name": "weather", "host_pattern": "api.weather.test", "header_name": "X-Api-Key",
                      "value_format": "{value}", "description": "Your key from weather.test/account"})
    await ch.say(f"[mock:tool=request_credential:{ask}]", chat="chat1", message_id="ask")
    card = (await ch.wait_sent(1, timeout=30))[0]
    assert card.route.platform_id == "chat1" and "weather (for api.weather.test)" in card.text
    return ch, _link(card.text)


async def test_credential_collection_through_the_one_time_link_never_leaks_the_canary(
    tmp_path: Path, private_config_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    caplog.set_level("DEBUG", logger="nanoclaw")
    host = Host(make_settings(tmp_path / "home"), channels=[FakeChannel])
    await host.start()
    try:
        ch, link = await _ask_for_credential(host)
        async with httpx.AsyncClient() as client:
            form = await client.get(link)
            assert form.status_code == 200 and "X-Api-Key" in form.text and "no-store" in form.headers["cache-control"]
            csrf = form.text.split("name='csrf' value='")[1].split("'")[0]
            forged = await client.post(link, data={"csrf": "forged", "value": "x", "action": "save"})
            assert forged.status_code == 403
            saved = await client.post(link, data={"csrf": csrf, "value": CANARY, "action": "save"})
            assert saved.status_code == 200 and "Saved" in saved.text
            replay = await client.post(link, data={"csrf": csrf, "value": "other", "action": "save"})
            assert replay.status_code == 410 and (await client.get(link)).status_code == 410
        assert (await ch.wait_sent(2, timeout=30))[1].text == "saved"  # all the agent learns
        assert SecretStore.open(private_config_dir).for_request("api.weather.test", "GET", "/", "main") == \
            [("X-Api-Key", CANARY)]
    finally:
        await host.stop()
    assert CANARY not in caplog.text and all(CANARY not in m.text for m in ch.sent)
    for folder in (host.settings.home, private_config_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                assert CANARY.encode() not in path.read_bytes(), path


async def test_a_refused_or_expired_credential_request_tells_the_agent_so(tmp_path: Path) -> None:
    import httpx

    host = Host(make_settings(tmp_path / "home"), channels=[FakeChannel])
    await host.start()
    try:
        ch, link = await _ask_for_credential(host)
        async with httpx.AsyncClient() as client:
            csrf = (await client.get(link)).text.split("name='csrf' value='")[1].split("'")[0]
            await client.post(link, data={"csrf": csrf, "action": "reject"})
        assert (await ch.wait_sent(2, timeout=30))[1].text == "rejected"
        host.credentials.ttl = 0.5
        await ch.say('[mock:tool=request_credential:{"name": "w2", "host_pattern": "x.test", "description": "d"}]',
                     chat="chat1")
        sent = await ch.wait_sent(4, timeout=30)
        assert sent[3].text == "expired"
        async with httpx.AsyncClient() as client:
            assert (await client.get(_link(sent[2].text))).status_code == 410
    finally:
        await host.stop()


async def test_in_a_group_chat_only_the_owner_or_an_admin_may_answer_in_a_modal(tmp_path: Path,
                                                                                private_config_dir: Path) -> None:
    """Whoever typed the key decides which account the agent acts with: not any member of a group chat."""
    from nanoclaw.db import users

    host = Host(make_settings(tmp_path / "home"), channels=[FakeChannel])
    await host.start()
    try:
        ch, link = await _ask_for_credential(host)
        token = link.rsplit("/", 1)[1]
        refused = host.submit_credential(token, "sk-strangers-own-key", sender_id="stranger")
        assert refused.startswith("refused:")
        assert SecretStore.open(private_config_dir).rules() == []  # nothing saved, the request stays open
        users.upsert(host.conn, "fake", "bob", role="admin")
        assert host.submit_credential(token, CANARY, sender_id="bob") == "saved"
        assert (await ch.wait_sent(2, timeout=30))[1].text == "saved"
        assert host.submit_credential(token, "again", sender_id="bob") == "expired"  # one use
    finally:
        await host.stop()
