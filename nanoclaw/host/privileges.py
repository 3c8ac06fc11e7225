"""What a root host keeps of root: only the capabilities its work needs (docs/security.md, "What runs as root").

A host started as root needs root for a few things only: running sandboxes as
other uids (setuid, bwrap's namespaces and mounts, cgroups, rootful podman),
handing folders to those uids, and loop-mounting the disk-quota images. It
never loads kernel modules, sets the clock, reads the kernel log or changes
audit and MAC policy, so those capabilities are dropped from the bounding,
permitted and effective sets when `nanoclaw run` starts, before any thread
exists: neither the host nor anything it starts can get them back.
"""

from __future__ import annotations

import ctypes
import os

from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.host.privileges")

# linux/capability.h numbers of the capabilities a NanoClaw host never uses.
NEVER_NEEDED = {
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BROADCAST": 11, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17, "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_BOOT": 22, "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26, "CAP_LEASE": 28, "CAP_AUDIT_CONTROL": 30, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_CHECKPOINT_RESTORE": 40,
}
_PR_CAPBSET_DROP = 24
_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_unneeded_capabilities() -> list[str]:
    """On a root host: drop NEVER_NEEDED for this process and its children; returns what was dropped."""
    if os.geteuid() != 0:
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    dropped = []
    for name, number in NEVER_NEEDED.items():
        if libc.prctl(_PR_CAPBSET_DROP, number, 0, 0, 0) == 0:
            dropped.append(name)
    header = _Header(_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) == 0:
        for number in NEVER_NEEDED.values():
            word, bit = divmod(number, 32)
            mask = ~(1 << bit) & 0xFFFFFFFF
            data[word].effective &= mask
            data[word].permitted &= mask
            data[word].inheritable &= mask
        if libc.capset(ctypes.byref(header), data) != 0:
            log.warning("privileges.capset_failed", errno=ctypes.get_errno())
    log.info("privileges.dropped", count=len(dropped))
    return dropped
