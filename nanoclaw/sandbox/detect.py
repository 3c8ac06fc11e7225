"""Which sandbox runtime to use when NANOCLAW_RUNTIME does not say: the first that works here."""

from __future__ import annotations

import sys

from nanoclaw import registry
from nanoclaw.sandbox.base import RuntimeCheck

LINUX_ORDER = ("bwrap", "podman", "docker", "gvisor")
MACOS_ORDER = ("apple", "podman", "docker")


def preference() -> tuple[str, ...]:
    return MACOS_ORDER if sys.platform == "darwin" else LINUX_ORDER


def check(name: str) -> RuntimeCheck:
    try:
        cls = registry.load(registry.RUNTIMES, name)
    except LookupError as exc:
        return RuntimeCheck(False, str(exc), "set NANOCLAW_RUNTIME to an installed runtime")
    return cls.check()


def detect() -> str:
    """The first usable runtime in this platform's order, else the first (whose check says what to fix)."""
    order = preference()
    for name in order:
        if check(name).ok:
            return name
    return order[0]
