"""The OCI runtimes: a whole conversation in a podman container, orphans of a crashed host, and the
Apple `container` runtime's commands against a stand-in CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.db import agent_groups, approvals, group_packages, users
from nanoclaw.host.app import Host
from nanoclaw.sandbox.apple import NETWORK, AppleRuntime
from nanoclaw.sandbox.oci import DockerRuntime, PodmanRuntime
from tests.conftest import fake, make_settings, wire
from tests.fakes.channel import FakeChannel

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def containers(label: str) -> list[str]:
    out = subprocess.run(["podman", "ps", "--all", "--format", "{{.Names}}", "--filter",
                          f"label=org.nanoclaw.home={label}"], capture_output=True, text=True, check=True)
    return out.stdout.split()


async def test_a_conversation_in_podman_and_the_orphans_of_a_killed_host(tmp_path: Path, podman_image: str) -> None:
    settings = make_settings(tmp_path / "home", runtime="podman", sandbox_image=podman_image, idle_timeout=60)
    host = Host(settings, channels=[FakeChannel])
    await host.start()
    wire(host, "chat1", trigger="always")
    ch = fake(host)
    await ch.say("hello from a container", chat="chat1")
    assert "hello from a container" in (await ch.wait_sent(1, timeout=60))[0].text
    await ch.say("and again, warm", chat="chat1")
    assert "and again, warm" in (await ch.wait_sent(2, timeout=30))[1].text
    assert len(containers(host.label)) == 1  # one live runner, found by its label
    # A crashed host leaves its container running; the next host of this home stops it.
    host.supervisor._closing = True
    host.supervisor.live.clear()
    await host.stop()
    assert len(containers(host.label)) == 1
    again = Host(settings, channels=[FakeChannel])
    await again.start()
    try:
        assert containers(again.label) == []
    finally:
        await again.stop()


def spec_for(host: Host) -> Any:
    """The spec of a non-admin group's session (global memory read-only)."""
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    session = host.sessions.resolve("family", None, None, "agent-shared")
    return host.sessions.sandbox_spec(session, host.label)


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


@pytest.mark.parametrize("runtime_cls", [PodmanRuntime, DockerRuntime])
async def test_oci_commands_lock_the_container_down(tmp_path: Path, runtime_cls: type[PodmanRuntime],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_cls, "cli", classmethod(lambda cls: [f"/usr/bin/{cls.cli_name}"]))
    settings = make_settings(tmp_path / "home", sandbox_memory_mb=300, sandbox_pids=50, sandbox_cpus=0.5)
    host = Host(settings, runtime=runtime_cls.from_settings(settings), channels=[FakeChannel])
    args = host.runtime.command(spec_for(host))
    assert args[:2] == [f"/usr/bin/{runtime_cls.cli_name}", "run"]
    assert flag_values(args, "--network") == ["none"] and "--read-only" in args
    assert flag_values(args, "--cap-drop") == ["ALL"] and "no-new-privileges" in flag_values(args, "--security-opt")
    family_uid = host.folders.owner_of("family")  # the group's own uid, from the reserved range
    assert family_uid is not None and family_uid >= host.settings.sandbox_uid_base
    assert flag_values(args, "--user") == [f"{family_uid}:{family_uid}"]
    assert (flag_values(args, "--pids-limit"), flag_values(args, "--memory"), flag_values(args, "--cpus")) == \
        (["50"], ["300m"], ["0.5"])
    assert flag_values(args, "--label") == [f"org.nanoclaw.home={host.label}"]
    mounts = flag_values(args, "--mount")
    assert any(m.endswith("target=/workspace/global,readonly") for m in mounts)
    assert any("target=/workspace/agent" in m and "readonly" not in m for m in mounts)
    assert args[-3:] == ["-I", "-m", "nanoclaw.runner"] and args[-4] == "/opt/nanoclaw/bin/python"
    assert not any("ANTHROPIC_API_KEY" in a for a in args)
    # Values travel in the CLI's environment: argv (what `ps` shows) names variables, never their values.
    assert "NANOCLAW_RUNNER_WORKSPACE" in flag_values(args, "--env") and not any("=" in v for v in flag_values(args, "--env"))
    if runtime_cls is PodmanRuntime:  # podman's default profile, minus ptrace, mount, unshare…
        profile = next(v for v in flag_values(args, "--security-opt") if v.startswith("seccomp="))
        allowed = {n for rule in json.loads(Path(profile[8:]).read_text())["syscalls"]
                   if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}
        assert not {"ptrace", "mount", "unshare", "keyctl", "bpf"} & allowed


async def test_apple_container_runtime_against_a_stand_in_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "container").write_text(f"#!{sys.executable}\n" + (Path(__file__).parents[1] / "fakes" / "container_cli.py").read_text())
    (bin_dir / "container").chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CONTAINER_LOG", str(log))
    settings = make_settings(tmp_path / "home", runtime="apple")
    label = Host(settings, channels=[FakeChannel]).label
    orphan = {"configuration": {"id": f"{label}-s-0123", "labels": {"org.nanoclaw.home": label}}, "status": "running"}
    stranger = {"configuration": {"id": "someone-else", "labels": {}}, "status": "running"}
    monkeypatch.setenv("FAKE_CONTAINER_LIST", json.dumps([orphan, stranger]))
    assert AppleRuntime.check().ok

    host = Host(settings, channels=[FakeChannel])
    assert host.settings.doorbell is False  # FIFOs do not cross the VM boundary: sessions poll
    await host.start()
    try:
        wire(host, "chat1", trigger="always")
        await fake(host).say("hello mac", chat="chat1")
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        for _ in range(50):
            calls = [json.loads(line) for line in log.read_text().splitlines()]
            if any(c[0] == "run" for c in calls):
                break
            await __import__("asyncio").sleep(0.1)
    finally:
        await host.stop()
    assert ["delete", "--force", f"{label}-s-0123"] in calls  # the orphan, and only ours
    assert ["network", "create", "--internal", NETWORK] in calls
    run = next(c for c in calls if c[0] == "run")
    assert flag_values(run, "--network") == [NETWORK] and "--read-only" in run and "--no-dns" in run
    assert flag_values(run, "--cap-drop") == ["ALL"] and flag_values(run, "--user") == ["1000:1000"]
    env_file = Path(flag_values(run, "--env-file")[0])  # values never in argv: a 0600 file the CLI reads
    assert "NANOCLAW_RUNNER_DOORBELL=0" in env_file.read_text().splitlines() and env_file.stat().st_mode & 0o077 == 0
    assert not any("NANOCLAW_PROXY_TOKEN" in a for a in run)
    assert run[-4:] == ["/opt/nanoclaw/bin/python", "-I", "-m", "nanoclaw.runner"]


async def test_an_agent_asks_for_packages_the_owner_approves_and_its_next_start_has_them(
    tmp_path: Path, podman_image: str
) -> None:
    settings = make_settings(tmp_path / "home", runtime="podman", sandbox_image=podman_image, idle_timeout=60)
    host = Host(settings, channels=[FakeChannel])
    await host.start()
    try:
        agent_groups.create(host.conn, "family")
        host.folders.ensure_group("family")
        wire(host, "admin-dm", is_dm=True)
        wire(host, "fam", group="family", trigger="always")
        ch = fake(host)
        await ch.say("[mock:read=/usr/bin/jq]", chat="fam")
        assert "No such file" in (await ch.wait_sent(1, timeout=60))[0].text
        ask = json.dumps({"packages": ["jq"], "reason": "to read JSON"})
        await ch.say(f"[mock:tool=install_packages:{ask}]", chat="fam")
        sent = await ch.wait_sent(3, timeout=30)  # the agent's answer in fam, the card in the owner's admin DM
        answer = next(s.text for s in sent if s.route.platform_id == "fam" and s.text.startswith("Asked the owner"))
        assert answer.startswith("Asked the owner to approve jq (oa-")
        approval_id = answer.split("(")[1].split(")")[0]
        [card_sent] = [s for s in sent if s.route.platform_id == "admin-dm"]
        assert "Agent group family asks to install: jq" in card_sent.text
        card = approvals.get(host.conn, approval_id)
        assert card is not None and card.kind == "install_packages" and card.payload["reason"] == "to read JSON"
        users.upsert(host.conn, "fake", "owner", role="owner")
        await ch.say(f"/approve {approval_id}", chat="admin-dm", sender="owner", is_dm=True)
        assert "building family's image with jq" in (await ch.wait_sent(4, timeout=30))[3].text
        for _ in range(600):  # the build fetches jq from Debian's mirror
            if group_packages.for_group(host.conn, "family") or not host.packages.builds:
                break
            await asyncio.sleep(0.2)
        assert group_packages.for_group(host.conn, "family") == ["jq"]
        session = host.conn.execute("SELECT id FROM sessions WHERE agent_group_id = 'family'").fetchone()[0]
        for _ in range(100):  # asked to stop when idle, so the next start uses the new image
            if session not in host.supervisor.live:
                break
            await asyncio.sleep(0.1)
        count = len(ch.sent)
        await ch.say("[mock:read=/usr/bin/jq]", chat="fam")
        assert "ELF" in (await ch.wait_sent(count + 1, timeout=60))[-1].text
    finally:
        await host.stop()


async def test_install_packages_is_refused_with_bubblewrap(host: Host) -> None:
    wire(host, "chat1", trigger="always")
    await fake(host).say('[mock:tool=install_packages:{"packages": ["jq"]}]', chat="chat1")
    reply = (await fake(host).wait_sent(1))[0].text
    assert "runs agents with bwrap, which has no image to add packages to" in reply
