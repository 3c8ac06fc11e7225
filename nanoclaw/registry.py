"""Find channels, providers and sandbox runtimes through Python entry points (DESIGN §8).

Built-ins are declared in pyproject.toml exactly as a third-party package
would declare its own, so `pip install nanoclaw-foo` adds a channel.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

CHANNELS = "nanoclaw.channels"
PROVIDERS = "nanoclaw.providers"
RUNTIMES = "nanoclaw.runtimes"


def names(group: str) -> list[str]:
    """Registered names, without importing anything."""
    return sorted({ep.name for ep in entry_points(group=group)})


def load(group: str, name: str) -> Any:
    """Import and return the object registered as `name` (a class)."""
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    known = ", ".join(names(group)) or "none"
    raise LookupError(f"no {group.rsplit('.', 1)[-1][:-1]} named {name!r} (installed: {known})")
