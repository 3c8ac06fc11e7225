"""The contract a model provider implements. Read this file to write one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar

from nanoclaw.protocol.messages import InboundMessage
from nanoclaw.protocol.runner_env import RunnerConfig
from nanoclaw.runner.tools import Tool, ToolContext


@dataclass(frozen=True)
class Turn:
    """One batch of pending messages: context rows first, then the triggering ones."""

    messages: list[InboundMessage]
    prompt: str  # the messages formatted as XML (protocol.formatting)


@dataclass
class ProviderContext:
    """What the runner hands a provider: settings, persistent state, the NanoClaw tools."""

    config: RunnerConfig
    get_state: Callable[[str], str | None]
    set_state: Callable[[str, str | None], None]
    tools: list[Tool]
    tool_context: ToolContext


class ProviderError(Exception):
    """The model could not answer; the text is shown to the person."""


class Provider(ABC):
    name: ClassVar[str]
    # True when follow_up() can feed messages into a turn that is still running.
    supports_follow_up: ClassVar[bool] = False

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    async def prepare(self) -> None:
        """In a pooled sandbox, before any session is known: the work that does not depend on one.

        The session's state (get_state) and tools are not available yet; start() follows at adoption.
        """

    async def start(self) -> None:
        """Prepare before the first turn (connect a client, warm caches); runs while messages are read."""

    @abstractmethod
    async def run_turn(self, turn: Turn) -> str | None:
        """Answer one turn; the returned text (after <internal> stripping) goes to the session's route."""

    async def follow_up(self, turn: Turn) -> None:
        """Messages that arrived during run_turn (only called when supports_follow_up)."""

    async def command(self, name: str) -> str:
        """A host command for the provider: 'clear' starts a fresh conversation, 'compact' compacts it."""
        return f"/{name} is not supported by the {self.name} provider."

    async def close(self) -> None:
        """Release whatever the provider holds (clients, subprocesses)."""
