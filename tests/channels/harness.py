"""What the shared channel contract suite needs from each platform's fake server.

A `Platform` runs a fake server on 127.0.0.1 that the real client library of
the channel talks to (through its base-URL setting), records what the bot did
there, and lets a test act as a person on the platform (write, send a file,
press a button) or as the platform misbehaving (malformed or unsigned payloads,
dropped connections, outages).

`RecordingHost` is the host end of a channel for contract tests: it records
what the channel hands the host, and serves webhooks and pages on the host's
real `WebServer`. End-to-end tests use a real `Host` instead.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from nanoclaw.channels.base import Channel, InboundEvent, IngestResult, LocalHandler, WebhookHandler
from nanoclaw.config import Settings
from nanoclaw.host.web import WebServer, web_token


@dataclass
class PlatformMessage:
    """A message the bot put on the platform, as the fake server recorded it."""

    id: str
    chat: str
    text: str  # as sent, in the platform's own format
    thread: str | None = None
    buttons: tuple[str, ...] = ()  # labels of native buttons (empty when there are none)
    file_name: str | None = None
    file_data: bytes | None = None
    edits: list[str] = field(default_factory=list)  # texts it was edited to, in order
    reactions: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # the request as the server saw it


class Platform(ABC):
    """A fake platform server plus a person acting on it."""

    channel_type: ClassVar[str]  # the channel's registered name, e.g. "telegram"
    variant: ClassVar[str] = ""  # a second way the same channel runs (e.g. Slack's Events API): "slack-events"
    bot_name: ClassVar[str] = "Andy"  # the assistant's display name on the platform
    group_chat: ClassVar[str] = "group1"  # platform ids the tests use (adapt to the platform's id form)
    dm_chat: ClassVar[str] = "dm1"
    thread_root: ClassVar[str | None] = None  # a thread id valid in group_chat (threaded platforms)
    has_groups: ClassVar[bool] = True  # False: every chat is a DM (WhatsApp Cloud API); group_chat is a DM then
    has_dms: ClassVar[bool] = True  # False: no direct messages (GitHub)
    can_be_down: ClassVar[bool] = True  # False: the platform is the host itself (web chat): no outage to test
    # How a person's messages reach the channel: over a "connection" the channel holds (gateway, socket,
    # long poll, IMAP) or as a "webhook" the platform posts to the host (then only sends use a connection).
    inbound: ClassVar[str] = "connection"
    mention_markup: ClassVar[bool] = True  # False: a mention is plain text (nothing for the channel to read)
    other_bots: ClassVar[bool] = True  # False: no other bot can write in its chats (the web chat)
    webhook_base: str = ""  # set before the channel starts: http://127.0.0.1:PORT/hooks (push platforms post here)

    @abstractmethod
    async def start(self, tmp: Path) -> dict[str, str]:
        """Start the fake server; return the env vars (Settings.extra) that configure the channel to use it."""

    @abstractmethod
    async def stop(self) -> None: ...

    def channel_class(self) -> type[Channel]:
        from nanoclaw import registry

        return registry.load(registry.CHANNELS, self.channel_type)  # type: ignore[no-any-return]

    @abstractmethod
    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        """A person (or with from_bot, another bot) writes on the platform; returns the platform message id.

        mention=True: the way the platform marks a mention of the bot (an entity, <@U…>, …).
        """

    @abstractmethod
    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        """Everything the bot sent to `chat` (default: all chats) so far, oldest first."""

    async def wait_bot_messages(self, count: int, chat: str | None = None, timeout: float = 10.0) -> list[PlatformMessage]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got = await self.bot_messages(chat)
            if len(got) >= count:
                return got
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} bot messages in {chat or 'any chat'}, got {len(got)}: {got}")
            await asyncio.sleep(0.05)

    async def press(self, message: PlatformMessage, label: str, sender: str = "u1") -> None:
        """A person presses the native button `label` under `message` (only platforms with cards)."""
        raise NotImplementedError

    async def submit_modal(self, message: PlatformMessage, value: str | None, sender: str = "u1") -> None:
        """A person presses the card's credential button, and types `value` into the modal it opens
        (None: presses Refuse / closes it). Only platforms whose channel declares modals."""
        raise NotImplementedError

    async def reactions_on(self, message_id: str) -> list[str]:
        """Reactions the bot put on a person's message `message_id` (platforms with reactions)."""
        raise NotImplementedError

    async def typing_seen(self, chat: str) -> bool:
        """Whether the platform received a typing indicator for `chat`."""
        raise NotImplementedError

    @abstractmethod
    async def send_malformed(self) -> None:
        """The platform (or an attacker) delivers garbage: malformed JSON, wrong shapes, a bad signature."""

    @abstractmethod
    async def drop_connections(self) -> None:
        """The server closes every live connection (or answers the next poll with an error)."""

    async def set_down(self, down: bool) -> None:
        """While down, the server answers sends with 5xx (or refuses connections)."""
        raise NotImplementedError

    def bold(self, text: str) -> str:
        """How **text** looks in the platform's format (checks Markdown conversion)."""
        raise NotImplementedError


class RecordingHost:
    """The host end of a channel in contract tests: records events, answers and readiness."""

    def __init__(self, settings: Settings, accept: Callable[[InboundEvent], IngestResult] | None = None) -> None:
        self.settings = settings
        self.events: list[InboundEvent] = []
        self.answers: list[tuple[str, str, str]] = []
        self.ready: list[str] = []
        self.credentials: list[tuple[str, str | None]] = []  # (token, value) from channels' modals
        self.local_ops: dict[str, LocalHandler] = {}
        self.accept = accept or (lambda e: IngestResult(True, ("s1",), triggered=True))
        self._changed = asyncio.Event()
        self.web = WebServer(settings, web_token(settings))  # the token file in the home, as a real host's

    @property
    def web_url(self) -> str:
        return self.web.url

    def register_webhook(self, name: str, handler: WebhookHandler) -> str:
        return self.web.register_webhook(name, handler)

    def register_page(self, method: str, path: str, handler: WebhookHandler) -> None:
        self.web.add_page(method, path, handler)

    async def receive(self, event: InboundEvent) -> IngestResult:
        self.events.append(event)
        self._changed.set()
        return self.accept(event)

    async def answer(self, card_id: str, value: str, sender_id: str) -> str | None:
        self.answers.append((card_id, value, sender_id))
        self._changed.set()
        return None

    def channel_ready(self, channel_type: str) -> None:
        self.ready.append(channel_type)

    def submit_credential(self, token: str, value: str | None, *, sender_id: str) -> str:
        assert sender_id, "the channel passes who answered"
        self.credentials.append((token, value))
        self._changed.set()
        return "saved" if value else "rejected"

    def register_local_op(self, op: str, handler: LocalHandler) -> None:
        self.local_ops[op] = handler

    async def wait_events(self, count: int, timeout: float = 10.0) -> list[InboundEvent]:
        return await self._wait(lambda: len(self.events) >= count, timeout, lambda: f"{count} events, got {self.events}")

    async def wait_text(self, fragment: str, timeout: float = 10.0) -> InboundEvent:
        """The first event whose text holds `fragment` (other events may come in between)."""
        def found() -> InboundEvent | None:
            return next((e for e in self.events if fragment in e.text), None)

        await self._wait(lambda: found() is not None, timeout, lambda: f"an event with {fragment!r}, got {self.events}")
        event = found()
        assert event is not None
        return event

    async def wait_credentials(self, count: int, timeout: float = 10.0) -> list[tuple[str, str | None]]:
        await self._wait(lambda: len(self.credentials) >= count, timeout, lambda: f"{count} credentials")
        return list(self.credentials)

    async def wait_answers(self, count: int, timeout: float = 10.0) -> list[tuple[str, str, str]]:
        await self._wait(lambda: len(self.answers) >= count, timeout, lambda: f"{count} answers, got {self.answers}")
        return list(self.answers)

    async def _wait(self, done: Callable[[], bool], timeout: float, what: Callable[[], str]) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"expected {what()}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return list(self.events)
