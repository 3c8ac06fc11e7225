"""A user account in tmp_path: HOME, XDG_CONFIG_HOME and NANOCLAW_HOME, so no test touches the real ~/.config or ~/.nanoclaw."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NANOCLAW = str(Path(sys.executable).parent / "nanoclaw")

# Variables of the person running the tests that would leak into what setup and doctor see.
_LEAKY = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "NANOCLAW_ENV_FILE")


@pytest.fixture
def user_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point HOME, XDG_CONFIG_HOME and NANOCLAW_HOME at tmp_path (also for subprocesses: pass `full_env`)."""
    user = tmp_path / "user"
    user.mkdir()
    env = {
        "HOME": str(user),
        "XDG_CONFIG_HOME": str(user / ".config"),
        "NANOCLAW_HOME": str(tmp_path / "nanoclaw-home"),
        "NANOCLAW_DISK_QUOTA_MB": "0",  # files stay readable by path between commands (tests/security has the quota)
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in list(os.environ):
        if key in _LEAKY or (key.startswith("NANOCLAW_") and key not in env):
            monkeypatch.delenv(key)
    monkeypatch.chdir(user)  # no stray ./.env from the checkout
    # The person's own systemd user manager must never be asked or changed: `systemctl` here is a
    # fake with no session (as under sudo or in a container); tests that need one rewrite it.
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    fake_systemctl(bin_dir, session=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


def fake_systemctl(bin_dir: Path, *, session: bool, active: str = "active", fail_on: str = "") -> Path:
    """A `systemctl` (and `loginctl`) that logs its arguments to bin_dir/systemctl.log.

    session=False: every call fails like systemd without a user bus. Otherwise `show` reports
    ActiveState=`active`, and a call whose arguments contain `fail_on` fails.
    """
    log = bin_dir / "systemctl.log"
    if not session:
        body = 'echo "Failed to connect to bus: No medium found" >&2; exit 1'
    else:
        body = f"""case "$*" in
  *{fail_on or '@@never@@'}*) echo "Job failed" >&2; exit 1;;
  *" show nanoclaw"*) printf 'ActiveState={active}\nSubState=x\nMainPID=0\nUnitFileState=enabled\n';;
esac
exit 0"""
    script = bin_dir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n{body}\n')
    script.chmod(0o755)
    loginctl = bin_dir / "loginctl"
    loginctl.write_text("#!/bin/sh\necho no\n")
    loginctl.chmod(0o755)
    return log


def full_env(**extra: str) -> dict[str, str]:
    """os.environ (already isolated by `user_env`) plus `extra`, for subprocesses."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
