"""Cards show their final state wherever they are, whoever decided them and wherever (issue: a decision on
the dashboard left live buttons in the chat).

Every card the host posts (approvals, questions, credential requests) is recorded
with its platform message; when it is decided, answered or expires, each copy is
closed through `Channel.close_card`: the outcome shown, the buttons gone.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Mapping

from nanoclaw.channels.base import Channel
from nanoclaw.db import card_posts
from nanoclaw.db.card_posts import CardPost
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.cards")
EXPIRED = "⌛ Expired: nobody answered in time."


class CardBoard:
    def __init__(self, conn: sqlite3.Connection, channels: Mapping[str, Channel],
                 connecting: Callable[[str], bool] = lambda _name: False) -> None:
        self.conn = conn
        self.channels = channels  # the connected ones
        self.connecting = connecting
        # Copies on channels still connecting (cards an earlier host left open, closed at start): closed once
        # their channel is connected, so the host's start never waits on a platform.
        self._waiting: list[tuple[CardPost, str]] = []

    def posted(self, card_id: str, route: Route, platform_message_id: str | None, text: str) -> None:
        if platform_message_id:
            card_posts.add(self.conn, card_id, route, platform_message_id, text)

    async def close(self, card_id: str, outcome: str) -> None:
        """Show `outcome` on every copy of the card (best effort: a channel that is down keeps its buttons,
        and pressing one then says the card is closed)."""
        for post in card_posts.take(self.conn, card_id):
            kind = post.route.channel_type
            if kind not in self.channels and self.connecting(kind):
                self._waiting.append((post, outcome))
                continue
            await self._close(post, outcome)
        log.info("card.closed", card=card_id)

    async def channel_ready(self, channel_type: str) -> None:
        """Close the copies that waited for this channel to connect."""
        due = [w for w in self._waiting if w[0].route.channel_type == channel_type]
        self._waiting = [w for w in self._waiting if w[0].route.channel_type != channel_type]
        for post, outcome in due:
            await self._close(post, outcome)

    async def _close(self, post: CardPost, outcome: str) -> None:
        channel = self.channels.get(post.route.channel_type)
        if channel is None:
            return
        try:
            await channel.close_card(post.route, post.platform_message_id, post.card_id, post.text, outcome)
        except Exception as exc:
            log.warning("card.close_failed", channel=post.route.channel_type, card=post.card_id,
                        error=f"{type(exc).__name__}: {exc}")
