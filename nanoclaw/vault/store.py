"""The vault's secrets: encrypted at rest, each with the rule that says where it is injected.

Stored in `~/.config/nanoclaw/vault.json` (outside every mount), each value
encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under `vault.key`, a 0600
file next to it. The file holds no value in clear text; listing never
decrypts. A value is decrypted only at the moment it is injected.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from nanoclaw.config import private_dir
from nanoclaw.errors import NanoClawError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

STORE_FILE = "vault.json"
KEY_FILE = "vault.key"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")


class VaultError(NanoClawError):
    """The vault cannot do what was asked (bad rule, unknown name, damaged file)."""


@dataclass(frozen=True)
class SecretRule:
    """Where a secret goes: requests to `host` (a glob such as `*.example.com`), in header `header`."""

    name: str
    host: str
    header: str = "Authorization"
    format: str = "Bearer {value}"
    path: str = "*"  # glob over the request path
    method: str = "*"  # e.g. GET, or * for any
    groups: tuple[str, ...] = ()  # agent groups that may use it; empty = all
    created_at: float = 0.0
    rotated_at: float = 0.0

    def matches(self, host: str, method: str, path: str, group: str) -> bool:
        return (fnmatch.fnmatchcase(host.lower(), self.host.lower())
                and fnmatch.fnmatchcase(path or "/", self.path)
                and (self.method == "*" or self.method.upper() == method.upper())
                and (not self.groups or group in self.groups))


@dataclass
class _Entry:
    rule: SecretRule
    token: str  # the Fernet token of the value


@dataclass
class SecretStore:
    """The builtin backend (nanoclaw.vault.backend.SecretBackend): secrets in vault.json, injected by the proxy."""

    name: ClassVar[str] = "builtin"
    scoped: ClassVar[bool] = True  # a rule's groups are honoured
    folder: Path
    _entries: dict[str, _Entry] = field(default_factory=dict, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, folder: Path) -> SecretStore:
        store = cls(folder)
        store._load()
        return store

    # -- reading -------------------------------------------------------------

    def rules(self) -> list[SecretRule]:
        return [e.rule for e in sorted(self._entries.values(), key=lambda e: e.rule.name)]

    def for_request(self, host: str, method: str, path: str, group: str) -> list[tuple[str, str]]:
        """(header, value) pairs to inject into this request; values decrypted here, nowhere else."""
        self.refresh()
        return [(e.rule.header, e.rule.format.replace("{value}", self._decrypt(e)))
                for e in self._entries.values() if e.rule.matches(host, method, path, group)]

    def wants(self, host: str, group: str) -> bool:
        """Whether any secret may be injected for `host` (then HTTPS to it is intercepted)."""
        self.refresh()
        return any(fnmatch.fnmatchcase(host.lower(), e.rule.host.lower()) and (not e.rule.groups or group in e.rule.groups)
                   for e in self._entries.values())

    def values(self) -> list[str]:
        """Every value in clear, for redaction (never for display)."""
        return [self._decrypt(e) for e in self._entries.values()]

    # -- changing ------------------------------------------------------------

    def add(self, rule: SecretRule, value: str) -> SecretRule:
        validate(rule, value)
        if rule.name in self._entries:
            raise VaultError(f"a secret named {rule.name!r} exists; use `nanoclaw secrets rotate {rule.name}`")
        now = time.time()
        rule = SecretRule(**{**asdict(rule), "created_at": now, "rotated_at": now, "groups": tuple(rule.groups)})
        self._entries[rule.name] = _Entry(rule, self._fernet().encrypt(value.encode()).decode())
        self._save()
        return rule

    def rotate(self, name: str, value: str) -> SecretRule:
        entry = self._get(name)
        validate(entry.rule, value)
        rule = SecretRule(**{**asdict(entry.rule), "rotated_at": time.time(), "groups": tuple(entry.rule.groups)})
        self._entries[name] = _Entry(rule, self._fernet().encrypt(value.encode()).decode())
        self._save()
        return rule

    def remove(self, name: str) -> None:
        self._get(name)
        del self._entries[name]
        self._save()

    # -- the files -----------------------------------------------------------

    def _get(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise VaultError(f"no secret named {name!r} (stored: {known})")
        return entry

    def _fernet(self) -> Fernet:
        from cryptography.fernet import Fernet  # loaded when a secret is stored or injected, not with the host

        path = self.folder / KEY_FILE
        if not path.exists():
            private_dir(self.folder)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        try:
            return Fernet(path.read_bytes().strip())
        except (ValueError, OSError) as exc:
            raise VaultError(f"the vault key {path} is unreadable or damaged: {exc}") from exc

    def _decrypt(self, entry: _Entry) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet().decrypt(entry.token.encode()).decode()
        except InvalidToken as exc:
            raise VaultError(f"secret {entry.rule.name!r} does not decrypt: the vault file was changed or "
                             f"{KEY_FILE} is not the key it was made with") from exc

    def refresh(self) -> None:
        """Reload when `nanoclaw secrets` changed the file since (a running host sees new secrets at once)."""
        try:
            st = (self.folder / STORE_FILE).stat()
        except OSError:
            self._entries, self._stamp = {}, None
            return
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            self._entries = {}
            self._load()

    def _load(self) -> None:
        path = self.folder / STORE_FILE
        if not path.exists():
            return
        st = path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size)
        try:
            data = json.loads(path.read_text())
            for item in data["secrets"]:
                rule = SecretRule(**{**item["rule"], "groups": tuple(item["rule"].get("groups", ()))})
                self._entries[rule.name] = _Entry(rule, str(item["token"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VaultError(f"{path} is damaged ({type(exc).__name__}: {exc}); restore it from a backup "
                             "or move it aside to start an empty vault") from exc

    def _save(self) -> None:
        private_dir(self.folder)
        path = self.folder / STORE_FILE
        tmp = path.with_suffix(".tmp")
        data = {"version": 1, "secrets": [{"rule": asdict(e.rule), "token": e.token} for e in self._entries.values()]}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        st = path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size)


def validate(rule: SecretRule, value: str) -> None:
    """Raise VaultError unless `rule` and `value` can be stored."""
    if not NAME.fullmatch(rule.name):
        raise VaultError(f"secret name {rule.name!r}: letters, digits, '.', '-' or '_' (at most 64)")
    if not rule.host or any(c in rule.host for c in "/ :@"):
        raise VaultError(f"host pattern {rule.host!r}: a host name or glob such as *.example.com (no scheme or path)")
    if not HEADER.fullmatch(rule.header):
        raise VaultError(f"header {rule.header!r} is not a header name")
    if "{value}" not in rule.format:
        raise VaultError("the format must contain {value}, e.g. 'Bearer {value}'")
    if not value or any(c in value for c in "\r\n\0"):
        raise VaultError("the value is empty or contains a line break")
    if not rule.path.startswith(("/", "*")):
        raise VaultError(f"path pattern {rule.path!r} must start with / or *")
