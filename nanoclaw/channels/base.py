"""The contract a channel adapter implements. Read this file to write one.

A channel turns platform events into `InboundEvent`s for the host
(`ChannelHost.receive`) and performs `OutgoingMessage`s the host hands it
(`Channel.send`). It declares what the platform can do in `Capabilities`.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, ClassVar, Protocol

from nanoclaw.config import Settings
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.channels")


@dataclass(frozen=True)
class Capabilities:
    threads: bool = False  # False: the host drops thread ids at ingest
    edits: bool = False
    reactions: bool = False
    cards: bool = False
    modals: bool = False
    typing: bool = False
    max_message_length: int | None = None
    files: bool = False
    formatting: str = ""  # rules for the agent's system prompt, e.g. "Telegram Markdown: *bold* _italic_"
    # Replies shown while they are written: one message the host sends at the first text and edits as it
    # grows, at most once per `stream_interval` seconds (the platform's rate limit). None: replies arrive whole.
    stream_interval: float | None = None
    live_partials: bool = False  # the channel shows a reply being written itself (show_partial), e.g. the web chat


@dataclass(frozen=True)
class FileAttachment:
    name: str
    data: bytes  # read by the host (never a path a runner could swap)
    mime_type: str | None = None


@dataclass(frozen=True)
class InboundEvent:
    channel_type: str
    platform_id: str  # the chat
    message_id: str  # unique within the chat; redelivery of the same id is ignored
    text: str
    sender_id: str
    sender_name: str | None = None
    thread_id: str | None = None
    is_dm: bool = False
    chat_name: str | None = None
    mentions_assistant: bool = False  # the platform itself marked a mention of the bot
    payload: dict[str, Any] = field(default_factory=dict)
    files: tuple[FileAttachment, ...] = ()  # downloaded by the channel; the host saves them in the session's inbox
    from_bot: bool = False  # written by a bot (ourselves included): never triggers unless the wiring allows bots


@dataclass(frozen=True)
class IngestResult:
    accepted: bool
    sessions: tuple[str, ...] = ()
    triggered: bool = False
    error: str | None = None  # for the sender when not accepted
    reply: str | None = None  # the host answered itself (a /command); also sent to the chat


@dataclass(frozen=True)
class OutgoingMessage:
    """What a channel sends. kind: chat | system (a notice from the host) | card | question | file.

    Cards and questions carry `title` and `buttons`; a question also its `card_id`, which the
    channel passes back to `ChannelHost.answer` when a button is pressed.
    """

    route: Route
    kind: str
    text: str | None
    id: str  # stable across retries of the same row
    payload: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    buttons: tuple[str, ...] = ()
    card_id: str | None = None
    file: FileAttachment | None = None


def render_text(message: OutgoingMessage) -> str:
    """Plain-text form of a card or question, for chats without buttons."""
    parts = [f"*{message.title}*"] if message.title else []
    if message.text:
        parts.append(message.text)
    if message.buttons:
        parts.append("\n".join(f"{i}) {label}" for i, label in enumerate(message.buttons, 1)))
    if message.kind == "question":
        parts.append("(reply with the number or your answer)" if message.buttons else "(reply with your answer)")
    return "\n".join(parts)


@dataclass(frozen=True)
class SendResult:
    platform_message_id: str | None = None


HEALTH_STATES = ("connecting", "connected", "retrying", "failed")


@dataclass(frozen=True)
class Health:
    """How a channel's connection to its platform is doing, for `nanoclaw status`, doctor and the dashboard.

    connecting: starting, not yet through to the platform · connected · retrying: a transient failure
    (network, outage), tried again at `next_try` · failed: a configuration error (token, login, certificate)
    that retrying alone will not cure; `fix` says what to change. `reason` never holds a secret.
    """

    state: str
    reason: str = ""
    fix: str = ""
    next_try: float | None = None  # time.time() of the next attempt (retrying)
    since: float = field(default_factory=time.time)

    @classmethod
    def connecting(cls) -> Health:
        return cls("connecting")

    @classmethod
    def connected(cls) -> Health:
        return cls("connected")

    @classmethod
    def retrying(cls, reason: str, delay: float) -> Health:
        return cls("retrying", reason, next_try=time.time() + delay)

    @classmethod
    def failed(cls, reason: str, fix: str = "") -> Health:
        return cls("failed", reason, fix)

    @property
    def ok(self) -> bool:
        return self.state == "connected"

    def describe(self) -> str:
        """One line: `connected`, `retrying (reason, next try in 4 s)`, `failed (reason)`; the fix is apart."""
        if self.state == "retrying":
            wait = max(0.0, (self.next_try or 0.0) - time.time())
            return f"retrying ({self.reason}, next try in {wait:.0f} s)"
        if self.state == "failed":
            return f"failed ({self.reason})"
        return self.state

    def public(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "fix": self.fix, "next_try": self.next_try,
                "since": self.since, "text": self.describe()}


LocalHandler = Callable[[dict[str, Any], Any], Awaitable[dict[str, Any] | None]]
# aiohttp handler: (aiohttp.web.Request) -> aiohttp.web.Response
WebhookHandler = Callable[[Any], Awaitable[Any]]


class ChannelHost(Protocol):
    """What the host offers a channel."""

    settings: Settings

    async def receive(self, event: InboundEvent) -> IngestResult:
        """Route one inbound event; the result says whether it was accepted."""

    async def answer(self, card_id: str, value: str, sender_id: str) -> str | None:
        """A button of a question card was pressed; returns an error text when it cannot be taken."""

    def channel_ready(self, channel_type: str) -> None:
        """The channel can deliver again: retry what waits for it now."""

    def stop_turn(self, route: Route) -> bool:
        """The person asked to stop the agent's running turn in this chat (a stop button; `/stop` is routed
        like any message). False when nothing was running."""

    def submit_credential(self, token: str, value: str | None, *, sender_id: str) -> str:
        """`sender_id` typed a credential into a channel's modal (None: refused it).

        `token` comes from a card's payload["credential"]["token"]. Returns saved, rejected,
        failed: …, expired, or refused: … (in a group chat only the owner or an admin may answer;
        the request stays open). The value goes to the vault only; use channels.credentials.submit.
        """

    def register_local_op(self, op: str, handler: LocalHandler) -> None:
        """Serve `op` on the host's local API socket (for local channels such as the terminal)."""

    def register_webhook(self, name: str, handler: WebhookHandler) -> str:
        """Serve `/hooks/<name>` (any method, any subpath) on the host's web server; returns its local URL.

        Platforms that push events (WhatsApp, GitHub, Slack's Events API) post there, through
        a tunnel or reverse proxy the owner sets up. The handler verifies the platform's signature.
        """

    def register_page(self, method: str, path: str, handler: WebhookHandler) -> None:
        """Serve an owner-only route on the host's web server (login cookie and CSRF checked by the host)."""


class Backoff:
    """Pauses between reconnect attempts, the same for every channel: 0.5 s doubling to 30 s.

    `wait` logs `channel.reconnect` (with the error, which must hold no token) and sleeps;
    `fail` is the same for a configuration error (the channel shows `failed` with the fix, and keeps
    trying at the slowest pace in case the other side is what gets fixed);
    `reset` after a success returns True when it ends a run of failures (time for channel_ready).
    Each reports the channel's `Health` when given `report` (`Channel.backoff()` does).
    """

    FIRST, MOST = 0.5, 30.0

    def __init__(self, channel: str, report: Callable[[Health], None] | None = None) -> None:
        self.channel = channel
        self.delay = self.FIRST
        self.failing = False
        self.report = report or (lambda health: None)

    async def wait(self, error: str = "") -> None:
        log.warning("channel.reconnect", channel=self.channel, delay=self.delay, error=error)
        self.failing = True
        self.report(Health.retrying(error, self.delay))
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.MOST)

    async def fail(self, reason: str, fix: str = "") -> None:
        log.error("channel.failed", channel=self.channel, error=reason, fix=fix, retry_in=self.MOST)
        self.failing = True
        self.report(Health.failed(reason, fix))
        self.delay = self.MOST
        await asyncio.sleep(self.delay)

    def reset(self) -> bool:
        recovered, self.failing, self.delay = self.failing, False, self.FIRST
        self.report(Health.connected())
        return recovered


class Channel(ABC):
    type: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    # The variables an owner sets to use it (credentials.env), asked for by `nanoclaw setup`.
    settings_asked: ClassVar[tuple[str, ...]] = ()
    # True when the platform is this host itself (web chat, terminal): start() connects to nothing, so it runs
    # before the web server opens and may register pages. Every other channel starts in the background, while
    # the host already runs, and must not register pages (webhooks are fine).
    local: ClassVar[bool] = False

    def __init__(self, host: ChannelHost) -> None:
        self.host = host
        self.health = Health.connecting()

    @classmethod
    async def identify(cls, settings: Settings) -> str:
        """Check the configured token against the platform and say who the bot is there (`@andy_bot`).

        Used by `nanoclaw setup` after a token is typed and by doctor while the host is stopped.
        Raise ConfigError (a sentence with the fix) when the platform refuses the settings,
        ChannelUnavailable when it cannot be reached. "" means this channel has no such check.
        """
        return ""

    def report(self, health: Health) -> None:
        """Record how the connection is doing (status, doctor, dashboard); logged when the state changes."""
        if health.state != self.health.state:
            log.info("channel.health", channel=self.type, state=health.state, reason=health.reason)
        self.health = health

    def backoff(self) -> Backoff:
        """The shared reconnect pacing, reporting this channel's health as it goes."""
        return Backoff(self.type, self.report)

    async def start(self) -> None:
        """Connect to the platform and begin passing events to the host.

        The host does not wait for it: until it returns the channel shows `connecting` and its messages
        wait. Return once connected (or once it is clear the platform is only down for now, and keep
        retrying in a task); raise for a configuration that cannot work.
        """

    async def stop(self) -> None:
        """Disconnect."""

    @abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver one message; raise ChannelUnavailable when a retry later may succeed."""

    async def already_sent(self, route: Route, message_id: str) -> str | None:
        """After a host crash between sending and recording: the platform id if `message_id` did go out.

        Return None when the platform cannot tell; the message is then sent again
        (at-least-once in that narrow window). Platforms that can look up a message by
        a client id (or keep a sent log) make delivery exactly-once.
        """
        return None

    @property
    def confirms_sends(self) -> bool:
        """Whether `already_sent` can look a message up (a channel that overrides it)."""
        return type(self).already_sent is not Channel.already_sent

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        """Replace the text of a sent message (only when capabilities.edits)."""
        raise NotImplementedError

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        """Add a reaction to a message (only when capabilities.reactions)."""
        raise NotImplementedError

    async def set_typing(self, route: Route, on: bool) -> None:
        """Show or hide that the agent is working."""

    async def processed(self, route: Route, message_ids: list[str], status: str) -> None:
        """The agent finished these inbound messages (`done` or `failed`)."""

    async def show_partial(self, route: Route, stream_id: str, text: str | None) -> None:
        """Only with capabilities.live_partials: the reply `stream_id` as written so far (None: it was cut
        short and will not be finished). Its final message comes through send() with payload["stream"]."""

    async def close_card(self, route: Route, platform_message_id: str, card_id: str, text: str, outcome: str) -> None:
        """A card (question, approval, credential request) was decided or expired, here or anywhere else:
        show `outcome` on it and take its buttons away. `text` is the card's text as first sent."""
        if self.capabilities.edits:
            await self.edit(route, platform_message_id, f"{text}\n\n{outcome}")
