"""The contract a model provider implements. Read this file to write one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar

from nanoclaw.protocol.messages import InboundMessage, OutboundMessage
from nanoclaw.protocol.runner_env import RunnerConfig
from nanoclaw.runner.streaming import AnswerStream
from nanoclaw.runner.tools import Tool, ToolContext


@dataclass(frozen=True)
class Turn:
    """One batch of pending messages: context rows first, then the triggering ones."""

    messages: list[InboundMessage]
    prompt: str  # the messages formatted as XML (protocol.formatting), after what was already sent
    # A turn interrupted by a crash runs again: what its earlier runs sent (the person has it; the prompt
    # says so too). A provider that can tell does not send these again.
    already_sent: tuple[OutboundMessage, ...] = ()


@dataclass
class ProviderContext:
    """What the runner hands a provider: settings, persistent state, the NanoClaw tools."""

    config: RunnerConfig
    get_state: Callable[[str], str | None]
    set_state: Callable[[str, str | None], None]
    tools: list[Tool]
    tool_context: ToolContext
    # The answer as it is written: call `answer.update(text so far)` as text arrives (chats show it live).
    answer: AnswerStream = field(default_factory=lambda: AnswerStream(lambda *_: None, lambda: None))


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

    async def interrupt(self) -> bool:
        """The person asked to stop the running turn. Return True when run_turn will now return soon by
        itself (e.g. the SDK's interrupt); False (the default) has the runner cancel run_turn."""
        return False

    async def command(self, name: str) -> str:
        """A host command for the provider: 'clear' starts a fresh conversation, 'compact' compacts it."""
        return f"/{name} is not supported by the {self.name} provider."

    async def close(self) -> None:
        """Release whatever the provider holds (clients, subprocesses)."""
