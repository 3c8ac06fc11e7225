"""Doctor's line per chat channel: how the running host's connection is doing, else a check of its settings.

While the host runs, its own report counts (`connected`, `retrying (…)`, `failed (…)`); a channel that cannot
connect fails the doctor. While it is stopped, each configured channel's token is checked against its
platform (`Channel.identify`, the same check as `nanoclaw setup`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nanoclaw import registry
from nanoclaw.cli.doctor import Check
from nanoclaw.config import Settings
from nanoclaw.errors import ChannelUnavailable, ConfigError

LOCAL = ("terminal", "web")  # on this machine: nothing to connect to
IDENTIFY_TIMEOUT = 20.0


def from_host(channel_health: dict[str, dict[str, Any]]) -> list[Check]:
    checks = []
    for name, health in sorted(channel_health.items()):
        if name in LOCAL:
            continue
        state = health.get("state")
        text = str(health.get("text") or state)
        if state == "connected":
            checks.append(Check(f"channel {name}", True, text))
        elif state == "connecting":
            checks.append(Check(f"channel {name}", True, "connecting", "wait a moment, then run doctor again",
                                warn=True))
        elif state == "retrying":
            checks.append(Check(f"channel {name}", False, text, "check this machine's network and the platform's "
                                                                 "status; the host keeps trying on its own"))
        else:
            checks.append(Check(f"channel {name}", False, text,
                                str(health.get("fix") or "fix the channel's settings, then restart the host")))
    return checks


def by_identify(settings: Settings) -> list[Check]:
    names = [n for n in registry.names(registry.CHANNELS) if n not in LOCAL and settings.channel_enabled(n)]
    return [_identify(settings, name) for name in names]


def _identify(settings: Settings, name: str) -> Check:
    try:
        cls = registry.load(registry.CHANNELS, name)
    except ImportError as exc:
        return Check(f"channel {name}", False, f"its client library is not installed (missing {exc.name or exc})",
                     "pip install 'nanoclaw[channels]' (./scripts/run does)")
    except LookupError as exc:
        return Check(f"channel {name}", False, str(exc), f"pip install nanoclaw-{name}")
    try:
        who = asyncio.run(asyncio.wait_for(cls.identify(settings), IDENTIFY_TIMEOUT))
    except ConfigError as exc:
        return Check(f"channel {name}", False, exc.reason, exc.fix)
    except (ChannelUnavailable, OSError, asyncio.TimeoutError) as exc:
        return Check(f"channel {name}", False, f"cannot reach the platform: {exc or type(exc).__name__}",
                     "check this machine's network, or the server's address in the channel's settings")
    except Exception as exc:  # noqa: BLE001 - a plugin's check must not break the doctor
        return Check(f"channel {name}", False, f"{type(exc).__name__}: {exc}", f"see docs/channels/{name}.md")
    if not who:
        return Check(f"channel {name}", True, "configured (checked when the host runs)")
    return Check(f"channel {name}", True, f"settings accepted: the bot is {who}")
