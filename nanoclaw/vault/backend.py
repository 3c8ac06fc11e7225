"""Where the vault's secrets live: the contract a secret backend fulfils, and the choice between them.

`NANOCLAW_VAULT_BACKEND=builtin` (the default) keeps them in NanoClaw's own
encrypted store (`store.SecretStore`); `onecli` hands them to OneCLI
(`onecli.OneCliVault`). `nanoclaw secrets …` and the credential desk only
speak this protocol; the egress proxy is told which one it has.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from nanoclaw.config import Settings
from nanoclaw.vault.store import SecretRule, SecretStore


class SecretBackend(Protocol):
    name: ClassVar[str]  # "builtin" | "onecli", for messages
    scoped: ClassVar[bool]  # whether a rule's agent groups are honoured (OneCLI has none: its secrets serve every group)

    def rules(self) -> list[SecretRule]:
        """Every stored secret's rule: names, hosts, headers; never a value."""

    def add(self, rule: SecretRule, value: str) -> SecretRule:
        """Store a new secret; VaultError if the name exists or the rule cannot be honoured."""

    def rotate(self, name: str, value: str) -> SecretRule:
        """Replace the value of secret `name`; its rule stays."""

    def remove(self, name: str) -> None:
        """Delete secret `name`."""

    def wants(self, host: str, group: str) -> bool:
        """Whether a secret would be added to requests from `group` to `host`."""


def open_backend(settings: Settings, *, for_host: bool = False) -> SecretBackend:
    """The backend the settings choose; ConfigError (with the fix) when it cannot work, never a silent fallback.

    `for_host`: also check what only the running host needs (OneCLI's CA certificate for the sandboxes).
    """
    if settings.vault_backend == "onecli":
        from nanoclaw.vault.onecli import OneCliVault

        return OneCliVault.open(settings.extra, for_host=for_host)
    return SecretStore.open(settings.config_dir)
