"""Settings: defaults, NANOCLAW_* variables, .env, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanoclaw.config import Settings
from nanoclaw.errors import ConfigError


def load(tmp_path: Path, env: dict[str, str], **kw: object) -> Settings:
    return Settings.load(env={"NANOCLAW_HOME": str(tmp_path / "h"), **env}, env_file=tmp_path / "none.env", **kw)


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path, {})
    assert (s.assistant_name, s.trigger, s.runtime, s.max_sandboxes, s.doorbell) == ("Andy", "@Andy", "", 8, True)
    assert s.default_provider({"mock", "claude"}) == "mock"


def test_environment_types_and_overrides(tmp_path: Path) -> None:
    s = load(tmp_path, {"NANOCLAW_MAX_SANDBOXES": "3", "NANOCLAW_IDLE_TIMEOUT": "1.5", "NANOCLAW_DOORBELL": "0",
                        "NANOCLAW_ASSISTANT_NAME": "Bob"}, provider="mock")
    assert (s.max_sandboxes, s.idle_timeout, s.doorbell, s.trigger, s.provider) == (3, 1.5, False, "@Bob", "mock")


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "x.env"
    env_file.write_text("NANOCLAW_ASSISTANT_NAME=Fromfile\nNANOCLAW_MAX_ATTEMPTS=5\nTELEGRAM_BOT_TOKEN=abc\n")
    s = Settings.load(env={"NANOCLAW_HOME": str(tmp_path / "h"), "NANOCLAW_MAX_ATTEMPTS": "7"}, env_file=env_file)
    assert (s.assistant_name, s.max_attempts) == ("Fromfile", 7)
    assert s.channel_enabled("telegram") and not s.channel_enabled("slack")


def test_bad_values_say_which_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NANOCLAW_MAX_SANDBOXES"):
        load(tmp_path, {"NANOCLAW_MAX_SANDBOXES": "lots"})
    with pytest.raises(ConfigError, match="must be a word"):
        load(tmp_path, {"NANOCLAW_ASSISTANT_NAME": "two words"})
    with pytest.raises(ConfigError, match="at least 1"):
        load(tmp_path, {"NANOCLAW_MAX_ATTEMPTS": "0"})


def test_channels_and_provider_choice(tmp_path: Path) -> None:
    s = load(tmp_path, {"NANOCLAW_CHANNELS": "slack, Discord", "ANTHROPIC_API_KEY": "k"})
    assert s.channel_enabled("slack") and s.channel_enabled("discord")
    assert s.default_provider({"mock", "claude"}) == "claude"
    assert s.default_provider({"mock"}) == "mock"
