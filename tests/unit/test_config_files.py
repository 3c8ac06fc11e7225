"""Where settings come from: the files `nanoclaw setup` writes, `.env`, the environment, flags."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from nanoclaw import envfile
from nanoclaw.config import Settings, credentials_path, user_config_dir
from nanoclaw.errors import ConfigError


def _layers(tmp_path: Path) -> tuple[dict[str, str], Path]:
    user, home = tmp_path / "user", tmp_path / "home"
    env = {"HOME": str(user), "XDG_CONFIG_HOME": str(user / "cfg"), "NANOCLAW_HOME": str(home)}
    (home / "config").mkdir(parents=True)  # a home named by NANOCLAW_HOME keeps its keys in its own config/
    (home / "config" / "credentials.env").write_text(
        "ANTHROPIC_API_KEY=from-credentials\nNANOCLAW_MODEL=m-credentials\nNANOCLAW_ASSISTANT_NAME=Cred\n"
        "NANOCLAW_HOME=/elsewhere\n"
    )
    (home / "config.env").write_text(
        "NANOCLAW_ASSISTANT_NAME=Conf\nNANOCLAW_MAX_SANDBOXES=3\nNANOCLAW_PROVIDER=mock\nNANOCLAW_HOME=/elsewhere\n"
    )
    dotenv = tmp_path / "dot.env"
    dotenv.write_text("NANOCLAW_MAX_SANDBOXES=4\nNANOCLAW_IDLE_TIMEOUT=10\n")
    return env, dotenv


def test_precedence_defaults_credentials_config_dotenv_env_overrides(tmp_path: Path) -> None:
    env, dotenv = _layers(tmp_path)
    env.update(NANOCLAW_IDLE_TIMEOUT="20", NANOCLAW_LOG_LEVEL="DEBUG")
    s = Settings.load(env=env, env_file=dotenv, log_level="WARNING")
    assert s.home == tmp_path / "home"  # neither saved file moved it
    assert s.model == "m-credentials"  # credentials file > defaults
    assert s.assistant_name == "Conf"  # config.env > credentials file
    assert s.max_sandboxes == 4  # ./.env > config.env
    assert s.idle_timeout == 20.0  # environment > ./.env
    assert s.log_level == "WARNING"  # explicit override > environment
    assert s.runtime == ""  # default: detected at start
    assert s.extra["ANTHROPIC_API_KEY"] == "from-credentials"
    assert s.default_provider({"mock", "claude"}) == "mock"  # config.env says mock although a key is set


def test_home_override_reads_that_homes_config(tmp_path: Path) -> None:
    env, dotenv = _layers(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.env").write_text("NANOCLAW_ASSISTANT_NAME=Other\n")
    s = Settings.load(env=env, env_file=dotenv, home=other)
    assert (s.home, s.assistant_name, s.config_file) == (other, "Other", other / "config.env")


def test_key_from_credentials_makes_claude_the_default(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    path = tmp_path / ".config" / "nanoclaw" / "credentials.env"  # no XDG_CONFIG_HOME: ~/.config
    assert credentials_path(env) == path
    path.parent.mkdir(parents=True)
    path.write_text("ANTHROPIC_API_KEY=sk-ant-x\n")
    s = Settings.load(env=env, env_file=tmp_path / "none.env")
    assert s.default_provider({"mock", "claude"}) == "claude"


def test_xdg_config_home_is_honoured() -> None:
    assert user_config_dir({"XDG_CONFIG_HOME": "/x/cfg", "HOME": "/h"}) == Path("/x/cfg/nanoclaw")
    assert user_config_dir({"HOME": "/h"}) == Path("/h/.config/nanoclaw")


def test_nanoclaw_home_is_self_contained_unless_nanoclaw_config_dir_says_otherwise(tmp_path: Path) -> None:
    base = {"HOME": "/h", "XDG_CONFIG_HOME": "/x/cfg"}
    assert user_config_dir({**base, "NANOCLAW_HOME": "/srv/a"}) == Path("/srv/a/config")
    assert user_config_dir({**base, "NANOCLAW_HOME": "/srv/b"}) == Path("/srv/b/config")  # two homes share nothing
    assert user_config_dir({**base, "NANOCLAW_HOME": "~/.nanoclaw"}) == Path("/x/cfg/nanoclaw")  # the default home
    assert user_config_dir({**base, "NANOCLAW_HOME": "/srv/a", "NANOCLAW_CONFIG_DIR": "/keys"}) == Path("/keys")
    for name in ("a", "b"):
        home = tmp_path / name
        (home / "config").mkdir(parents=True)
        (home / "config" / "credentials.env").write_text(f"ANTHROPIC_API_KEY=key-{name}\n")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    a = Settings.load(env={**env, "NANOCLAW_HOME": str(tmp_path / "a")}, env_file=tmp_path / "none.env")
    b = Settings.load(env=env, env_file=tmp_path / "none.env", home=tmp_path / "b")  # --home does the same
    assert (a.extra["ANTHROPIC_API_KEY"], b.extra["ANTHROPIC_API_KEY"]) == ("key-a", "key-b")
    assert (a.config_dir, b.credentials_file) == (tmp_path / "a" / "config", tmp_path / "b" / "config" / "credentials.env")
    assert b.mount_allowlist == tmp_path / "b" / "config" / "mount-allowlist.json"


def test_a_bad_value_in_config_env_is_a_config_error(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.env").write_text("NANOCLAW_MAX_SANDBOXES=many\n")
    with pytest.raises(ConfigError, match="NANOCLAW_MAX_SANDBOXES='many'"):
        Settings.load(env={"HOME": str(tmp_path), "NANOCLAW_HOME": str(home)}, env_file=tmp_path / "none")


# -- envfile: what setup writes reads back the same ------------------------------------

TRICKY = {
    "PLAIN": "sk-ant-api03-AbC_d-9",
    "SPACES": "two words  here",
    "QUOTES": """it's "quoted" """,
    "BACKSLASH": r"C:\path\n\t",
    "DOLLAR": "$HOME and ${USER}",
    "HASH": "abc #not a comment",
    "EQUALS": "a=b=c",
    "EMPTY": "",
    "UNICODE": "Zoë ✓",
}


def test_envfile_round_trip_through_dotenv(tmp_path: Path) -> None:
    path = tmp_path / "f.env"
    envfile.update(path, TRICKY)
    assert dotenv_values(path, interpolate=False) == TRICKY
    assert envfile.read(path) == TRICKY
    assert envfile.problems(path) == []


def test_saved_files_are_read_literally(tmp_path: Path) -> None:
    home = tmp_path / "h"
    envfile.update(home / "config.env", {"NANOCLAW_MODEL": "${HOME}-model"})
    envfile.update(home / "config" / "credentials.env", {"SLACK_TOKEN": "a${B}c"})
    s = Settings.load(env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "NANOCLAW_HOME": str(home)},
                      env_file=tmp_path / "none")
    assert (s.model, s.extra["SLACK_TOKEN"]) == ("${HOME}-model", "a${B}c")


def test_envfile_update_keeps_other_lines_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "f.env"
    path.write_text("# mine\nKEEP=1\nexport CHANGE=old\nDROP=x\nCHANGE=dup\n")
    path.chmod(0o644)
    envfile.update(path, {"CHANGE": "new", "DROP": None, "ADD": "yes"}, header="ignored for an existing file")
    assert path.read_text() == "# mine\nKEEP=1\nCHANGE=new\nADD=yes\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_envfile_new_file_gets_header_and_private_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "creds.env"
    envfile.update(path, {"A": "1"}, header="first line\nsecond")
    assert path.read_text() == "# first line\n# second\nA=1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["creds.env"]  # no temp file left


def test_envfile_refuses_multiline_values_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one line"):
        envfile.update(tmp_path / "f", {"A": "x\ny"})
    with pytest.raises(ConfigError, match="not a variable name"):
        envfile.update(tmp_path / "f", {"1A": "x"})
    assert not (tmp_path / "f").exists()


def test_envfile_problems_name_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.env"
    path.write_text("A=1\nthis is not an assignment\nB='unclosed\n")
    assert envfile.problems(path) == ["line 2: this is not an assignment", "line 3: B='unclosed"]
