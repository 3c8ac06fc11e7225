"""`nanoclaw doctor`: one line per check, a one-line fix for each problem, exit 1 only on failures."""

from __future__ import annotations

import re
import threading
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

import nanoclaw.cli.doctor as cli_doctor
from nanoclaw.cli import main
from nanoclaw.config import Settings
from tests.fakes.anthropic import FakeAnthropic
from tests.integration.hostproc import HostProcess
from tests.unit.isolated_user import user_env  # noqa: F401

LINE = re.compile(r"(ok  |warn|FAIL) [a-z ()]+: .+|     fix: .+|All good\.|Error: \d+ checks? failed")


def doctor() -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor"])
    assert not result.exception or isinstance(result.exception, SystemExit), result.exception
    for line in result.output.splitlines():
        assert LINE.fullmatch(line), f"not a doctor line: {line!r}"
    return result.exit_code, result.output


def line_of(output: str, name: str) -> str:
    found = [ln for ln in output.splitlines() if re.match(rf"(ok  |warn|FAIL) {re.escape(name)}\b", ln)]
    assert len(found) == 1, output
    return found[0]


def fix_after(output: str, name: str) -> str:
    lines = output.splitlines()
    index = lines.index(line_of(output, name))
    assert lines[index + 1].startswith("     fix: "), output
    return lines[index + 1].removeprefix("     fix: ")


def setup_home(*args: str) -> None:
    result = CliRunner().invoke(main, ["setup", "--non-interactive", *args])
    assert result.exit_code == 0, result.output


def test_fresh_machine_passes(user_env: dict[str, str]) -> None:
    code, out = doctor()
    assert code == 0, out
    names = [ln.split(":")[0][5:] for ln in out.splitlines() if ln[:4] in ("ok  ", "warn", "FAIL")]
    assert names == ["python", "config", "sandbox (bwrap)", "other runtimes", "agent isolation", "home", "disk", "database", "key files", "vault", "model",
                     "channels", "host", "service"]


def test_key_file_readable_by_others_fails_with_chmod_fix(user_env: dict[str, str]) -> None:
    setup_home()
    credentials = Path(user_env["NANOCLAW_HOME"]) / "config" / "credentials.env"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text("ANTHROPIC_API_KEY=sk-ant-" + "k" * 30 + "\n")
    credentials.chmod(0o644)
    code, out = doctor()
    assert code == 1 and "Error: 1 check failed" in out
    assert "is readable by others (mode 644)" in line_of(out, "key files")
    assert fix_after(out, "key files") == f"chmod 600 {credentials}"
    credentials.chmod(0o600)
    assert doctor()[0] == 0


def test_unparsable_config_line_is_named(user_env: dict[str, str]) -> None:
    setup_home()
    config = Path(user_env["NANOCLAW_HOME"]) / "config.env"
    config.write_text(config.read_text() + "assistant name is Bob\n")
    code, out = doctor()
    assert code == 1
    assert f"{config} line 7: assistant name is Bob cannot be read" in line_of(out, "config")
    assert "each line must look like NAME=value" in fix_after(out, "config")


def test_claude_without_a_key_fails(user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOCLAW_PROVIDER", "claude")
    code, out = doctor()
    assert code == 1
    assert "provider claude, but no Anthropic key is set" in line_of(out, "model")
    assert fix_after(out, "model").startswith("run: nanoclaw setup")


def test_low_disk_is_a_warning_not_a_failure(user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cli_doctor.shutil, "disk_usage", lambda path: usage(10**10, 10**10 - 300 * 1024**2, 300 * 1024**2))
    code, out = doctor()
    assert code == 0
    assert line_of(out, "disk").startswith("warn disk: 0.3 GB free") and "(under 1 GB)" in out
    assert "free some space" in fix_after(out, "disk")


def test_channel_enabled_but_not_installed_fails(user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOCLAW_CHANNELS", "terminal,icq")
    code, out = doctor()
    assert code == 1 and "enabled but not installed: icq" in line_of(out, "channels")
    assert fix_after(out, "channels").startswith("pip install nanoclaw-icq")


# -- the model key against an API (only while the host runs) -----------------------------------


class _Refuse(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(401)
        self.end_headers()
        self.wfile.write(b'{"type":"error","error":{"type":"authentication_error"}}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_api() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _claude(base_url: str) -> Settings:
    return Settings(provider="claude", extra={"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": base_url})


def test_key_accepted_refused_or_unreachable(refusing_api: str) -> None:
    with FakeAnthropic() as fake:
        ok = cli_doctor._reachable(_claude(fake.base_url))
        assert ok.ok and "key accepted by http://127.0.0.1" in ok.detail
        request = fake.other_requests()[-1]
        assert request.path == "/v1/models" and request.headers["x-api-key"] == "sk-ant-test"
    refused = cli_doctor._reachable(_claude(refusing_api))
    assert not refused.ok and "refused the key (HTTP 401)" in refused.detail and "console.anthropic.com" in refused.fix
    closed = cli_doctor._reachable(_claude(refusing_api.rsplit(":", 1)[0] + ":9"))
    assert not closed.ok and closed.detail.startswith("cannot reach") and "internet connection" in closed.fix


@pytest.mark.slow
def test_running_claude_host_gets_its_key_tested(user_env: dict[str, str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeAnthropic() as fake:
        env = {"ANTHROPIC_API_KEY": "sk-ant-test-running", "ANTHROPIC_BASE_URL": fake.base_url}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        host = HostProcess(Path(user_env["NANOCLAW_HOME"]), "--provider", "claude", env=env).start()
        try:
            code, out = doctor()
        finally:
            host.stop()
        assert code == 0, out
        assert f"provider claude, key accepted by {fake.base_url}" in line_of(out, "model")
        assert fake.other_requests()[-1].headers["x-api-key"] == "sk-ant-test-running"
    # Not running: the key is only checked to be set, nothing goes over the network.
    code, out = doctor()
    assert "reachability is tested while the host runs" in line_of(out, "model")


def test_a_broken_egress_policy_or_tampered_vault_fails_the_vault_check(user_env: dict[str, str]) -> None:
    from nanoclaw.config import user_config_dir
    from nanoclaw.vault.store import SecretRule, SecretStore

    config = user_config_dir()
    SecretStore.open(config).add(SecretRule("demo", "api.example.test"), "sk-canary-doctor")
    code, out = doctor()
    assert code == 0 and "1 secrets" in line_of(out, "vault") and "sk-canary" not in out
    (config / "egress-policy.json").write_text('{"default": "sometimes"}')
    code, out = doctor()
    assert code == 1 and "'sometimes' is not one of allow, deny, approve" in line_of(out, "vault")
    (config / "egress-policy.json").unlink()
    (config / "vault.key").write_bytes(b"A" * 43 + b"=")  # a different key: nothing decrypts
    code, out = doctor()
    assert code == 1 and "does not decrypt" in line_of(out, "vault")
