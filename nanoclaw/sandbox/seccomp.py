"""The seccomp filter of the bwrap sandbox: the kernel interfaces an agent never needs.

Namespaces already hide the host; this closes the doors that kernel exploits
and namespace tricks go through. Denied calls fail with EPERM (clone3 with
ENOSYS, so the C library falls back to clone, whose flags can be checked).
OCI runtimes apply their own default profile, which denies these too.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from nanoclaw.errors import SandboxUnavailable

DENIED = (
    # Debugging and reading other processes.
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    # Mounts and the root filesystem.
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    # Namespaces: no new ones, no joining others.
    "unshare", "setns",
    # Kernel keyring, BPF, performance counters, userfaultfd: common exploit primitives.
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    # The machine itself.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "iopl", "ioperm", "syslog", "quotactl", "nfsservctl", "lookup_dcookie", "vhangup",
    "open_by_handle_at", "name_to_handle_at",
)
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NEW_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
TIOCSTI = 0x5412  # pushing keystrokes into a terminal outside


def write_filter(path: Path) -> Path:
    """Compile the filter to a BPF program file for `bwrap --seccomp FD`."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # pyseccomp loads libseccomp.so.2 at import
        raise SandboxUnavailable(
            f"seccomp is unavailable ({exc}); install libseccomp: sudo apt-get install libseccomp2"
        ) from exc
    deny = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):
            pass  # unknown to this libseccomp/architecture: nothing to deny
    for flag in CLONE_NEW_FLAGS:  # one rule per flag: a rule matches when all its conditions hold
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    f.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, TIOCSTI))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        f.export_bpf(out)
    os.replace(tmp, path)
    return path


OCI_DEFAULT_PROFILES = (Path("/usr/share/containers/seccomp.json"), Path("/etc/containers/seccomp.json"))


def write_oci_profile(path: Path) -> Path | None:
    """podman's default profile without DENIED (it allows some of them, leaving it to capabilities).

    None when no default profile file is found (docker embeds its own, which the
    runtime then keeps).
    """
    import json

    source = next((p for p in OCI_DEFAULT_PROFILES if p.is_file()), None)
    if source is None:
        return None
    profile = json.loads(source.read_text())
    denied = set(DENIED)
    for rule in profile.get("syscalls", []):
        if rule.get("action") == "SCMP_ACT_ALLOW":
            rule["names"] = [n for n in rule.get("names", []) if n not in denied]
    profile["syscalls"] = [r for r in profile.get("syscalls", []) if r.get("names")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile))
    return path
