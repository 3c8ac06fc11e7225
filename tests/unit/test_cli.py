"""The CLI reads like documentation and fails with sentences."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nanoclaw import db
from nanoclaw.cli import main
from nanoclaw.host.bootstrap import first_run
from tests.conftest import make_settings

COMMANDS = [[], ["run"], ["chat"], ["send"], ["status"], ["groups"], ["groups", "add"], ["groups", "wire"],
            ["groups", "policy"], ["groups", "mcp"], ["doctor"], ["tasks"], ["tasks", "add"], ["setup"], ["service"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "main")
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings = make_settings(tmp_path / "home")
    first_run(db.connect(settings.db_path), settings)
    monkeypatch.setenv("NANOCLAW_HOME", str(settings.home))
    monkeypatch.chdir(tmp_path)
    return settings.home


def test_status_without_a_host_says_how_to_start_one(home: Path) -> None:
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1 and "nanoclaw run" in result.output


def test_groups_add_wire_and_list(home: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["groups", "add", "family", "--name", "Family"]).exit_code == 0
    assert (home / "groups" / "family" / "CLAUDE.md").is_file()
    wired = runner.invoke(main, ["groups", "wire", "telegram:-100", "family", "--trigger", "always"])
    assert wired.exit_code == 0 and "wired telegram:-100 → family" in wired.output
    listed = runner.invoke(main, ["groups"])
    assert "family" in listed.output and "telegram:-100" in listed.output and "trigger=always" in listed.output


@pytest.mark.parametrize("args,message", [
    (["groups", "add", "Bad Name"], "lowercase letters"),
    (["groups", "add", "main"], "exists already"),
    (["groups", "wire", "no-colon", "main"], "channel:platform_id"),
    (["groups", "wire", "telegram:1", "ghost"], "no agent group 'ghost'"),
    (["groups", "wire", "telegram:1", "main", "--trigger", "prefix"], "needs the prefix text"),
])
def test_bad_input_is_a_sentence(home: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and message in result.output


def test_unknown_command_is_refused() -> None:
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output
