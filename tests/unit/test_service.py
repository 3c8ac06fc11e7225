"""`nanoclaw service …` and `nanoclaw logs`: the systemd unit, the launchd plist, install/status/uninstall, log files.

The systemd unit is checked twice: by a strict parser here (always), and by
`systemd-analyze verify` where that tool exists. Without it, that test is
reported as an expected failure with the reason — never silently skipped.
"""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nanoclaw.cli import main
from nanoclaw.client import LocalClient
from nanoclaw.config import Settings
from nanoclaw.errors import HostNotRunning
from nanoclaw.service import LAUNCHD_LABEL, Launchd, ServiceSpec, SystemdUser, launchd_plist, systemd_unit
from tests.unit.isolated_user import NANOCLAW, fake_systemctl, full_env, user_env  # noqa: F401

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd user units are Linux-only")

# Keys a systemd unit may use in each section (the subset NanoClaw's unit needs; anything else is a typo).
KNOWN_KEYS = {
    "Unit": {"Description", "Documentation", "After", "Wants"},
    "Service": {"Type", "ExecStart", "Environment", "WorkingDirectory", "Restart", "RestartSec", "TimeoutStopSec",
                "StandardOutput", "StandardError"},
    "Install": {"WantedBy"},
}


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A strict reading of a unit file: known sections and keys only, every line accounted for."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = header.group(1)
            assert current in KNOWN_KEYS and current not in sections, f"line {number}: section {current}"
            sections[current] = []
            continue
        key, sep, value = line.partition("=")
        assert current and sep and key in KNOWN_KEYS[current], f"line {number}: {line!r}"
        assert value == value.strip() and value, f"line {number}: empty or padded value"
        sections[current].append((key, value))
    return sections


def unit_words(value: str) -> list[str]:
    """systemd's reading of ExecStart/Environment: %% specifiers, then quoted words, then $$."""
    assert not re.search(r"%[^%]", value.replace("%%", "")), f"unescaped specifier in {value!r}"
    return [w.replace("$$", "$") for w in shlex.split(value.replace("%%", "%"))]


def one(section: list[tuple[str, str]], key: str) -> str:
    values = [v for k, v in section if k == key]
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def spec_for(home: Path) -> ServiceSpec:
    """The service of `nanoclaw --home HOME service install`: that home keeps its keys in HOME/config."""
    return ServiceSpec.for_settings(Settings(home=home, config_dir=home / "config"))


def test_a_config_dir_chosen_apart_from_the_home_goes_into_the_service(tmp_path: Path) -> None:
    spec = ServiceSpec.for_settings(Settings(home=tmp_path / "h", config_dir=tmp_path / "keys"))
    assert spec.environment == {"NANOCLAW_HOME": str(tmp_path / "h"), "NANOCLAW_CONFIG_DIR": str(tmp_path / "keys")}


TRICKY_HOME = 'home dir%i$USER"q\\b'  # space, a specifier, a variable, a quote, a backslash


def test_unit_reads_back_strictly(tmp_path: Path) -> None:
    home = tmp_path / TRICKY_HOME
    spec = spec_for(home)
    unit = parse_unit(systemd_unit(spec))
    service = unit["Service"]
    argv = unit_words(one(service, "ExecStart"))
    assert argv == [*spec.command]
    assert argv[1:] == ["run", "--log-file", str(home / "logs" / "host.log")]
    assert Path(argv[0]).is_absolute() and os.access(argv[0], os.X_OK), "the venv's nanoclaw, by absolute path"
    env = dict(unit_words(v)[0].split("=", 1) for k, v in service if k == "Environment")
    assert env == {"NANOCLAW_HOME": str(home)}
    assert one(service, "WorkingDirectory").replace("%%", "%") == str(home)
    assert (one(service, "Restart"), one(service, "RestartSec")) == ("on-failure", "5")
    assert one(unit["Install"], "WantedBy") == "default.target"
    assert not any(k.startswith("Standard") for k, _ in service), "logs go to the rotating --log-file"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # ./scripts/test installs it
        pytest.fail("systemd-analyze is not installed (package systemd; ./scripts/test installs it): "
                    "the unit cannot be verified")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}

    def verify(text: str) -> tuple[int, list[str]]:
        path = tmp_path / "units" / "nanoclaw.service"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        result = subprocess.run([analyze, "--user", "verify", str(path)], capture_output=True, text=True, env=env,
                                timeout=60)
        return result.returncode, [ln for ln in (result.stdout + result.stderr).splitlines() if "nanoclaw.service" in ln]

    home = tmp_path / TRICKY_HOME
    (home / "logs").mkdir(parents=True)
    unit = systemd_unit(spec_for(home))
    assert verify(unit) == (0, [])
    # The same check catches a mistake (systemd only warns, so warnings count as failures here).
    rc, complaints = verify(unit.replace("Restart=on-failure", "Restart=on-fail"))
    assert complaints, "systemd-analyze should have complained about Restart=on-fail"


def test_the_units_command_starts_a_host_that_logs_to_its_file(tmp_path: Path, user_env: dict[str, str]) -> None:
    """Run exactly what the unit would run, with its environment and working directory."""
    home = tmp_path / "h o%m$e"
    home.mkdir()
    service = parse_unit(systemd_unit(spec_for(home)))["Service"]
    argv = unit_words(one(service, "ExecStart"))
    env = full_env(**dict(unit_words(v)[0].split("=", 1) for k, v in service if k == "Environment"))
    env.pop("NANOCLAW_PROVIDER", None)
    proc = subprocess.Popen([*argv, "--provider", "mock"], env=env, cwd=one(service, "WorkingDirectory").replace("%%", "%"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                with LocalClient(home / "nanoclaw.sock", timeout=2) as client:
                    if client.request("ping").get("ok"):
                        break
            except (HostNotRunning, OSError):
                assert time.monotonic() < deadline, "the host did not answer"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = (home / "logs" / "host.log").read_text()
    assert "host.started" in log and "host.stopping" in log


def test_launchd_plist_parses_with_the_right_keys(tmp_path: Path) -> None:
    home = tmp_path / TRICKY_HOME
    spec = spec_for(home)
    data = plistlib.loads(launchd_plist(spec))
    assert data["Label"] == LAUNCHD_LABEL == "dev.nanoclaw"
    assert data["ProgramArguments"] == [*spec.command]
    assert data["ProgramArguments"][1:] == ["run", "--log-file", str(home / "logs" / "host.log")]
    assert data["EnvironmentVariables"]["NANOCLAW_HOME"] == str(home)
    assert data["EnvironmentVariables"]["PATH"]
    assert data["KeepAlive"] == {"SuccessfulExit": False} and data["RunAtLoad"] is True
    assert data["ThrottleInterval"] == 5
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert Path(data[key]).parent == home / "logs"
    assert data["WorkingDirectory"] == str(home)


def test_service_file_locations(tmp_path: Path) -> None:
    assert SystemdUser({"HOME": "/h"}).path == Path("/h/.config/systemd/user/nanoclaw.service")
    assert SystemdUser({"HOME": "/h", "XDG_CONFIG_HOME": "/x"}).path == Path("/x/systemd/user/nanoclaw.service")
    assert Launchd({"HOME": "/h"}).path == Path("/h/Library/LaunchAgents/dev.nanoclaw.plist")


def test_env_file_in_use_goes_into_the_unit(tmp_path: Path, user_env: dict[str, str]) -> None:
    (Path.cwd() / ".env").write_text("NANOCLAW_MODEL=x\n")
    result = CliRunner().invoke(main, ["service", "install", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"Environment=NANOCLAW_ENV_FILE={Path.cwd() / '.env'}" in result.stdout


# -- install / status / uninstall with a fake systemctl ----------------------------------------


def _unit_path(user_env: dict[str, str]) -> Path:
    return Path(user_env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "nanoclaw.service"


@linux_only
def test_dry_run_prints_and_writes_nothing(user_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["service", "install", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "ExecStart=" in result.stdout and "Restart=on-failure" in result.stdout
    parse_unit(result.stdout)
    assert not _unit_path(user_env).exists()


@linux_only
def test_install_without_a_user_session_prints_the_commands(user_env: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["service", "install"])
    assert result.exit_code == 0, result.output
    assert _unit_path(user_env).read_text() == systemd_unit(spec_for(Path(user_env["NANOCLAW_HOME"])))
    assert "systemctl --user daemon-reload" in result.output
    assert "systemctl --user enable --now nanoclaw" in result.output
    assert "enable" not in (tmp_path / "fakebin" / "systemctl.log").read_text()
    status = CliRunner().invoke(main, ["service", "status"])
    assert status.exit_code == 0 and "(installed)" in status.output and "unknown (no systemd user session)" in status.output
    doctor = CliRunner().invoke(main, ["doctor"])
    assert re.search(r"ok\s+service: .*installed, state unknown", doctor.output), doctor.output


@linux_only
def test_install_status_uninstall_with_systemd(user_env: dict[str, str], tmp_path: Path) -> None:
    log = fake_systemctl(tmp_path / "fakebin", session=True)
    result = CliRunner().invoke(main, ["service", "install"])
    assert result.exit_code == 0, result.output
    calls = [c for c in log.read_text().splitlines() if c != "--user show-environment"]
    assert calls[-2:] == ["--user daemon-reload", "--user enable --now nanoclaw"]
    assert "loginctl enable-linger" in result.output
    status = CliRunner().invoke(main, ["service", "status"])
    assert "state:   active (x), enabled" in status.output, status.output
    assert re.search(r"ok\s+service: systemd --user nanoclaw.service: active", CliRunner().invoke(main, ["doctor"]).output)
    again = CliRunner().invoke(main, ["service", "install"])
    assert "Kept the systemd --user service file" in again.output
    removed = CliRunner().invoke(main, ["service", "uninstall"])
    assert removed.exit_code == 0, removed.output
    calls = [c for c in log.read_text().splitlines() if c != "--user show-environment"]
    assert calls[-2:] == ["--user disable --now nanoclaw", "--user daemon-reload"]
    assert not _unit_path(user_env).exists()
    assert "No NanoClaw service is installed" in CliRunner().invoke(main, ["service", "uninstall"]).output


@linux_only
def test_install_reports_a_failing_systemctl(user_env: dict[str, str], tmp_path: Path) -> None:
    fake_systemctl(tmp_path / "fakebin", session=True, fail_on="enable")
    result = CliRunner().invoke(main, ["service", "install"])
    assert result.exit_code == 1
    assert "Error: `systemctl --user enable --now nanoclaw` failed: Job failed" in result.output


@linux_only
def test_doctor_fails_on_a_failed_service(user_env: dict[str, str], tmp_path: Path) -> None:
    fake_systemctl(tmp_path / "fakebin", session=True)
    assert CliRunner().invoke(main, ["service", "install"]).exit_code == 0
    fake_systemctl(tmp_path / "fakebin", session=True, active="failed")
    doctor = CliRunner().invoke(main, ["doctor"])
    assert doctor.exit_code == 1
    assert re.search(r"FAIL service: .*failed", doctor.output)
    assert "fix: read why in: nanoclaw logs" in doctor.output


# -- logs --------------------------------------------------------------------------------------


def test_log_file_rotates_at_its_size(tmp_path: Path) -> None:
    """In a fresh interpreter: pytest's own log capture would make basicConfig a no-op here."""
    code = (
        "import logging, sys; from pathlib import Path; from nanoclaw import logs\n"
        "assert (logs.LOG_FILE_BYTES, logs.LOG_FILE_BACKUPS) == (10 * 1024 * 1024, 5)\n"
        "logs.LOG_FILE_BYTES = 2000\n"
        "logs.setup('INFO', Path(sys.argv[1]))\n"
        "for i in range(400): logs.get_logger('t').info('line', n=i)\n"
    )
    log = tmp_path / "logs" / "host.log"
    subprocess.run([sys.executable, "-c", code, str(log)], check=True, timeout=30)
    names = sorted(p.name for p in log.parent.iterdir())
    assert names == ["host.log", "host.log.1", "host.log.2", "host.log.3", "host.log.4", "host.log.5"]
    assert all(p.stat().st_size <= 2100 for p in log.parent.iterdir())
    assert "n=399" in log.read_text()


def test_logs_prints_the_last_lines(user_env: dict[str, str]) -> None:
    missing = CliRunner().invoke(main, ["logs"])
    assert missing.exit_code == 1 and "nanoclaw service install" in missing.output
    log = Path(user_env["NANOCLAW_HOME"]) / "logs" / "host.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert CliRunner().invoke(main, ["logs", "-n", "2"]).output == "line 98\nline 99\n"
    assert CliRunner().invoke(main, ["service", "logs", "--lines", "1"]).output == "line 99\n"
    assert len(CliRunner().invoke(main, ["logs"]).output.splitlines()) == 50


def test_logs_follow_survives_rotation(user_env: dict[str, str]) -> None:
    log = Path(user_env["NANOCLAW_HOME"]) / "logs" / "host.log"
    log.parent.mkdir(parents=True)
    log.write_text("old 1\nold 2\n")
    # Ctrl-C as in a terminal, even when this run was started in the background (which ignores SIGINT).
    proc = subprocess.Popen([NANOCLAW, "logs", "-f", "-n", "1"], env=full_env(), stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "old 2\n"
        with log.open("a") as f:
            f.write("new 1\n")
        assert proc.stdout.readline() == "new 1\n"
        log.rename(log.with_name("host.log.1"))
        log.write_text("rotated 1\n")
        assert proc.stdout.readline() == "rotated 1\n"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0  # Ctrl-C ends it quietly
