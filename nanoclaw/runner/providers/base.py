"""The contract a model provider implements. Read this file to write one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Awaitable, Callable, ClassVar

from nanoclaw.protocol.messages import InboundMessage
from nanoclaw.protocol.runner_env import RunnerConfig


@dataclass(frozen=True)
class Turn:
    """One batch of pending messages: context rows first, then the triggering ones."""

    messages: list[InboundMessage]
    prompt: str  # the messages formatted as XML (protocol.formatting)


@dataclass
class ProviderContext:
    """What the runner hands a provider: settings, persistent state and a way to speak mid-turn."""

    config: RunnerConfig
    get_state: Callable[[str], str | None]
    set_state: Callable[[str, str | None], None]
    send_message: Callable[[str, str | None], Awaitable[None]]  # (text, destination name or None = reply)


class Provider(ABC):
    name: ClassVar[str]

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @abstractmethod
    async def run_turn(self, turn: Turn) -> str | None:
        """Answer one turn; the returned text (after <internal> stripping) goes to the session's route."""

    async def close(self) -> None:
        """Release whatever the provider holds (clients, subprocesses)."""
