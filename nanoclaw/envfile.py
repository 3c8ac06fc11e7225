"""`NAME=value` files that `nanoclaw setup` writes (config.env, credentials.env).

They are read by python-dotenv (nanoclaw.config) without ${VAR} interpolation,
so what is written here reads back the same. Updates keep the lines a person added, and the file is
always replaced whole with mode 0600, so a half-written key never exists.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Mapping

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from nanoclaw.config import private_dir
from nanoclaw.errors import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./~-]*")


def read(path: Path) -> dict[str, str]:
    """The file's variables ({} when it does not exist)."""
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path, interpolate=False).items() if v is not None}


def problems(path: Path) -> list[str]:
    """Lines python-dotenv cannot parse (it skips them with only a log warning), as 'line N: text'."""
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    return [
        f"line {b.original.line}: {b.original.string.strip()[:60]}"
        for b in parse_stream(io.StringIO(text)) if b.error
    ]


def format_line(name: str, value: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a variable name (letters, digits and _, not starting with a digit)")
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError(f"the value of {name} must be one line")
    if _PLAIN.fullmatch(value):
        return f"{name}={value}"
    # Single quotes: python-dotenv only unescapes \\ and \' inside them.
    return f"{name}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def update(path: Path, values: Mapping[str, str | None], header: str = "") -> None:
    """Set (or, with None, remove) variables in `path`, keeping every other line; mode 0600.

    `header` (comment lines) starts a new file; an existing file keeps its own.
    """
    lines = path.read_text().splitlines() if path.is_file() else [
        f"# {line}".rstrip() for line in header.splitlines()
    ]
    pending = dict(values)
    out: list[str] = []
    for line in lines:
        match = _ASSIGNMENT.match(line)
        if match and match.group(1) in values:
            value = pending.pop(match.group(1), None)
            if value is not None:
                out.append(format_line(match.group(1), value))
            continue  # a repeated assignment of the same name is dropped
        out.append(line)
    out.extend(format_line(k, v) for k, v in pending.items() if v is not None)
    write_private(path, "\n".join(out) + "\n")


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a 0600 file; its folder is created 0700."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
