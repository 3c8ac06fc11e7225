"""`nanoclaw setup`: non-interactive for scripts, the wizard in a real terminal, and what it saves.

Every test runs with HOME, XDG_CONFIG_HOME and NANOCLAW_HOME in tmp_path (`user_env`); keys go to NANOCLAW_HOME/config.
"""

from __future__ import annotations

import re
import shlex
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nanoclaw import registry
from nanoclaw.cli import main
from nanoclaw.config import Settings
from tests.unit.isolated_user import NANOCLAW, full_env, user_env  # noqa: F401

KEY = "sk-ant-api03-TESTKEY-" + "x" * 40 + "-END"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def saved(user_env: dict[str, str]) -> tuple[Path, Path]:
    # NANOCLAW_HOME names the home: it keeps its keys in its own config/ folder.
    return Path(user_env["NANOCLAW_HOME"]) / "config.env", Path(user_env["NANOCLAW_HOME"]) / "config" / "credentials.env"


def run_cli(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


# -- non-interactive ------------------------------------------------------------------------


def test_non_interactive_setup_then_doctor_passes(user_env: dict[str, str]) -> None:
    """Acceptance check 3, in-process."""
    code, out = run_cli("setup", "--non-interactive", "--assistant-name", "Bob", "--provider", "mock")
    assert code == 0, out
    assert "[1/6] Sandbox" in out and "[6/6] Service" in out and "NanoClaw is set up." in out
    config, credentials = saved(user_env)
    assert config.read_text().endswith("NANOCLAW_ASSISTANT_NAME=Bob\nNANOCLAW_PROVIDER=mock\nNANOCLAW_CHANNELS=terminal\n")
    assert mode(config) == 0o600 and mode(config.parent) == 0o700
    assert not credentials.exists()  # no secret was given
    assert (Path(user_env["NANOCLAW_HOME"]) / "nanoclaw.db").is_file()
    code, out = run_cli("doctor")
    assert code == 0, out
    assert "FAIL" not in out and out.rstrip().endswith("All good.")


def test_non_interactive_setup_then_doctor_in_real_processes_without_a_tty(user_env: dict[str, str]) -> None:
    """Acceptance check 3 exactly as a script runs it: no terminal at all."""
    env = full_env()
    setup = subprocess.run([NANOCLAW, "setup", "--non-interactive", "--assistant-name", "Bob", "--provider", "mock"],
                           env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                           start_new_session=True)  # no controlling terminal
    assert setup.returncode == 0, setup.stdout + setup.stderr
    doctor = subprocess.run([NANOCLAW, "doctor"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=60)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert Settings.load().assistant_name == "Bob"


def test_key_from_stdin_never_appears_in_argv_or_ps(user_env: dict[str, str]) -> None:
    args = [NANOCLAW, "setup", "--non-interactive", "--provider", "claude", "--key-stdin"]
    proc = subprocess.Popen(args, env=full_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    lines = []
    while "[2/6] Model" not in (line := proc.stdout.readline()):  # now it waits for the key on stdin
        assert line, "".join(lines)
        lines.append(line)
    def every_cmdline() -> bytes:
        return b"\n".join(p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if _readable(p))

    assert b"--key-stdin" in every_cmdline()  # the scan sees the setup process itself
    proc.stdin.write(KEY + "\n")  # from here on setup holds the key: no process may carry it in its argv
    proc.stdin.close()
    assert KEY not in subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=False).stdout
    deadline = time.monotonic() + 60
    while proc.poll() is None:  # every process's argv, again and again, until setup is done with the key
        assert KEY.encode() not in every_cmdline()
        assert time.monotonic() < deadline, "setup did not finish within 60 s"
    out = "".join(lines) + proc.stdout.read()
    assert proc.returncode == 0, out
    assert KEY not in out and "sk-ant-…-END" in out  # shown masked
    config, credentials = saved(user_env)
    assert credentials.read_text().splitlines()[-1] == f"ANTHROPIC_API_KEY={KEY}"
    assert mode(credentials) == 0o600 and mode(credentials.parent) == 0o700
    assert KEY not in config.read_text() and "NANOCLAW_PROVIDER=claude" in config.read_text()
    assert credentials.parent == Path(user_env["NANOCLAW_HOME"]) / "config"  # the home is self-contained
    doctor = subprocess.run([NANOCLAW, "doctor"], env=full_env(), capture_output=True, text=True, timeout=60)
    assert doctor.returncode == 0, doctor.stdout
    assert "model: provider claude, key set" in doctor.stdout and KEY not in doctor.stdout
    assert re.search(r"key files: \S+credentials.env \(600\)", doctor.stdout)


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


def test_no_option_takes_a_secret(user_env: dict[str, str]) -> None:
    code, out = run_cli("setup", "--non-interactive", "--key", KEY)
    assert code == 2 and "No such option '--key'" in out
    from nanoclaw.cli.setup import setup

    value_options = [p.name for p in setup.params if not getattr(p, "is_flag", False)]
    assert not [n for n in value_options if re.search("key|token|secret|password", n or "")], value_options


def test_key_from_the_environment_is_saved_for_the_service(user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    code, out = run_cli("setup", "--non-interactive")
    assert code == 0, out
    assert "provider claude" in out  # a key given: claude is the default
    _, credentials = saved(user_env)
    assert f"ANTHROPIC_API_KEY={KEY}" in credentials.read_text()


def test_claude_without_a_key_says_how_to_give_one(user_env: dict[str, str]) -> None:
    code, out = run_cli("setup", "--non-interactive", "--provider", "claude")
    assert code == 1
    assert "claude needs an Anthropic key" in out and "--key-stdin" in out and "ANTHROPIC_API_KEY" in out
    config, _ = saved(user_env)
    assert not config.exists()  # nothing is saved before every answer is valid
    code, out = run_cli("setup", "--non-interactive", "--key-stdin", input="\n")
    assert code == 1 and "the key on standard input: the key is empty" in out


def test_bad_answers_are_refused_with_a_sentence(user_env: dict[str, str]) -> None:
    code, out = run_cli("setup", "--non-interactive", "--assistant-name", "two words")
    assert code == 1 and "must be a word" in out
    code, out = run_cli("setup", "--non-interactive", "--provider", "gpt")
    assert code == 1 and "'gpt' is not installed; choose one of: claude, mock" in out
    code, out = run_cli("setup", "--non-interactive", "--channel", "icq")
    assert code == 1 and "icq is not installed" in out and "pip install nanoclaw-icq" in out


def test_second_run_keeps_earlier_answers(user_env: dict[str, str]) -> None:
    assert run_cli("setup", "--non-interactive", "--assistant-name", "Bob", "--key-stdin", input=KEY)[0] == 0
    config, credentials = saved(user_env)
    config.write_text(config.read_text() + "# my note\nNANOCLAW_MAX_SANDBOXES=2\n")
    code, out = run_cli("setup", "--non-interactive")
    assert code == 0, out
    settings = Settings.load()
    assert (settings.assistant_name, settings.provider, settings.max_sandboxes) == ("Bob", "claude", 2)
    assert "# my note" in config.read_text()
    assert credentials.read_text().count("ANTHROPIC_API_KEY=") == 1


def test_a_new_key_makes_claude_the_default_again(user_env: dict[str, str]) -> None:
    assert run_cli("setup", "--non-interactive", "--provider", "mock")[0] == 0
    assert run_cli("setup", "--non-interactive")[1].count("provider mock") == 1  # the earlier answer
    code, out = run_cli("setup", "--non-interactive", "--key-stdin", input=KEY + "\n")
    assert code == 0 and "provider claude, key sk-ant-…-END" in out


def test_renaming_updates_untouched_memory_only(user_env: dict[str, str]) -> None:
    memory = Path(user_env["NANOCLAW_HOME"]) / "groups" / "main" / "CLAUDE.md"
    run_cli("setup", "--non-interactive", "--assistant-name", "Bob")
    assert memory.read_text().startswith("# Bob — main")
    run_cli("setup", "--non-interactive", "--assistant-name", "Zed")
    assert memory.read_text().startswith("# Zed — main")
    memory.write_text(memory.read_text() + "The owner likes tea.\n")
    run_cli("setup", "--non-interactive", "--assistant-name", "Amy")
    assert memory.read_text().startswith("# Zed — main")  # edited by someone: left alone


def test_env_that_overrides_the_saved_answer_is_pointed_out(user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOCLAW_ASSISTANT_NAME", "Env")
    code, out = run_cli("setup", "--non-interactive", "--assistant-name", "Bob")
    assert code == 0
    assert "NANOCLAW_ASSISTANT_NAME=Env from ./.env or the environment wins over the saved Bob" in out


def test_broken_saved_config_does_not_stop_setup(user_env: dict[str, str]) -> None:
    config, _ = saved(user_env)
    config.parent.mkdir(parents=True)
    config.write_text("NANOCLAW_MAX_SANDBOXES=lots\n")
    assert run_cli("doctor")[0] == 1
    code, out = run_cli("setup", "--non-interactive")
    assert "the saved settings do not load" in out
    assert code == 0  # setup itself finishes; the bad line stays for the person to fix, and doctor says where
    code, out = run_cli("doctor")
    assert code == 1 and "FAIL config: NANOCLAW_MAX_SANDBOXES='lots'" in out and f"correct it in" in out


# -- channels with tokens (a channel package registered the way a third-party one would be) --


@pytest.fixture
def chatapp_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.names
    monkeypatch.setattr(registry, "names", lambda group: sorted([*real(group), "chatapp"]) if group == registry.CHANNELS
                        else real(group))


def test_channel_tokens_come_from_the_environment(user_env: dict[str, str], chatapp_installed: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATAPP_BOT_TOKEN", "tok-123 secret")
    code, out = run_cli("setup", "--non-interactive", "--channel", "chatapp")
    assert code == 0, out
    config, credentials = saved(user_env)
    assert "NANOCLAW_CHANNELS=terminal,chatapp" in config.read_text()
    assert "CHATAPP_BOT_TOKEN='tok-123 secret'" in credentials.read_text() and "tok-123" not in out
    monkeypatch.delenv("CHATAPP_BOT_TOKEN")
    settings = Settings.load()
    assert settings.channel_enabled("chatapp") and settings.extra["CHATAPP_BOT_TOKEN"] == "tok-123 secret"


def test_wizard_asks_for_channel_tokens_hidden(user_env: dict[str, str], chatapp_installed: None) -> None:
    answers = [
        "",  # no Anthropic key
        "",  # provider: mock (the default without a key)
        "",  # name: Andy
        "terminal, chatapp",
        "BOT_TOKEN",  # refused: must start with CHATAPP_
        "chatapp_bot_token",
        "tok-abc",
        "",  # no more variables
        "n",  # no service
    ]
    code, out = run_cli("setup", input="\n".join(answers) + "\n")
    assert code == 0, out
    assert "chatapp's settings are named CHATAPP_SOMETHING" in out
    assert "tok-abc" not in out
    _, credentials = saved(user_env)
    assert "CHATAPP_BOT_TOKEN=tok-abc" in credentials.read_text()
    # Second run: the saved token is offered to keep (Enter), with no value shown.
    code, out = run_cli("setup", input="\n\n\n\n\n\nn\n")
    assert code == 0, out
    assert "CHATAPP_BOT_TOKEN (hidden; Enter keeps the saved value)" in out
    assert "Channels to enable, comma-separated [terminal,chatapp]" in out
    assert "CHATAPP_BOT_TOKEN=tok-abc" in credentials.read_text()


def test_wizard_asks_for_the_settings_a_channel_names(user_env: dict[str, str]) -> None:
    answers = [
        "",  # no Anthropic key
        "",  # provider: mock
        "",  # name: Andy
        "terminal, email",
        "andy@example.test",  # EMAIL_ADDRESS, shown
        "app-password-123",  # EMAIL_PASSWORD, hidden
        "imap.example.test",
        "",  # EMAIL_SMTP_HOST skipped
        "n",  # the server cannot be reached from here: no second try
        "n",  # no service
    ]
    code, out = run_cli("setup", input="\n".join(answers) + "\n")
    assert code == 0, out
    assert "docs/channels/email.md" in out and "EMAIL_PASSWORD (hidden)" in out
    assert "app-password-123" not in out
    _, credentials = saved(user_env)
    text = credentials.read_text()
    assert "EMAIL_ADDRESS=andy@example.test" in text and "EMAIL_PASSWORD=app-password-123" in text
    assert "EMAIL_IMAP_HOST=imap.example.test" in text and "EMAIL_SMTP_HOST" not in text


# -- the wizard in a real terminal (tmux) ----------------------------------------------------


class Tmux:
    """One tmux server on a private socket; the pane is a real terminal (a pty) for the wizard."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.runs = 0
        self.base: list[str] = []

    def start(self, command: str) -> None:
        """Run `command` in a new server: reusing a socket races with the old server's exit."""
        self.kill()
        self.runs += 1
        self.base = ["tmux", "-S", str(self.folder / f"tmux-{self.runs}.sock")]
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items()
                           if k in ("HOME", "XDG_CONFIG_HOME", "NANOCLAW_HOME", "PATH"))
        script = f"cd {shlex.quote(self.env['HOME'])} && env {exports} {command}; echo EXIT=$?; sleep 600"
        subprocess.run([*self.base, "new-session", "-d", "-x", "220", "-y", "100", script], env=self.env, check=True)

    def screen(self) -> str:
        out = subprocess.run([*self.base, "capture-pane", "-p", "-J", "-S", "-500"], capture_output=True, text=True,
                             env=self.env, check=True)
        return out.stdout

    def wait_for(self, text: str, count: int = 1, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} (x{count}) not on screen:\n{screen}")
            time.sleep(0.1)

    def type(self, text: str) -> None:
        if text:
            subprocess.run([*self.base, "send-keys", "-l", text], env=self.env, check=True)
        subprocess.run([*self.base, "send-keys", "Enter"], env=self.env, check=True)

    def answer(self, prompt: str, text: str, count: int = 1) -> None:
        self.wait_for(prompt, count)
        self.type(text)

    def kill(self) -> None:
        if not self.base:
            return
        subprocess.run([*self.base, "kill-server"], env=self.env, capture_output=True, check=False)


@pytest.fixture
def tmux(tmp_path: Path, user_env: dict[str, str]):  # type: ignore[no-untyped-def]
    if shutil.which("tmux") is None:  # ./scripts/test installs it
        pytest.fail("tmux is not installed (./scripts/test installs it, or apt-get install tmux): the wizard "
                    "cannot be driven through a real terminal")
    t = Tmux(tmp_path, full_env())
    yield t
    t.kill()


def _sandbox_ok(tmux: Tmux) -> None:
    screen = tmux.wait_for("[2/6] Model")
    if "Continue the setup anyway?" in screen:  # no working bwrap here: the wizard says so and asks
        tmux.type("y")


@pytest.mark.slow
def test_wizard_in_a_real_terminal(tmux: Tmux, user_env: dict[str, str]) -> None:
    tmux.start(f"{NANOCLAW} setup")
    screen = tmux.wait_for("Anthropic API key (typing is hidden; Enter skips")
    assert "[1/6] Sandbox" in screen and "Defaults are in [brackets]" in screen
    _sandbox_ok(tmux)
    tmux.type("sk-ant-tooshort")  # invalid: re-asked
    tmux.wait_for("Anthropic keys start with sk-ant- and are about 100 characters long, this one has 15")
    tmux.answer("Anthropic API key (typing is hidden", KEY, count=2)
    tmux.answer("Provider (claude, mock, openai) [claude]:", "gpt")  # a key was given: claude is the default
    tmux.answer("Error: 'gpt' is not installed; choose one of: claude, mock", "")
    tmux.answer("Assistant name [Andy]:", "two words")
    tmux.answer("must be a word (letters, digits, - or _)", "Bob")
    tmux.answer("Channels to enable, comma-separated [terminal]:", "terminal, nosuch")
    tmux.answer("nosuch is not installed (installed: discord, email,", "")
    screen = tmux.answer("Install the service now? [y/N]:", "n")
    screen = tmux.wait_for("EXIT=0")
    assert KEY not in screen and KEY[:20] not in screen, "the key was echoed"
    for done in ("✓ provider claude, key sk-ant-…-END", "✓ name Bob (trigger @Bob)", "✓ channels terminal",
                 "ANTHROPIC_API_KEY stored in", "NanoClaw is set up."):
        assert done in screen
    config, credentials = saved(user_env)
    assert "NANOCLAW_ASSISTANT_NAME=Bob\nNANOCLAW_PROVIDER=claude\nNANOCLAW_CHANNELS=terminal\n" in config.read_text()
    assert f"ANTHROPIC_API_KEY={KEY}\n" in credentials.read_text()
    assert mode(config) == mode(credentials) == 0o600

    # Second run: every earlier answer is the default; Enter all the way keeps them.
    tmux.start(f"{NANOCLAW} setup")
    _sandbox_ok(tmux)
    tmux.answer("Enter keeps the saved key sk-ant-…-END)", "")
    tmux.answer("Provider (claude, mock, openai) [claude]:", "")
    tmux.answer("Assistant name [Bob]:", "")
    tmux.answer("Channels to enable, comma-separated [terminal]:", "")
    tmux.answer("Install the service now? [y/N]:", "")
    screen = tmux.wait_for("EXIT=0")
    assert "stored in" not in screen  # the key was kept, not re-written
    assert "NANOCLAW_ASSISTANT_NAME=Bob\nNANOCLAW_PROVIDER=claude\n" in config.read_text()
    assert f"ANTHROPIC_API_KEY={KEY}\n" in credentials.read_text()


def test_wizard_asks_where_the_openai_compatible_model_lives(user_env: dict[str, str]) -> None:
    answers = [
        "",  # no Anthropic key
        "openai",
        "localhost:11434",  # refused: not a URL
        "http://localhost:11434/v1/",
        "sk-local-canary",  # hidden
        "",  # name: Andy
        "",  # channels: terminal
        "n",  # no service
    ]
    code, out = run_cli("setup", input="\n".join(answers) + "\n")
    assert code == 0, out
    assert "is not an http(s) URL" in out and "sk-local-canary" not in out
    config, credentials = saved(user_env)
    assert "NANOCLAW_PROVIDER=openai" in config.read_text()
    assert "OPENAI_BASE_URL=http://localhost:11434/v1" in credentials.read_text()
    assert "OPENAI_API_KEY=sk-local-canary" in credentials.read_text()
    settings = Settings.load()
    assert settings.extra["OPENAI_BASE_URL"] == "http://localhost:11434/v1"
