"""An in-process channel that records what the host delivers: the platform end of tests.

`FakeChannel` is non-threaded (like Telegram), `ThreadedFakeChannel` threaded
(like Slack). Set `available = False` to make sends fail transiently.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from nanoclaw.channels.base import (
    Capabilities,
    Channel,
    FileAttachment,
    InboundEvent,
    IngestResult,
    OutgoingMessage,
    SendResult,
)
from nanoclaw.errors import ChannelUnavailable
from nanoclaw.protocol.messages import Route

_ids = itertools.count(1)


@dataclass
class Sent:
    route: Route
    kind: str
    text: str
    id: str
    platform_id: str = ""
    title: str | None = None
    buttons: tuple[str, ...] = ()
    card_id: str | None = None
    file: FileAttachment | None = None


class FakeChannel(Channel):
    type = "fake"
    capabilities = Capabilities(typing=True)

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.sent: list[Sent] = []
        self.typing: list[tuple[Route, bool]] = []
        self.processed_ids: list[tuple[list[str], str]] = []
        self.available = True
        self.can_look_up = True  # already_sent() answers from the sent log
        self.edits: list[tuple[str, str]] = []
        self.reactions: list[tuple[str, str]] = []
        self._changed = asyncio.Condition()

    async def send(self, message: OutgoingMessage) -> SendResult:
        if not self.available:
            raise ChannelUnavailable("fake platform is down")
        platform_id = f"p{next(_ids)}"
        self.sent.append(Sent(message.route, message.kind, message.text or "", message.id, platform_id,
                              message.title, message.buttons, message.card_id, message.file))
        async with self._changed:
            self._changed.notify_all()
        return SendResult(platform_id)

    async def already_sent(self, route: Route, message_id: str) -> str | None:
        if not self.can_look_up:
            return None
        return next((s.platform_id for s in self.sent if s.id == message_id), None)

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        self.edits.append((platform_message_id, text))

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        self.reactions.append((platform_message_id, emoji))

    async def click(self, card_id: str, value: str, sender: str = "alice") -> str | None:
        """A person presses a button of a question card."""
        return await self.host.answer(card_id, value, sender)

    async def set_typing(self, route: Route, on: bool) -> None:
        self.typing.append((route, on))

    async def processed(self, route: Route, message_ids: list[str], status: str) -> None:
        self.processed_ids.append((message_ids, status))
        async with self._changed:
            self._changed.notify_all()

    async def wait_sent(self, count: int, timeout: float = 15.0) -> list[Sent]:
        """Wait until at least `count` messages were sent; returns them all."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.sent) >= count), timeout)
        return list(self.sent)

    async def wait_processed(self, message_id: str, timeout: float = 15.0) -> str:
        """Wait until `message_id` was reported processed; returns its status."""
        def find() -> str | None:
            for ids, status in self.processed_ids:
                if message_id in ids:
                    return status
            return None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: find() is not None), timeout)
        return find() or ""

    async def say(
        self, text: str, *, chat: str = "chat1", sender: str = "alice", thread: str | None = None,
        message_id: str | None = None, is_dm: bool = False,
    ) -> IngestResult:
        """A person writes `text` in `chat`."""
        return await self.host.receive(
            InboundEvent(
                channel_type=self.type, platform_id=chat, message_id=message_id or f"m{next(_ids)}", text=text,
                sender_id=sender, sender_name=sender.title(), thread_id=thread, is_dm=is_dm,
            )
        )


class ThreadedFakeChannel(FakeChannel):
    type = "fakethreads"
    capabilities = Capabilities(threads=True, typing=True)


class RichFakeChannel(FakeChannel):
    """A platform with buttons, edits, reactions and files (like Slack or Discord)."""

    type = "fakerich"
    capabilities = Capabilities(threads=True, typing=True, cards=True, edits=True, reactions=True, files=True)


class StreamingFakeChannel(FakeChannel):
    """A platform that can edit, where the host shows replies growing (like Telegram), with a fast rate limit.

    `events` records every send and edit with its time, to check the pace of edits."""

    type = "fakestream"
    capabilities = Capabilities(typing=True, edits=True, stream_interval=0.2, max_message_length=4000)

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.events: list[tuple[float, str, str, str]] = []  # (monotonic time, "send"|"edit", platform id, text)

    async def send(self, message: OutgoingMessage) -> SendResult:
        result = await super().send(message)
        self.events.append((asyncio.get_running_loop().time(), "send", result.platform_message_id or "", message.text or ""))
        return result

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        if not self.available:
            raise ChannelUnavailable("fake platform is down")
        await super().edit(route, platform_message_id, text)
        self.events.append((asyncio.get_running_loop().time(), "edit", platform_message_id, text))
        async with self._changed:
            self._changed.notify_all()

    def text_of(self, platform_id: str) -> str:
        """What the message shows now (its last edit, or as sent)."""
        texts = [text for _t, _kind, pid, text in self.events if pid == platform_id]
        return texts[-1] if texts else ""

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
