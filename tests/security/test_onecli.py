"""OneCLI as the vault's backend: chosen only when asked, a clear error when it cannot work, secrets managed
through a stand-in `onecli` without the value in argv, logs or errors, and egress from a real sandbox through a
stand-in OneCLI gateway (after the session's authentication and the egress policy).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from nanoclaw.config import Settings
from nanoclaw.db import agent_groups
from nanoclaw.errors import ConfigError
from nanoclaw.host.app import Host
from nanoclaw.vault.backend import open_backend
from nanoclaw.vault.onecli import OneCliVault
from nanoclaw.vault.store import SecretRule, SecretStore, VaultError
from tests.conftest import make_settings
from tests.fakes.channel import FakeChannel
from tests.fakes.onecli_gateway import FakeOneCliGateway
from tests.security.probe import run_in_sandbox, session_for
from tests.security.test_vault import FakeHttpsUpstream

CANARY = "sk-onecli-canary-5d1e7a"
FAKE_CLI = Path(__file__).resolve().parents[1] / "fakes" / "onecli_cli.py"
NANOCLAW = str(Path(sys.executable).parent / "nanoclaw")
GATEWAY_TOKEN = "aoc-agent-token-91c2"


@dataclass
class StandIn:
    """The stand-in `onecli`, first on PATH: its secrets (values included) and the calls it got."""

    folder: Path
    monkeypatch: pytest.MonkeyPatch

    def calls(self) -> list[dict[str, Any]]:
        log = self.folder / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def secrets(self) -> list[dict[str, Any]]:
        state = self.folder / "secrets.json"
        return json.loads(state.read_text()) if state.exists() else []

    def seed(self, *secrets: dict[str, Any]) -> None:
        (self.folder / "secrets.json").write_text(json.dumps(list(secrets)))

    def fail(self, command: str | None) -> None:
        if command is None:
            self.monkeypatch.delenv("FAKE_ONECLI_FAIL", raising=False)
        else:
            self.monkeypatch.setenv("FAKE_ONECLI_FAIL", command)


@pytest.fixture
def onecli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    folder = tmp_path / "onecli"
    (folder / "bin").mkdir(parents=True)
    script = folder / "bin" / "onecli"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_CLI} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ONECLI_STATE", str(folder / "secrets.json"))
    monkeypatch.setenv("FAKE_ONECLI_LOG", str(folder / "calls.jsonl"))
    return StandIn(folder, monkeypatch)


def secret(name: str, host: str, value: str = "v-unused-1234", **more: Any) -> dict[str, Any]:
    return {"id": f"id-{name}", "name": name, "type": "generic", "hostPattern": host, "pathPattern": None,
            "injectionConfig": {"headerName": "Authorization", "valueFormat": "Bearer {value}"},
            "createdAt": "2026-01-02T03:04:05Z", "value": value, **more}


def onecli_upstream(folder: Path) -> FakeHttpsUpstream:
    """An HTTPS upstream whose CA plays OneCLI's: its own subject, as a real OneCLI CA has (two CAs of one
    name in a bundle would confuse the sandbox's chain building)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OneCLI stand-in CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256()))
    (folder / "upstream-ca").mkdir(parents=True)
    (folder / "upstream-ca" / "ca.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "upstream-ca" / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return FakeHttpsUpstream(folder)


def cli(*args: str, stdin: str = "", backend: str = "onecli") -> subprocess.CompletedProcess[str]:
    return subprocess.run([NANOCLAW, "secrets", *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NANOCLAW_VAULT_BACKEND": backend})


# --- Choosing the backend ------------------------------------------------------------------------

def test_the_builtin_vault_stays_the_default_and_an_unknown_backend_is_refused(tmp_path: Path) -> None:
    assert Settings().vault_backend == "builtin"
    assert isinstance(open_backend(make_settings(tmp_path / "home")), SecretStore)
    env = {"NANOCLAW_HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}
    assert Settings.load(env={**env, "NANOCLAW_VAULT_BACKEND": "onecli"}, env_file=tmp_path / "none").vault_backend \
        == "onecli"
    with pytest.raises(ConfigError, match="NANOCLAW_VAULT_BACKEND='vault9' is not one of builtin, onecli"):
        Settings.load(env={**env, "NANOCLAW_VAULT_BACKEND": "vault9"}, env_file=tmp_path / "none")


def test_a_missing_or_failing_onecli_is_a_clear_error_never_a_silent_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, onecli: StandIn, private_config_dir: Path
) -> None:
    ca = tmp_path / "onecli-ca.pem"
    ca.write_bytes(FakeHttpsUpstream(tmp_path).ca.cert_path.read_bytes())
    settings = make_settings(tmp_path / "home", vault_backend="onecli", extra={"ONECLI_CA_CERT": str(ca)})

    onecli.fail("list")  # installed, but OneCLI does not answer
    with pytest.raises(ConfigError, match=r"`onecli secrets list` failed \(exit 1\).*connection refused.*"
                                          r"onecli auth login.*NANOCLAW_VAULT_BACKEND=builtin"):
        Host(settings, channels=[FakeChannel])
    failed = cli("list")
    assert failed.returncode == 1 and "`onecli secrets list` failed" in failed.stderr

    onecli.fail(None)
    with pytest.raises(ConfigError, match="needs ONECLI_CA_CERT"):  # the host's sandboxes must trust OneCLI's CA
        Host(make_settings(tmp_path / "home", vault_backend="onecli"), channels=[FakeChannel])
    with pytest.raises(ConfigError, match="ONECLI_GATEWAY_URL must look like http://127.0.0.1:10255"):
        open_backend(make_settings(tmp_path / "home", vault_backend="onecli",
                                   extra={"ONECLI_GATEWAY_URL": "socks5://127.0.0.1:1"}))

    monkeypatch.setenv("PATH", "/nonexistent")  # not installed
    with pytest.raises(ConfigError, match=r"no `onecli` executable on PATH: install OneCLI's CLI .*"
                                          r"or set NANOCLAW_VAULT_BACKEND=builtin"):
        Host(settings, channels=[FakeChannel])
    missing = subprocess.run([NANOCLAW, "secrets", "list"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "NANOCLAW_VAULT_BACKEND": "onecli"})
    assert missing.returncode == 1 and "no `onecli` executable on PATH" in missing.stderr
    assert not (private_config_dir / "vault.json").exists()  # nothing fell back to the builtin vault


# --- The facade: nanoclaw secrets add|list|rotate|rm ------------------------------------------------

def test_secrets_cli_manages_onecli_secrets_without_the_value_in_argv_or_output(
    onecli: StandIn, private_config_dir: Path
) -> None:
    added = cli("add", "demo", "--host", "api.example.test", "--format", "token {value}", "--path", "/v1/*",
                stdin=CANARY)
    assert added.returncode == 0, added.stderr
    assert "in OneCLI, for every agent group" in added.stdout
    create = next(c for c in onecli.calls() if c["argv"][:2] == ["secrets", "create"])
    assert create["stdin"] == CANARY and "--value" not in create["argv"]  # on stdin, not in argv
    assert create["argv"][create["argv"].index("--file") + 1] == "/dev/stdin"
    [stored] = onecli.secrets()
    assert (stored["value"], stored["hostPattern"], stored["pathPattern"]) == (CANARY, "api.example.test", "/v1/*")
    assert stored["injectionConfig"] == {"headerName": "Authorization", "valueFormat": "token {value}"}

    listed = cli("list")
    assert listed.returncode == 0 and "demo" in listed.stdout and "api.example.test" in listed.stdout
    assert "token •••" in listed.stdout and "all groups" in listed.stdout
    lists = [c["argv"] for c in onecli.calls() if c["argv"][:2] == ["secrets", "list"]]
    assert all("preview" not in " ".join(argv) for argv in lists)  # the value's preview is never even asked for

    assert cli("add", "demo", "--host", "x.test", stdin="v-1234").stderr.count("use `nanoclaw secrets rotate demo`")
    grouped = cli("add", "fam", "--host", "x.test", "--group", "family", stdin="v-1234")
    assert grouped.returncode == 1 and "OneCLI has no agent groups" in grouped.stderr

    old_id = stored["id"]
    assert cli("rotate", "demo", stdin="sk-onecli-new-value").returncode == 0
    [rotated] = onecli.secrets()
    assert rotated["value"] == "sk-onecli-new-value" and rotated["id"] != old_id
    assert rotated["pathPattern"] == "/v1/*" and rotated["injectionConfig"]["valueFormat"] == "token {value}"
    commands = [c["argv"][1] for c in onecli.calls()]
    assert commands[-2:] == ["delete", "create"]  # rotate = delete + create

    assert cli("rm", "demo").returncode == 0 and onecli.secrets() == []
    assert "no secrets yet" in cli("list").stdout
    assert "no secret named 'demo' in OneCLI" in cli("rm", "demo").stderr
    for call in onecli.calls():
        assert all(CANARY not in arg and "sk-onecli-new-value" not in arg for arg in call["argv"])
    assert not (private_config_dir / "vault.json").exists()


def test_onecli_values_never_reach_a_log_record_or_an_error_message(
    onecli: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    onecli.seed(secret("dial", "api.getdial.ai/v1/*"),  # OneCLI's own: a path in the pattern, a name with spaces
                secret("Some Key", "*.weather.test", injectionConfig={"paramName": "key"}))
    vault = OneCliVault.open({})
    assert vault.wants("api.getdial.ai", "any-group") and vault.wants("eu.weather.test", "g")
    assert not vault.wants("getdial.ai.evil.test", "g")
    assert [r.name for r in vault.rules()] == ["Some Key", "dial"]
    assert vault.rules()[0].header == "?key="  # shown for what it is, never as a value
    with pytest.raises(VaultError, match="not injected as a header"):
        vault.rotate("Some Key", CANARY)

    vault.add(SecretRule("demo", "api.example.test"), CANARY)
    onecli.fail("create")  # the server echoes the value in its error
    with pytest.raises(VaultError) as failed:
        vault.add(SecretRule("other", "api.example.test"), CANARY)
    assert CANARY not in str(failed.value) and "[redacted]" in str(failed.value)
    with pytest.raises(VaultError) as lost:
        vault.rotate("demo", CANARY + "-2")
    assert "deleted the old value of 'demo'" in str(lost.value) and CANARY not in str(lost.value)
    with pytest.raises(VaultError, match="line break"):
        vault.add(SecretRule("nl", "x.test"), "a\nb")

    onecli.fail("list")  # a running host keeps the last list when OneCLI stops answering, and says so
    vault.refresh = 0.0
    assert "dial" in [r.name for r in vault.rules()]
    assert any(r.getMessage().startswith("onecli.list_failed") for r in caplog.records)
    assert caplog.records and CANARY not in caplog.text


# --- Egress from a real sandbox ------------------------------------------------------------------------

@dataclass
class Stack:
    host: Host
    gateway: FakeOneCliGateway
    upstream: FakeHttpsUpstream


@pytest.fixture
async def stack(tmp_path: Path, onecli: StandIn, private_config_dir: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    """A host with the OneCLI backend. OneCLI holds a secret for `localhost`; the stand-in gateway only tunnels,
    so the HTTPS upstream's CA plays OneCLI's CA (ONECLI_CA_CERT)."""
    upstream = onecli_upstream(tmp_path)
    await upstream.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(upstream.ca.cert_path))  # the host trusts the upstream, like OneCLI
    gateway = FakeOneCliGateway(authorization="Basic " + base64.b64encode(f"x:{GATEWAY_TOKEN}".encode()).decode())
    await gateway.start()
    onecli.seed(secret("demo", "localhost", CANARY))
    private_config_dir.mkdir(parents=True, exist_ok=True)
    (private_config_dir / "egress-policy.json").write_text(json.dumps({"default": "allow", "groups": {
        "family": {"rules": [{"host": "localhost", "action": "deny"}]},
        "kids": {"default": "deny", "rules": [{"host": "localhost", "path": "/v1/*", "action": "allow"}]},
    }}))
    host = Host(make_settings(tmp_path / "home", egress_allow_private=True, vault_backend="onecli", extra={
        "ONECLI_GATEWAY_URL": f"http://x:{GATEWAY_TOKEN}@127.0.0.1:{gateway.port}",
        "ONECLI_CA_CERT": str(upstream.ca.cert_path),
        "ANTHROPIC_BASE_URL": f"https://localhost:{upstream.port}",
    }), channels=[FakeChannel])
    await host.start()
    for group in ("family", "kids", "friends"):
        agent_groups.create(host.conn, group)
        host.folders.ensure_group(group)
    try:
        yield Stack(host, gateway, upstream)
    finally:
        await host.stop()
        await gateway.stop()
        upstream.server.close()


PROBE = r"""
import json, os, socket, ssl
out = []
def proxy():
    s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect('/run/nanoclaw/proxy.sock')
    return s
def read(sock):
    data = b''
    try:
        while (chunk := sock.recv(65536)): data += chunk
    except ssl.SSLError:
        pass
    return data.decode(errors='replace').split(' ')[1] if data else 'nothing'
for target, path in REQUESTS:
    s = proxy()
    if target is None:  # the model gateway: origin-form, the session token as the API key
        s.sendall(f'GET {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {os.environ["NANOCLAW_PROXY_TOKEN"]}\r\n'
                  f'Connection: close\r\n\r\n'.encode())
        out.append({'response': read(s)})
        continue
    s.sendall(f'CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Bearer '.encode()
              + os.environ['NANOCLAW_PROXY_TOKEN'].encode() + b'\r\n\r\n')
    answer = s.recv(4096).decode(errors='replace')
    if not answer.startswith('HTTP/1.1 200'):
        out.append({'connect': answer.split(' ')[1]})
        continue
    tls = ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE']).wrap_socket(s, server_hostname='localhost')
    tls.sendall(f'GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'.encode())
    out.append({'connect': '200', 'response': read(tls)})
print(json.dumps(out))
"""


async def from_sandbox(stack: Stack, group: str, *requests: tuple[str | None, str]) -> list[dict[str, str]]:
    session = session_for(stack.host, group, chat=f"chat-{group}")
    await stack.host.supervisor.prepare(session)
    out = await asyncio.to_thread(run_in_sandbox, stack.host, session, PROBE.replace("REQUESTS", repr(requests)), 60)
    return out  # type: ignore[return-value]


def audit(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("egress.request")]


@pytest.mark.sandbox
@pytest.mark.slow
async def test_a_sandbox_reaches_onecli_hosts_through_its_gateway_and_other_hosts_directly(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    port = stack.upstream.port
    out = await from_sandbox(stack, "friends", (f"localhost:{port}", "/v1/things"), (f"127.0.0.1:{port}", "/direct"),
                             (None, "/v1/models"))
    assert out == [{"connect": "200", "response": "200"}] * 2 + [{"response": "200"}]
    # The OneCLI host went through the gateway (twice: the sandbox's tunnel, and the model API the proxy calls);
    # the other host did not. TLS inside the sandbox verified against OneCLI's CA, from the sandbox's bundle.
    assert stack.gateway.tunnels == [f"localhost:{port}", f"localhost:{port}"]
    assert [s["request"] for s in stack.upstream.seen] == ["GET /v1/things HTTP/1.1", "GET /direct HTTP/1.1",
                                                           "GET /v1/models HTTP/1.1"]
    model = stack.upstream.seen[-1]
    assert "x-api-key" not in model and "authorization" not in model  # the session's token is not passed on
    events = audit(caplog)
    assert any("host=localhost" in e and "decision=onecli" in e and "method=CONNECT" in e for e in events)
    assert any("host=127.0.0.1" in e and "decision=tunnel" in e for e in events)
    assert any("path=/v1/models" in e and "decision=onecli" in e for e in events)
    assert CANARY not in caplog.text and GATEWAY_TOKEN not in caplog.text


@pytest.mark.sandbox
@pytest.mark.slow
async def test_the_egress_policy_is_applied_before_onecli(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    port = stack.upstream.port
    denied = await from_sandbox(stack, "family", (f"localhost:{port}", "/v1/things"))
    assert denied == [{"connect": "403"}]
    assert stack.gateway.tunnels == [] and stack.upstream.seen == []  # OneCLI never saw it
    assert any("host=localhost" in e and "decision=refused" in e for e in audit(caplog))

    # A rule by path: NanoClaw intercepts to judge each request, and sends the allowed ones on through OneCLI.
    judged = await from_sandbox(stack, "kids", (f"localhost:{port}", "/v1/things"), (f"localhost:{port}", "/admin"))
    assert judged == [{"connect": "200", "response": "200"}, {"connect": "200", "response": "403"}]
    assert stack.gateway.tunnels == [f"localhost:{port}"] and len(stack.upstream.seen) == 1
    assert any("path=/v1/things" in e and "decision=onecli" in e for e in audit(caplog))


@pytest.mark.sandbox
@pytest.mark.slow
async def test_a_credential_typed_into_the_form_is_saved_in_onecli_for_every_group(
    stack: Stack, onecli: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    from tests.security.test_vault import _ask_for_credential

    caplog.set_level("DEBUG", logger="nanoclaw")
    ch, link = await _ask_for_credential(stack.host)
    async with httpx.AsyncClient(trust_env=False) as client:
        form = await client.get(link)
        assert "from every agent group" in form.text
        csrf = form.text.split("name='csrf' value='")[1].split("'")[0]
        saved = await client.post(link, data={"csrf": csrf, "value": "sk-weather-typed-42", "action": "save"})
        assert saved.status_code == 200 and "Saved in OneCLI" in saved.text
    assert (await ch.wait_sent(2, timeout=30))[1].text == "saved"
    weather = next(s for s in onecli.secrets() if s["name"] == "weather")
    assert (weather["value"], weather["hostPattern"]) == ("sk-weather-typed-42", "api.weather.test")
    assert weather["injectionConfig"] == {"headerName": "X-Api-Key", "valueFormat": "{value}"}
    assert "sk-weather-typed-42" not in caplog.text
    assert all("sk-weather-typed-42" not in arg for call in onecli.calls() for arg in call["argv"])
