"""Local API ops behind `nanoclaw pairing …` and `nanoclaw groups wire` while the host runs.

Decisions go through the gatekeeper, as a card's button would, so the person
is answered at once; with the host stopped the CLI writes the same decision to
the database and the host answers what waited at its next start.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Awaitable, Callable

from nanoclaw.db import messaging_groups
from nanoclaw.host.api import ApiConnection, LocalApi
from nanoclaw.host.newcomers import NewChats
from nanoclaw.host.pairing import Pairing

Decide = Callable[..., Awaitable[str]]


class OnboardingOps:
    def __init__(self, conn: sqlite3.Connection, pairing: Pairing, new_chats: NewChats, decide: Decide) -> None:
        self.conn = conn
        self.pairing = pairing
        self.new_chats = new_chats
        self.decide = decide

    def register(self, api: LocalApi) -> None:
        api.register("pairing_approve", self._approve)
        api.register("pairing_deny", self._deny)
        api.register("chat_wired", self._chat_wired)

    async def _approve(self, request: dict[str, Any], conn: ApiConnection) -> dict[str, Any]:
        return await self._decide(str(request.get("code") or ""), True, str(request.get("group") or "main"))

    async def _deny(self, request: dict[str, Any], conn: ApiConnection) -> dict[str, Any]:
        return await self._decide(str(request.get("code") or ""), False, "deny")

    async def _decide(self, code: str, approve: bool, choice: str) -> dict[str, Any]:
        approval = self.pairing.by_code(code)
        if approval is None:
            return {"ok": False, "error": no_such_code(code)}
        outcome = await self.decide(approval.id, approve, "cli:owner", choice=choice)
        return {"ok": True, "outcome": outcome, "approval": approval.id}

    async def _chat_wired(self, request: dict[str, Any], conn: ApiConnection) -> dict[str, Any]:
        channel, _, platform_id = str(request.get("chat") or "").partition(":")
        chat = messaging_groups.find(self.conn, channel, platform_id)
        released = await self.new_chats.release(chat.id) if chat is not None else 0
        return {"ok": True, "released": released}


def no_such_code(code: str) -> str:
    return (f"no open pairing request with code {code!r}: it expired (after 1 hour), was decided already, or is "
            "mistyped (see nanoclaw pairing list)")
