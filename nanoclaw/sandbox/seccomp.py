"""The seccomp filter of the bwrap sandbox: the kernel interfaces an agent never needs.

Namespaces already hide the host; this closes the doors that kernel exploits
and namespace tricks go through. Denied calls fail with EPERM (clone3 with
ENOSYS, so the C library falls back to clone, whose flags can be checked).
OCI runtimes apply their own default profile, which denies these too.

Compared with Docker's default profile (an allow-list) for a container with no
capabilities, this deny-list blocks everything Docker blocks that the kernel
still implements, and more (ptrace, io_uring, name_to_handle_at, adjtimex);
docs/security.md lists each difference and why.
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
    "iopl", "ioperm", "syslog", "quotactl", "quotactl_fd", "nfsservctl", "lookup_dcookie", "vhangup",
    "open_by_handle_at", "name_to_handle_at", "sethostname", "setdomainname", "fanotify_init",
    # io_uring: its own path to most of the kernel, beside the filter's view of system calls.
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # Other processes' memory and descriptors (ptrace's relatives).
    "pidfd_getfd", "process_madvise",
    # NUMA memory placement (Docker denies them without CAP_SYS_NICE).
    "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind", "migrate_pages", "move_pages",
    # Obsolete or unimplemented; denied as Docker does.
    "_sysctl", "uselib", "ustat", "sysfs", "create_module", "get_kernel_syms", "query_module",
    # The mount API's newer calls (numbers below where libseccomp does not know them yet).
    "open_tree_attr", "listmount", "statmount",
)
# Same number on every architecture (new system calls since Linux 5.1 are numbered in common).
_NUMBERS = {"statmount": 457, "listmount": 458, "open_tree_attr": 467}
AF_VSOCK = 40  # not namespaced: in a VM it reaches the hypervisor, past --unshare-net
# personality() flags that weaken exploit mitigations (ASLR off, executable data).
PERSONALITY_FLAGS = (0x0040000, 0x0100000, 0x0200000, 0x0400000)
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
            if name in _NUMBERS and os.uname().machine in ("x86_64", "aarch64"):
                f.add_rule(deny, _NUMBERS[name])  # the kernel may have it though libseccomp does not know it
            # else: unknown to this architecture: nothing to deny
    f.add_rule(deny, "socket", sc.Arg(0, sc.EQ, AF_VSOCK))
    for flag in PERSONALITY_FLAGS:  # bit 31 clear: 0xffffffff (a query of the current one) stays allowed
        f.add_rule(deny, "personality", sc.Arg(0, sc.MASKED_EQ, flag | 0x80000000, flag))
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
    # socket(): one rule, every family but AF_VSOCK. The profile's own socket rules (about audit netlink,
    # which needs CAP_AUDIT_WRITE, dropped here) would allow vsock beside it: an allow rule wins.
    for rule in profile.get("syscalls", []):
        rule["names"] = [n for n in rule.get("names", []) if n != "socket"]
    profile["syscalls"] = [r for r in profile.get("syscalls", []) if r.get("names")]
    profile["syscalls"].append({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                                "args": [{"index": 0, "value": AF_VSOCK, "valueTwo": 0, "op": "SCMP_CMP_NE"}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile))
    return path
