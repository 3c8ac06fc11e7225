"""The terminal channel: `nanoclaw chat` and `nanoclaw send` talk to the host's local API.

The owner's terminal is one DM chat (`terminal:local`). Replies go to every
attached client; with none attached, delivery waits and retries when one
attaches, so a reply is never lost because no terminal was open.
"""

from __future__ import annotations

import getpass
import uuid
from typing import Any

from nanoclaw.channels.base import Capabilities, Channel, InboundEvent, OutgoingMessage, SendResult
from nanoclaw.errors import ChannelUnavailable
from nanoclaw.host.api import ApiConnection
from nanoclaw.host.bootstrap import TERMINAL_CHAT
from nanoclaw.protocol.messages import Route


class TerminalChannel(Channel):
    type = "terminal"
    local = True
    capabilities = Capabilities(typing=True)

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.clients: set[ApiConnection] = set()
        self.user = getpass.getuser()

    async def start(self) -> None:
        self.host.register_local_op("subscribe", self._op_subscribe)
        self.host.register_local_op("send", self._op_send)

    async def _op_subscribe(self, request: dict[str, Any], conn: ApiConnection) -> dict[str, Any]:
        self.clients.add(conn)
        conn.on_close.append(lambda: self.clients.discard(conn))
        conn.send({"ok": True, "chat": TERMINAL_CHAT, "assistant": self.host.settings.assistant_name})
        self.host.channel_ready(self.type)  # replies that waited for a terminal go out now
        return None  # type: ignore[return-value]

    async def _op_send(self, request: dict[str, Any], conn: ApiConnection) -> dict[str, Any]:
        text = request.get("text")
        if not isinstance(text, str):
            return {"ok": False, "error": "send needs a text string"}
        message_id = str(request.get("id") or uuid.uuid4().hex)
        result = await self.host.receive(
            InboundEvent(
                channel_type=self.type, platform_id=TERMINAL_CHAT, message_id=message_id, text=text,
                sender_id=self.user, sender_name=self.user, is_dm=True, chat_name="Terminal",
            )
        )
        if not result.accepted:
            return {"ok": False, "id": message_id, "error": result.error}
        return {"ok": True, "id": message_id, "triggered": result.triggered, "reply": result.reply}

    def _broadcast(self, event: dict[str, Any]) -> int:
        sent = 0
        for conn in list(self.clients):
            try:
                conn.send(event)
                sent += 1
            except ConnectionError:
                self.clients.discard(conn)
        return sent

    async def send(self, message: OutgoingMessage) -> SendResult:
        platform_id = uuid.uuid4().hex[:12]
        event = {"event": "message", "id": platform_id, "kind": message.kind, "text": message.text or ""}
        if not self._broadcast(event):
            raise ChannelUnavailable("no terminal is attached")
        return SendResult(platform_id)

    async def set_typing(self, route: Route, on: bool) -> None:
        self._broadcast({"event": "typing", "on": on})

    async def processed(self, route: Route, message_ids: list[str], status: str) -> None:
        self._broadcast({"event": "processed", "ids": message_ids, "status": status})
