"""From inside a real sandbox: what the agent can see and reach (DESIGN §5)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from nanoclaw.db import agent_groups
from nanoclaw.host.app import Host
from tests.security.probe import run_in_sandbox, session_for

pytestmark = pytest.mark.sandbox


@pytest.fixture
def family(host: Host) -> str:
    agent_groups.create(host.conn, "family")
    host.folders.ensure_group("family")
    (host.settings.groups_dir / "family" / "secret-plans.txt").write_text("surprise party")
    return session_for(host, "family", chat="fam")


def test_host_files_are_not_visible(host: Host, family: str) -> None:
    main = session_for(host)
    (host.settings.groups_dir / "main" / "main-only.txt").write_text("x")
    seen = run_in_sandbox(host, family, f"""
        import json, os
        def ls(p):
            try: return sorted(os.listdir(p))
            except OSError as e: return "error: " + e.strerror
        print(json.dumps({{
            "root": ls("/"), "home": ls("/home"), "etc": ls("/etc"), "workspace": ls("/workspace"),
            "agent": ls("/workspace/agent"), "nanoclaw_home": os.path.exists({str(host.settings.home)!r}),
            "project_tests": os.path.exists({str(Path(__file__).parents[1])!r}),
            "passwd": open("/etc/passwd").read(), "cwd": os.getcwd(),
        }}))
    """)
    assert seen["nanoclaw_home"] is False and seen["project_tests"] is False
    assert seen["home"] == ["agent"]
    assert "root:" not in seen["passwd"] and seen["passwd"].startswith("agent:")
    assert "shadow" not in seen["etc"] and "ssh" not in seen["etc"]
    assert seen["cwd"] == "/workspace/agent"
    assert "secret-plans.txt" in seen["agent"] and "main-only.txt" not in seen["agent"]
    assert main not in str(seen["workspace"])


def test_global_memory_is_read_only_except_for_main(host: Host, family: str) -> None:
    probe = """
        import json
        result = {}
        for path in ("/workspace/global/CLAUDE.md", "/workspace/agent/notes.md", "/workspace/inbound.db",
                     "/workspace/inbound.db-wal"):
            try:
                with open(path, "a") as f: f.write("x")
                result[path] = "written"
            except OSError as e:
                result[path] = e.strerror
        import os
        try:
            os.remove("/workspace/inbound.db"); result["rm"] = "removed"
        except OSError as e:
            result["rm"] = e.strerror
        print(json.dumps(result))
    """
    seen = run_in_sandbox(host, family, probe)
    blocked = ("Read-only file system", "Permission denied")  # the mount, or the owner (root hosts) first
    assert seen["/workspace/global/CLAUDE.md"] in blocked
    assert seen["/workspace/agent/notes.md"] == "written"
    assert seen["/workspace/inbound.db"] in blocked
    assert seen["/workspace/inbound.db-wal"] in blocked
    assert seen["rm"] != "removed"
    admin = run_in_sandbox(host, session_for(host), probe)
    assert admin["/workspace/global/CLAUDE.md"] == "written"


def test_no_network_not_even_the_hosts_loopback(host: Host, family: str) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        seen = run_in_sandbox(host, family, f"""
            import json, socket
            out = {{}}
            for host_, port in (("127.0.0.1", {port}), ("10.0.0.1", 80), ("1.1.1.1", 53)):
                s = socket.socket(); s.settimeout(2)
                try:
                    s.connect((host_, port)); out[host_] = "connected"
                except OSError as e:
                    out[host_] = type(e).__name__
            out["interfaces"] = sorted(open("/proc/net/dev").read().split("\\n")[2:])
            print(json.dumps(out))
        """)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing from the sandbox ever reached the host's listener
    finally:
        server.close()
    assert seen["127.0.0.1"] == "ConnectionRefusedError"
    assert seen["10.0.0.1"] != "connected" and seen["1.1.1.1"] != "connected"
    assert [line.split(":")[0].strip() for line in seen["interfaces"] if line.strip()] == ["lo"]


def test_processes_identity_and_environment(host: Host, family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN_FOR_TEST", "s3cr3t-value")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real-key")
    seen = run_in_sandbox(host, family, """
        import json, os
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        environs = ""
        for p in pids:
            try: environs += open(f"/proc/{p}/environ").read()
            except OSError: pass
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
        print(json.dumps({"pids": pids, "uid": os.getuid(), "gid": os.getgid(), "env": dict(os.environ),
                          "environs": environs, "capeff": status["CapEff"].strip(), "hostname": os.uname().nodename}))
    """)
    assert len(seen["pids"]) <= 3 and os.getpid() not in seen["pids"]
    uid = host.folders.owner_of("family")  # its group's own uid, from a range no host account owns
    assert uid is not None and uid >= host.settings.sandbox_uid_base and uid != host.folders.owner_of("main")
    assert (seen["uid"], seen["gid"]) == (uid, uid)
    assert int(seen["capeff"], 16) == 0
    assert seen["hostname"] == "nanoclaw"
    blob = repr(seen["env"]) + seen["environs"]
    assert "s3cr3t-value" not in blob and "sk-ant-real-key" not in blob
    assert not any(k.startswith("ANTHROPIC_") for k in seen["env"])


async def test_a_real_runner_cannot_read_host_secrets_from_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner the host really starts (not a probe): nothing of the host's environment reaches its sandbox."""
    from tests.conftest import make_settings
    from tests.fakes.channel import FakeChannel

    monkeypatch.setenv("SECRET_TOKEN_FOR_TEST", "s3cr3t-value")
    host = Host(make_settings(tmp_path / "home"), channels=[FakeChannel])
    await host.start()
    try:
        from tests.conftest import fake, wire

        wire(host, "chat1", trigger="always")
        ch = fake(host)
        await ch.say("hi")
        await ch.wait_sent(1)
        bwrap_pid = next(iter(host.supervisor.live.values())).process.pid
        environs = [Path(f"/proc/{pid}/environ").read_bytes() for pid in _descendants(bwrap_pid) + [bwrap_pid]]
        assert environs and not any(b"s3cr3t-value" in e for e in environs)
    finally:
        await host.stop()


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found += [int(entry), *_descendants(int(entry))]
    return found
