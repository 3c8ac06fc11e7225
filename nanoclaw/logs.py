"""Structured logs: one event name plus key=value fields. Message bodies only at DEBUG."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any


class EventLogger:
    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            text = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
            self._logger.log(level, f"{event} {text}".rstrip())

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)


LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5


def setup(level: str = "INFO", file: Path | None = None) -> None:
    """Log to stderr, or to `file` rotated at 10 MB with 5 old files kept (the service's host.log)."""
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        handlers=[handler],
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    quiet_http_clients()


# Chat platform clients log request URLs (Telegram's hold the bot token) and payloads at INFO/DEBUG.
CHATTY_CLIENTS = ("telegram", "slack_sdk", "slack_bolt", "discord", "nio", "aioimaplib", "aiosmtplib", "aiohttp.access",
                  "gql")


def quiet_http_clients() -> None:
    """httpx/httpcore log request and response headers at DEBUG (with the vault's injected secrets):
    never below WARNING, whatever NanoClaw's own level. Our egress audit events say what happened."""
    for name in ("httpx", "httpcore", "h11", "hpack", *CHATTY_CLIENTS):
        logging.getLogger(name).setLevel(logging.WARNING)


def _fmt(value: Any) -> str:
    text = str(value)
    return repr(text) if (" " in text or not text) else text
