"""A small blocking client for the host's local API, used by the CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Iterator

from nanoclaw.errors import HostNotRunning


class LocalClient:
    def __init__(self, path: Path, timeout: float | None = 10.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self.sock.close()
            raise HostNotRunning(
                f"no NanoClaw host is running on {path.parent} (start one with: nanoclaw run)"
            ) from exc
        except PermissionError as exc:
            self.sock.close()
            raise HostNotRunning(f"cannot open {path}: permission denied (is the host run by another user?)") from exc
        self.file = self.sock.makefile("rb")
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def write(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise HostNotRunning("the host closed the connection")
        return json.loads(line)

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its reply; events arriving meanwhile are kept for `events()`."""
        self.write({"op": op, **fields})
        while True:
            reply = self.read()
            if "event" not in reply:
                return reply
            self._events.append(reply)

    def events(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self._events.pop(0) if self._events else self.read()
