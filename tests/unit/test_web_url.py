"""`nanoclaw web-url` prints the owner's login link, from the token the host uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nanoclaw.cli import main
from nanoclaw.host.web import login_url, web_token
from tests.conftest import make_settings


def test_web_url_prints_the_login_link_and_keeps_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOCLAW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NANOCLAW_WEB_PORT", "8765")
    first = CliRunner().invoke(main, ["web-url"])
    second = CliRunner().invoke(main, ["web-url"])
    assert first.exit_code == 0 and first.output == second.output  # the same token every time
    token = (tmp_path / "home" / "web.token").read_text().strip()
    assert first.output.strip() == f"http://127.0.0.1:8765/login?token={token}" and len(token) >= 40
    assert (tmp_path / "home" / "web.token").stat().st_mode & 0o777 == 0o600
    assert "anyone with it" in CliRunner().invoke(main, ["web-url", "--help"]).output


def test_a_host_bound_to_all_addresses_still_links_to_loopback(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", web_host="0.0.0.0", web_port=8700)
    assert login_url(settings) == f"http://127.0.0.1:8700/login?token={web_token(settings)}"
