"""The escape battery: attacks run inside a real sandbox, on every runtime, and must fail.

Each test is one attempt an agent (or a prompt injection steering it) could
make. The sandbox is built exactly as the host builds it for a non-admin
group's session; `docs/security.md` has the table of what stops each one.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nanoclaw.config import user_config_dir
from nanoclaw.db import agent_groups
from nanoclaw.errors import DestinationRefused
from nanoclaw.host.actions import read_outbox_file
from nanoclaw.host.admin import grant_mount
from nanoclaw.host.app import Host
from nanoclaw.sandbox.mounts import Allowlist
from tests.security.probe import run_code, run_in_sandbox, session_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
# What a seccomp filter or missing privilege answers: bwrap's filter says EPERM, podman's default ENOSYS.
DENIED = {"EPERM", "ENOSYS"}

PRELUDE = """
import ctypes, errno, json, os, signal, socket, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def call(name, *args):
    ctypes.set_errno(0)
    result = getattr(libc, name)(*args)
    return "ok" if result >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def attempt(fn):
    try:
        return fn()
    except socket.gaierror:
        return "gaierror"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    except Exception as e:
        return type(e).__name__
"""


@pytest.fixture
def family(jail: Host) -> str:
    """A session of a non-admin group, with a secret in the admin group's folder next door."""
    agent_groups.create(jail.conn, "family")
    jail.folders.ensure_group("family")
    (jail.settings.groups_dir / "main" / "admin-secret.txt").write_text("the admin's secret")
    return session_for(jail, "family", chat="fam")


def probe(host: Host, session: str, body: str, timeout: float = 60) -> dict[str, Any]:
    return run_in_sandbox(host, session, PRELUDE + body + "\nprint(json.dumps(out))", timeout=timeout)


def read_attempt(host: Host, session: str, path: str) -> str:
    return str(probe(host, session, f"out['r'] = attempt(lambda: open({path!r}, 'rb').read(64).hex())")["r"])


# --- Reading what is not the agent's -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/etc/shadow", "/root/.bashrc", "/root/.ssh/id_rsa", "/etc/ssh/ssh_host_rsa_key",
                                  "/proc/1/root/etc/shadow", "/home/agent/../../etc/shadow"])
def test_reading_host_system_secrets(jail: Host, family: str, path: str) -> None:
    assert read_attempt(jail, family, path) in ("ENOENT", "EACCES", "EPERM")


def test_reading_the_hosts_home_directory(jail: Host, family: str) -> None:
    home = Path.home()
    (home / ".nanoclaw-battery-canary").write_text("x")
    try:
        seen = probe(jail, family, f"out['home'] = attempt(lambda: os.listdir({str(home)!r}))")
    finally:
        (home / ".nanoclaw-battery-canary").unlink()
    # bwrap shows the interpreter's own folder when Python lives in the home (pyenv), and nothing else.
    interpreter = Path(sys.base_prefix).resolve()
    allowed = [interpreter.relative_to(home).parts[0]] if home in interpreter.parents else []
    assert seen["home"] in ("ENOENT", "EACCES") or seen["home"] == allowed, seen


def test_reading_the_projects_env_and_source(jail: Host, family: str) -> None:
    project = Path(__file__).resolve().parents[2]
    for name in (".env", "pyproject.toml", "tests/security/test_escape_battery.py"):
        assert read_attempt(jail, family, str(project / name)) == "ENOENT"


def test_reading_the_nanoclaw_home_and_its_database(jail: Host, family: str) -> None:
    home = jail.settings.home
    for path in (home / "nanoclaw.db", home / "config.env", home / "sessions", jail.settings.state_dir):
        assert read_attempt(jail, family, str(path)) == "ENOENT"


def test_reading_the_vault_key_and_credentials(jail: Host, family: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    config = user_config_dir()
    config.mkdir(parents=True)
    for name in ("credentials.env", "vault.key", "ca.key"):
        (config / name).write_text("sk-ant-very-secret")
    for name in ("credentials.env", "vault.key", "ca.key"):
        assert read_attempt(jail, family, str(config / name)) == "ENOENT"
    assert jail.proxy.ca is not None  # the host's real CA key, made at its start
    assert (jail.proxy.ca.config_dir / "ca.key").is_file()
    assert read_attempt(jail, family, str(jail.proxy.ca.config_dir / "ca.key")) == "ENOENT"
    found = probe(jail, family, """
found = []
for top in ("/workspace", "/home", "/tmp", "/etc", "/opt"):
    for root, dirs, files in os.walk(top):
        for f in files:
            if not os.path.isfile(os.path.join(root, f)) or os.path.islink(os.path.join(root, f)): continue
            try:
                if b"sk-ant-very-secret" in open(os.path.join(root, f), "rb").read(1 << 20): found.append(f)
            except OSError: pass
out["found"] = found
""")
    assert found["found"] == []


def test_reading_another_groups_folder(jail: Host, family: str) -> None:
    admin_file = jail.settings.groups_dir / "main" / "admin-secret.txt"
    seen = probe(jail, family, f"""
out['direct'] = attempt(lambda: open({str(admin_file)!r}).read())
out['relative'] = attempt(lambda: open('/workspace/agent/../../groups/main/admin-secret.txt').read())
out['listing'] = sorted(os.listdir('/workspace'))
""")
    assert seen["direct"] == "ENOENT" and seen["relative"] == "ENOENT"
    assert "groups" not in seen["listing"]


def test_reading_the_hosts_environment_through_proc(jail: Host, family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_ONLY_SECRET", "hunter2-host-only")
    seen = probe(jail, family, """
blob = b""
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for f in ("environ", "cmdline"):
            try: blob += open(f"/proc/{pid}/{f}", "rb").read()
            except OSError: pass
out["leak"] = b"hunter2-" + b"host-only" in blob  # split: the probe's own text is in a cmdline
out["env"] = sorted(os.environ)
""")
    assert seen["leak"] is False and "HOST_ONLY_SECRET" not in seen["env"]


# --- Writing what is not the agent's -------------------------------------------------------------

def test_writing_global_memory_from_a_non_admin_group(jail: Host, family: str) -> None:
    seen = probe(jail, family, "out['w'] = attempt(lambda: open('/workspace/global/CLAUDE.md', 'a').write('pwned'))")
    assert seen["w"] in ("EROFS", "EACCES")
    assert "pwned" not in (jail.settings.groups_dir / "global" / "CLAUDE.md").read_text()


@pytest.mark.parametrize("target", ["/workspace/inbound.db", "/workspace/inbound.db-wal"])
def test_writing_or_replacing_the_hosts_session_files(jail: Host, family: str, target: str) -> None:
    jail.sessions.end(family)  # the host side exists, as when a runner starts
    seen = probe(jail, family, f"""
out['write'] = attempt(lambda: open({target!r}, 'ab').write(b'x'))
out['unlink'] = attempt(lambda: os.unlink({target!r}))
open('/workspace/fake.db', 'wb').write(b'evil')
out['rename'] = attempt(lambda: os.rename('/workspace/fake.db', {target!r}))
""")
    assert seen["write"] in ("EROFS", "EACCES", "ENOENT")
    assert seen["unlink"] in ("EBUSY", "EROFS", "EACCES", "ENOENT", "EPERM")
    assert seen["rename"] in ("EBUSY", "EROFS", "EACCES", "EPERM")


@pytest.mark.parametrize("target", ["/usr/bin/python3", "/etc/passwd", "/usr/lib/evil.so"])
def test_writing_system_files(jail: Host, family: str, target: str) -> None:
    seen = probe(jail, family, f"out['w'] = attempt(lambda: open({target!r}, 'ab').write(b'x'))")
    assert seen["w"] in ("EROFS", "EACCES", "EPERM")
    assert not Path("/usr/lib/evil.so").exists()


def test_writing_to_proc_and_sys(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
out['sysctl'] = attempt(lambda: open('/proc/sys/kernel/hostname', 'w').write('pwned'))
out['sysrq'] = attempt(lambda: open('/proc/sysrq-trigger', 'w').write('b'))
out['sys'] = attempt(lambda: open('/sys/kernel/uevent_helper', 'w').write('/tmp/x'))
""")
    assert all(v in ("EROFS", "EACCES", "ENOENT", "EPERM") for v in seen.values()), seen
    assert socket.gethostname() != "pwned"


# --- Reaching the network ------------------------------------------------------------------------

def _listening(family_: socket.AddressFamily, address: str) -> socket.socket:
    """A listener of the host's: the control that the same connect works outside the sandbox."""
    server = socket.socket(family_)
    server.bind((address, 0))
    server.listen()
    server.setblocking(False)
    control = socket.create_connection((address, server.getsockname()[1]), timeout=3)  # reachable from the host
    control.close()
    server.accept()[0].close()
    return server


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_reaching_a_host_port_on_loopback(jail: Host, family: str, address: str) -> None:
    server = _listening(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
    try:
        port = server.getsockname()[1]
        kind = "socket.AF_INET6" if ":" in address else "socket.AF_INET"
        seen = probe(jail, family, f"s = socket.socket({kind}); s.settimeout(3); "
                                   f"out['c'] = attempt(lambda: s.connect(({address!r}, {port})))")
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing from the sandbox reached the host's listener
    finally:
        server.close()
    assert seen["c"] != "ok", seen


def _host_address() -> str:
    probe_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe_socket.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing address
        return probe_socket.getsockname()[0]
    except OSError:
        return "10.0.2.15"
    finally:
        probe_socket.close()


def test_reaching_the_host_s_own_address(jail: Host, family: str) -> None:
    server = _listening(socket.AF_INET, "0.0.0.0")
    try:
        port = server.getsockname()[1]
        control = socket.create_connection((_host_address(), port), timeout=3)  # the host reaches it by that address
        control.close()
        server.accept()[0].close()
        seen = probe(jail, family, f"s = socket.socket(); s.settimeout(3); "
                                   f"out['c'] = attempt(lambda: s.connect(({_host_address()!r}, {port})))")
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert seen["c"] in ("ENETUNREACH", "EHOSTUNREACH"), seen  # no route at all, not a refusal


def _has_route(address: str) -> str:
    """A UDP connect picks a route and sends nothing: 'ok' where the host has one."""
    u = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.connect((address, 53))
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    finally:
        u.close()


@pytest.mark.parametrize("address", ["1.1.1.1", "169.254.169.254", "192.168.1.1", "8.8.8.8"])
def test_no_route_to_other_addresses_or_a_dns_server(jail: Host, family: str, address: str) -> None:
    """TCP and UDP (DNS exfiltration) both need a route; the host has one, the sandbox none. No packet is sent."""
    assert _has_route(address) == "ok", "control: the host itself has a route to it"
    seen = probe(jail, family, f"""
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out['udp'] = attempt(lambda: u.connect(({address!r}, 53)))
s = socket.socket(); s.settimeout(3)
out['tcp'] = attempt(lambda: s.connect(({address!r}, 80)))
""")
    no_route = ("ENETUNREACH", "EHOSTUNREACH")  # (gVisor's netstack says the latter)
    assert seen["udp"] in no_route and seen["tcp"] in no_route, seen


def test_reaching_a_host_abstract_unix_socket(jail: Host, family: str) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind("\0nanoclaw-battery-abstract")
    server.listen()
    try:
        seen = probe(jail, family, "s = socket.socket(socket.AF_UNIX); out['c'] = attempt(lambda: s.connect('\\0nanoclaw-battery-abstract'))")
    finally:
        server.close()
    assert seen["c"] == "ECONNREFUSED"


def test_reaching_the_hosts_local_api_socket(jail: Host, family: str) -> None:
    path = str(jail.settings.socket_path)
    seen = probe(jail, family, f"s = socket.socket(socket.AF_UNIX); out['c'] = attempt(lambda: s.connect({path!r}))")
    assert seen["c"] == "ENOENT"


def test_only_a_loopback_interface_exists(jail: Host, family: str) -> None:
    seen = probe(jail, family, "out['if'] = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]")
    assert seen["if"] == ["lo"]


# --- Host processes ------------------------------------------------------------------------------

def test_seeing_host_processes(jail: Host, family: str) -> None:
    seen = probe(jail, family, "out['pids'] = [p for p in os.listdir('/proc') if p.isdigit()]")
    assert len(seen["pids"]) < 10  # the probe and its init, not the host's hundreds


def test_signalling_a_host_process(jail: Host, family: str) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        seen = probe(jail, family, f"out['kill'] = attempt(lambda: os.kill({victim.pid}, signal.SIGKILL))")
        assert victim.poll() is None
    finally:
        victim.kill()
    assert seen["kill"] in ("ESRCH", "EPERM")


def test_ptrace_of_a_process_in_the_sandbox(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
child = subprocess.Popen(["sleep", "10"])
time.sleep(0.1)
out['attach'] = call('ptrace', 16, child.pid, 0, 0)  # PTRACE_ATTACH
out['traceme'] = call('ptrace', 0, 0, 0, 0)  # PTRACE_TRACEME
out['vm_read'] = call('process_vm_readv', child.pid, 0, 0, 0, 0, 0)
child.kill()
""")
    assert set(seen.values()) <= DENIED, seen


# --- Kernel interfaces ---------------------------------------------------------------------------

def test_mounting_filesystems(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
os.makedirs('/tmp/m', exist_ok=True)
out['tmpfs'] = call('mount', b'none', b'/tmp/m', b'tmpfs', 0, None)
out['bind'] = call('mount', b'/', b'/tmp/m', None, 4096, None)  # MS_BIND
out['umount'] = call('umount2', b'/workspace/global', 2)
""")
    assert set(seen.values()) <= DENIED, seen


def test_new_namespaces(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
out['user'] = call('unshare', 0x10000000)
out['net'] = call('unshare', 0x40000000)
out['mnt'] = call('unshare', 0x00020000)
out['setns'] = call('setns', os.open('/proc/self/ns/net', os.O_RDONLY), 0)
""")
    assert set(seen.values()) <= DENIED, seen


def test_kernel_exploit_primitives(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
SYS = {'keyctl': 250, 'add_key': 248, 'bpf': 321, 'perf_event_open': 298, 'userfaultfd': 323}
for name, nr in SYS.items():
    out[name] = call('syscall', nr, 0, 0, 0, 0, 0)
""")
    assert set(seen.values()) <= DENIED, seen


KERNEL_DOORS = """
out['io_uring_setup'] = call('syscall', 425, 1, 0)
out['pidfd_getfd'] = call('syscall', 438, 999, 0, 0)
out['statmount'] = call('syscall', 457, 0, 0, 0, 0)
out['personality_no_aslr'] = call('personality', 0x0040000)
out['vsock'] = attempt(lambda: socket.socket(40, socket.SOCK_STREAM).close() or 'ok')
"""


def test_io_uring_vsock_and_other_kernel_doors(jail: Host, family: str) -> None:
    """Each call, made the same way outside the sandbox, reaches the kernel (the control): the filter stops it."""
    outside = json.loads(subprocess.run([sys.executable, "-c", PRELUDE + KERNEL_DOORS + "\nprint(json.dumps(out))"],
                                        capture_output=True, text=True, timeout=30).stdout)
    assert not set(outside.values()) & DENIED, outside  # EFAULT, EBADF, ok…: the kernel answered
    seen = probe(jail, family, KERNEL_DOORS)
    assert set(seen.values()) <= DENIED | {"EAFNOSUPPORT"}, seen
    assert seen["io_uring_setup"] in DENIED and seen["personality_no_aslr"] in DENIED


def test_loading_kernel_modules_and_rebooting(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
out['init_module'] = call('syscall', 175, 0, 0, 0)
out['kexec_load'] = call('syscall', 246, 0, 0, 0, 0)
out['reboot'] = call('syscall', 169, 0xfee1dead, 672274793, 0x4321fedc, 0)
out['iopl'] = call('syscall', 172, 3)
""")
    assert set(seen.values()) <= DENIED, seen


def test_creating_device_nodes(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
import stat
out['mem'] = attempt(lambda: os.mknod('/tmp/mem', stat.S_IFCHR | 0o600, os.makedev(1, 1)))
out['disk'] = attempt(lambda: os.mknod('/workspace/agent/sda', stat.S_IFBLK | 0o600, os.makedev(8, 0)))
out['open_mem'] = attempt(lambda: open('/tmp/mem', 'rb').read(16).hex())
out['devices'] = sorted(os.listdir('/dev'))
""")
    if jail.settings.runtime == "gvisor":
        # gVisor's own tmpfs lets a node be made, but it names a device of gVisor's kernel, which has none.
        assert seen["mem"] in DENIED | {None} and seen["open_mem"] in DENIED | {"ENXIO", "ENODEV", "ENOENT"}
        assert seen["disk"] in DENIED
    else:
        assert {seen["mem"], seen["disk"]} <= DENIED
    assert not any(d.startswith(("sd", "nvme", "vd", "mem", "kmem", "port")) for d in seen["devices"]), seen["devices"]


def test_escalating_with_setuid_and_capabilities(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
out['nnp'] = libc.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS (gVisor's status file has no NoNewPrivs line)
out['caps'] = {k: v.strip() for k, v in status.items() if k.startswith('Cap')}
out['setuid'] = attempt(lambda: os.setuid(0))
r = subprocess.run(['mount', '-t', 'tmpfs', 'none', '/tmp'], capture_output=True, text=True)
out['setuid_mount'] = r.returncode
out['euid'] = os.geteuid()
""")
    assert seen["nnp"] == 1
    assert {"CapEff", "CapPrm", "CapBnd"} <= set(seen["caps"]) and set(seen["caps"].values()) == {"0000000000000000"}
    assert seen["setuid"] in ("EPERM", "EINVAL") and seen["setuid_mount"] != 0 and seen["euid"] != 0


def test_pushing_keystrokes_into_a_terminal(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
fd = os.open('/dev/null', os.O_RDWR)
out['tiocsti'] = call('ioctl', fd, 0x5412, ctypes.c_char_p(b'x'))
""")
    assert seen["tiocsti"] in DENIED | {"ENOTTY"}


# --- Resource exhaustion: each contained by its limit, the host unaffected ------------------------

def test_fork_bomb(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
children, error = [], None
try:
    for _ in range(1000):
        pid = os.fork()
        if pid == 0:
            time.sleep(5); os._exit(0)
        children.append(pid)
except OSError as e:
    error = errno.errorcode.get(e.errno)
for pid in children: os.kill(pid, signal.SIGKILL)
out['started'] = len(children); out['error'] = error
""")
    assert seen["error"] == "EAGAIN" and seen["started"] < 64
    assert subprocess.run(["true"]).returncode == 0  # the host still forks


MEMORY_BOMB = """
r = subprocess.run([sys.executable, '-c', 'b = []\\nwhile True: b.append(bytearray(16 << 20))'],
                   capture_output=True, text=True)
out['code'] = r.returncode; out['err'] = r.stderr[-200:]
"""


def test_memory_bomb(jail: Host, family: str) -> None:
    if jail.settings.runtime == "gvisor":
        # gVisor's kernel has no OOM killer of its own and shares the container's cgroup with the agent:
        # the cgroup's limit takes the whole sandbox down (podman: 128 + SIGKILL), never the host.
        ended = run_code(jail, family, PRELUDE + MEMORY_BOMB + "\nprint(json.dumps(out))", timeout=60)
        assert ended.returncode == 128 + signal.SIGKILL and '"code"' not in ended.stdout, ended
        assert subprocess.run(["true"]).returncode == 0
        return
    seen = probe(jail, family, MEMORY_BOMB)
    assert seen["code"] == -9 or "MemoryError" in seen["err"], seen


def test_disk_fill(jail: Host, family: str) -> None:
    seen = probe(jail, family, """
def fill(path):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    written = 0
    try:
        with open(path, 'wb') as f:
            while written < (64 << 20):
                f.write(b'x' * (1 << 20)); f.flush(); written += 1 << 20
    except OSError as e:
        return [errno.errorcode.get(e.errno), written >> 20]
    finally:
        try: os.unlink(path)
        except OSError: pass
    return ['ok', written >> 20]
out['tmp'] = fill('/tmp/fill'); out['agent'] = fill('/workspace/agent/fill')
""")
    for where in ("tmp", "agent"):
        assert seen[where][0] in ("EFBIG", "ENOSPC") and seen[where][1] <= 8, seen


def test_runaway_cpu(jail: Host, family: str, request: pytest.FixtureRequest) -> None:
    if jail.settings.runtime == "gvisor":
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "gVisor (runsc 20221219) arms RLIMIT_CPU only when a process calls setrlimit itself, not for a "
            "limit it inherits: a runaway child is held by the cgroup's CPU quota and the turn's wall-time "
            "limit instead (docs/security.md)")))
    wait = 8 if jail.settings.runtime == "gvisor" else 30  # the limit kills within 2 s where it holds
    seen = probe(jail, family, f"""
start = time.time()
r = subprocess.run([sys.executable, '-c', 'while True: pass'], timeout={wait})
out['code'] = r.returncode; out['seconds'] = time.time() - start
""")
    # Killed by a signal of the CPU limit: run()'s own 30 s timeout would have raised instead.
    assert seen["code"] in (-signal.SIGXCPU, -signal.SIGKILL), seen


# --- Files handed to the host --------------------------------------------------------------------

@pytest.mark.parametrize("trick", ["symlink-to-host-file", "symlinked-folder", "dotdot", "fifo"])
def test_send_file_tricks_do_not_make_the_host_read_its_own_files(jail: Host, family: str, trick: str) -> None:
    end = jail.sessions.end(family)
    probe(jail, family, """
box = '/workspace/outbox'
os.makedirs(box + '/f-link', exist_ok=True)
os.symlink('/etc/shadow', box + '/f-link/shadow')
os.symlink('/etc', box + '/f-dir')
os.makedirs(box + '/f-fifo', exist_ok=True)
os.mkfifo(box + '/f-fifo/pipe')
""")
    reference = {"symlink-to-host-file": "f-link/shadow", "symlinked-folder": "f-dir/shadow",
                 "dotdot": "f-link/../../../etc/shadow", "fifo": "f-fifo/pipe"}[trick]
    with pytest.raises(DestinationRefused):
        read_outbox_file(end, reference)


# --- The owner's folders (mount allow-list) ------------------------------------------------------

def _grant(jail: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    shared = tmp_path / "owner" / "shared"
    shared.mkdir(parents=True)
    (tmp_path / "owner" / ".ssh").mkdir()
    (tmp_path / "owner-secret.txt").write_text("host-only secret")
    (shared / "link").symlink_to(tmp_path / "owner-secret.txt")
    (shared / "notes.txt").write_text("shared notes")
    jail.settings.mount_allowlist.parent.mkdir(parents=True, exist_ok=True)
    jail.settings.mount_allowlist.write_text(json.dumps({"allowed": [str(shared)]}))
    grant_mount(jail.conn, Allowlist.load(jail.settings.mount_allowlist), "family", str(shared))
    return shared


def test_an_extra_folder_is_read_only_and_its_links_stay_inside(jail: Host, family: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _grant(jail, tmp_path, monkeypatch)
    seen = probe(jail, family, """
out['read'] = attempt(lambda: open('/workspace/extra/shared/notes.txt').read())
out['link'] = attempt(lambda: open('/workspace/extra/shared/link').read())
out['write'] = attempt(lambda: open('/workspace/extra/shared/notes.txt', 'a').write('x'))
out['create'] = attempt(lambda: open('/workspace/extra/shared/new.txt', 'w').write('x'))
""")
    assert seen["read"] == "shared notes" and seen["link"] == "ENOENT"
    assert seen["write"] in ("EROFS", "EACCES") and seen["create"] in ("EROFS", "EACCES")


def test_a_granted_folder_swapped_for_a_link_to_secrets_is_not_mounted(jail: Host, family: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    shared = _grant(jail, tmp_path, monkeypatch)
    for child in shared.iterdir():
        child.unlink()
    shared.rmdir()
    shared.symlink_to(tmp_path / "owner" / ".ssh")  # checked again at every start, links resolved
    seen = probe(jail, family, "out['extra'] = os.path.exists('/workspace/extra/shared')")
    assert seen["extra"] is False


# --- The one way out: the proxy socket -----------------------------------------------------------

PROXY_PROBE = """
def ask(request):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect('/run/nanoclaw/proxy.sock')
    s.sendall(request.encode())
    data = b''
    while b'\\r\\n\\r\\n' not in data:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    s.close()
    return data.split(b'\\r\\n')[0].decode()
"""


@pytest.mark.parametrize("target", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]", "localhost",
                                    # IPv6 forms that carry 127.0.0.1: compatible, mapped, NAT64, 6to4
                                    "[::127.0.0.1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]"])
async def test_the_proxy_refuses_the_hosts_own_and_private_addresses(jail: Host, family: str, target: str) -> None:
    import asyncio

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    await jail.supervisor.prepare(family)  # the session's proxy socket, as before a runner starts
    try:
        seen = await asyncio.to_thread(probe, jail, family, PROXY_PROBE + f"""
auth = 'Proxy-Authorization: Bearer ' + os.environ['NANOCLAW_PROXY_TOKEN'] + '\\r\\n'
out['connect'] = ask('CONNECT {target}:{port} HTTP/1.1\\r\\nHost: {target}:{port}\\r\\n' + auth + '\\r\\n')
out['get'] = ask('GET http://{target}:{port}/secret HTTP/1.1\\r\\nHost: {target}:{port}\\r\\n' + auth + '\\r\\n')
""")
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert seen["connect"].startswith("HTTP/1.1 403") and seen["get"].startswith("HTTP/1.1 403"), seen


async def test_the_proxy_wants_the_sessions_own_token(jail: Host, family: str) -> None:
    import asyncio

    other = session_for(jail)
    await jail.supervisor.prepare(other)
    await jail.supervisor.prepare(family)
    stolen = jail.proxy.token(other)  # another session's token is worth nothing here
    seen = await asyncio.to_thread(probe, jail, family, PROXY_PROBE + f"""
out['none'] = ask('CONNECT example.com:443 HTTP/1.1\\r\\nHost: example.com:443\\r\\n\\r\\n')
out['stolen'] = ask('CONNECT example.com:443 HTTP/1.1\\r\\nHost: example.com:443\\r\\nProxy-Authorization: Bearer {stolen}\\r\\n\\r\\n')
out['gateway'] = ask('POST /v1/messages HTTP/1.1\\r\\nHost: x\\r\\nx-api-key: {stolen}\\r\\ncontent-length: 2\\r\\n\\r\\n{{}}')
""")
    assert seen["none"].startswith("HTTP/1.1 407") and seen["stolen"].startswith("HTTP/1.1 407"), seen
    assert seen["gateway"].startswith("HTTP/1.1 401"), seen
