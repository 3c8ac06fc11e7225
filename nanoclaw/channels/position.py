"""Where a channel got to on its platform (a sync token, the newest message seen per chat), kept in
NANOCLAW_HOME/state so that after a restart it picks up there and what came meanwhile is not lost.

The host ignores a message id it already has, so a position that lags a little only costs a repeat.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.channels")


def read_position(path: Path, channel: str) -> Any | None:
    """The saved JSON, or None when there is none yet or it is damaged (then a warning says so)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("channel.position_unreadable", channel=channel, path=str(path), error=type(exc).__name__)
        return None


def write_position(path: Path, data: Any, channel: str) -> bool:
    """Replace the file whole (a crash never leaves half of it); False when it could not be written."""
    partial = path.with_suffix(".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(data))
        os.replace(partial, path)
    except OSError as exc:
        log.warning("channel.position_not_saved", channel=channel, error=exc.strerror or str(exc))
        return False
    return True
