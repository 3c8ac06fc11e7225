"""Requests an `approve` egress rule holds: a card in the admin chat, the request waits for the owner.

Approve lets it through, Deny answers 403; with no answer in time the card is
edited to "Expired" and the request fails. Cards left open by an earlier host
process are closed the same way at start-up (their requests died with it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Awaitable, Callable

from nanoclaw.db import approvals
from nanoclaw.db.approvals import Approval
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger("nanoclaw.host.egress_approvals")

KIND = "egress"
SendCard = Callable[[Route, str, str, tuple[str, ...], str], Awaitable[str | None]]
Edit = Callable[[Route, str, str], Awaitable[None]]


class EgressApprovals:
    def __init__(self, conn: sqlite3.Connection, send_card: SendCard, edit: Edit,
                 admin_route: Callable[[], Route | None], timeout: float) -> None:
        self.conn = conn
        self.send_card = send_card
        self.edit = edit
        self.admin_route = admin_route
        self.timeout = timeout
        self._waiting: dict[str, asyncio.Future[bool]] = {}

    async def ask(self, session_id: str, group: str, method: str, host: str, path: str, rule: str) -> bool:
        """Hold one request until the owner decides; True only for an approval in time."""
        admin = self.admin_route()
        if admin is None:
            return False
        approval = approvals.create(self.conn, KIND, f"{group}:{host}",
                                    {"session": session_id, "method": method, "host": host, "path": path[:300],
                                     "rule": rule, "request": uuid.uuid4().hex}, self.timeout)
        where = f"{method} https://{host}{path[:200]}" if method != "CONNECT" else f"a connection to {host}"
        text = (f"Agent group {group} wants {where} (rule {rule}).\n"
                f"Allow it? (/approve {approval.id} · /deny {approval.id}; expires in {self.timeout / 60:g} min)")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[approval.id] = future
        message_id = await self.send_card(admin, "Outgoing request", text, ("Approve", "Deny"), approval.id)
        if message_id is not None:
            approvals.set_payload(self.conn, approval.id, {**approval.payload, "card": [
                admin.channel_type, admin.platform_id, admin.thread_id, message_id]})
        log.info("egress.approval_requested", approval=approval.id, group=group, host=host, rule=rule)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except asyncio.TimeoutError:
            if approvals.mark_expired(self.conn, approval.id):
                await self._close_card(approvals.get(self.conn, approval.id), "Expired")
            log.info("egress.approval_expired", approval=approval.id, group=group, host=host)
            return False
        finally:
            self._waiting.pop(approval.id, None)

    async def decide(self, approval: Approval, approve: bool) -> str:
        future = self._waiting.get(approval.id)
        what = f"{approval.payload.get('method')} {approval.payload.get('host')}{approval.payload.get('path', '')}"
        if future is None or future.done():
            return f"{approval.id}: the request is no longer waiting (the host restarted or it timed out)."
        future.set_result(approve)
        log.info("egress.approval_decided", approval=approval.id, approved=approve)
        return f"{'Approved' if approve else 'Denied'}: {what} ({approval.id})."

    async def sweep(self) -> int:
        """At start-up: requests waiting in an earlier process are gone; close their cards."""
        rows = self.conn.execute("SELECT * FROM approvals WHERE kind = ? AND status = 'open'", (KIND,)).fetchall()
        for row in rows:
            approval = Approval.from_row(row)
            approvals.mark_expired(self.conn, approval.id, "restart")
            await self._close_card(approval, "Expired (NanoClaw restarted)")
        return len(rows)

    async def _close_card(self, approval: Approval | None, label: str) -> None:
        card = approval.payload.get("card") if approval else None
        if approval is None or not card:
            return
        channel, platform_id, thread, message_id = card
        what = f"{approval.payload.get('method')} {approval.payload.get('host')}{approval.payload.get('path', '')}"
        await self.edit(Route(channel, platform_id, thread), message_id,
                        f"{label}: {approval.subject.split(':')[0]} wanted {what} ({approval.id}); it was not sent.")
