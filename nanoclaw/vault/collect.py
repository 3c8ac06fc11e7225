"""Credential collection: an agent asks for a secret it needs, the person types it into a form, the agent
learns only whether it was saved.

`request_credential` posts a card in the conversation's own chat with a
one-time link to a form on the host's local web server (127.0.0.1): the link
works once, for a limited time, and the form carries a CSRF token. The value
goes straight into the vault; the pending request never holds it, and the
agent's tool gets one of: saved, rejected, failed: …, expired.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from nanoclaw.db.sessions import Session
from nanoclaw.errors import DestinationRefused, NanoClawError
from nanoclaw.host.actions import DEFERRED
from nanoclaw.host.web import WebServer
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route
from nanoclaw.vault.backend import SecretBackend
from nanoclaw.vault.store import SecretRule, VaultError, validate

if TYPE_CHECKING:
    from aiohttp import web

log = get_logger("nanoclaw.vault.collect")

TTL = 600.0
SendCard = Callable[..., Awaitable[str | None]]  # (route, title, text, buttons, card_id, payload=None)


@dataclass
class Pending:
    rule: SecretRule
    description: str
    session_id: str
    request_id: str
    csrf: str
    expires_at: float
    done: asyncio.Future[str] = field(repr=False)


class CredentialDesk:
    def __init__(self, store: SecretBackend, route_of: Callable[[str], Route | None], send_card: SendCard,
                 answer: Callable[[str, str, str], None], web_server: WebServer, *, ttl: float = TTL,
                 may_answer: Callable[[Route, str], bool] = lambda route, sender: True) -> None:
        self.store = store
        self.route_of = route_of
        self.send_card = send_card
        self.closed: Callable[[str, str], Awaitable[None]] | None = None  # (card id, outcome): CardBoard.close
        self.answer = answer
        self.web = web_server
        self.ttl = ttl
        self.may_answer = may_answer
        self._pending: dict[str, Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        web_server.add_public("GET", "/credentials/{token}", self._form)
        web_server.add_public("POST", "/credentials/{token}", self._submit)

    # -- the web form ---------------------------------------------------------

    async def stop(self) -> None:
        for pending in list(self._pending.values()):
            self._finish(pending, "failed: the host stopped")

    def link(self, token: str) -> str:
        return f"{self.web.url}/credentials/{token}"

    async def _form(self, request: web.Request) -> web.Response:
        pending = self._live(request.match_info["token"])
        if pending is None:
            return _page(410, "This link was used already or has expired.")
        rule = pending.rule
        scope = "" if self.store.scoped else " from every agent group (it is kept in OneCLI)"
        body = (f"<h1>{html.escape(rule.name)}</h1><p>{html.escape(pending.description)}</p>"
                f"<p>It will be sent as <code>{html.escape(rule.header)}</code> on requests to "
                f"<code>{html.escape(rule.host)}</code>{scope}; the assistant never sees it.</p>"
                f"<form method='post'><input type='hidden' name='csrf' value='{pending.csrf}'>"
                "<input type='password' name='value' autocomplete='off' autofocus required> "
                "<button name='action' value='save'>Save</button> "
                "<button name='action' value='reject' formnovalidate>Refuse</button></form>")
        return _page(200, body)

    async def _submit(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        pending = self._live(token)
        if pending is None:
            return _page(410, "This link was used already or has expired.")
        form = await request.post()
        if not hmac.compare_digest(str(form.get("csrf", "")), pending.csrf):
            log.warning("credential.bad_csrf", name=pending.rule.name)
            return _page(403, "This form is not valid any more; ask the assistant for a new link.")
        status = self.complete(token, str(form.get("value", "")) if form.get("action") != "reject" else None)
        if status == "rejected":
            return _page(200, "Refused. The assistant was told.")
        if status != "saved":
            return _page(400, f"Not saved: {html.escape(status.removeprefix('failed: '))}")
        where = "NanoClaw's vault" if self.store.scoped else "OneCLI"
        return _page(200, f"Saved in {where}. You can close this page.")

    def complete(self, token: str, value: str | None, *, sender_id: str | None = None) -> str:
        """The person entered `value` (None: refused) for request `token`, in the form or a channel's modal.

        Returns the status the agent is told: saved, rejected, failed: …, or expired (unknown or used
        token); or refused: … for a modal answer from someone who may not answer (the request stays open).
        The form has no sender: whoever holds the one-time link answers.
        """
        pending = self._live(token)
        if pending is None:
            return "expired"
        if sender_id is not None:
            route = self.route_of(pending.session_id)
            if route is None or not self.may_answer(route, sender_id):
                log.warning("credential.refused_sender", name=pending.rule.name)
                return "refused: in a group chat only the owner or an admin may enter a credential"
        self._pending.pop(token, None)  # one use, whatever happens next
        if value is None:
            self._finish(pending, "rejected")
            return "rejected"
        try:
            if pending.rule.name in {r.name for r in self.store.rules()}:
                self.store.rotate(pending.rule.name, value)
            else:  # a backend without groups (OneCLI) stores it for every group, as its form said
                self.store.add(pending.rule if self.store.scoped else replace(pending.rule, groups=()), value)
        except NanoClawError as exc:
            self._finish(pending, f"failed: {exc}")
            return f"failed: {exc}"
        self._finish(pending, "saved")
        return "saved"

    def _live(self, token: str) -> Pending | None:
        pending = self._pending.get(token)
        if pending is None or pending.expires_at < time.time():
            return None
        return pending

    def _finish(self, pending: Pending, status: str) -> None:
        if not pending.done.done():
            pending.done.set_result(status)
        log.info("credential.finished", name=pending.rule.name, status=status.split(":")[0])

    # -- the agent's side -------------------------------------------------------

    async def request(self, session: Session, action: str, payload: dict[str, Any]) -> str:
        """The tool call: post the card with the link; the tool's answer comes when the person acts."""
        rule = SecretRule(str(payload.get("name", "")), str(payload.get("host_pattern", "")),
                          str(payload.get("header_name") or "Authorization"),
                          str(payload.get("value_format") or "Bearer {value}"), groups=(session.agent_group_id,))
        try:
            validate(rule, "placeholder")
        except VaultError as exc:
            raise DestinationRefused(str(exc)) from exc
        if not self.web.running:
            raise DestinationRefused(f"the host's web server is not running (port {self.web.settings.web_port} "
                                     "was taken); the owner can set NANOCLAW_WEB_PORT")
        route = self.route_of(session.id)
        request_id = payload.get("request_id")
        if route is None or not isinstance(request_id, str):
            raise DestinationRefused("this conversation has no chat to ask in")
        token = secrets.token_urlsafe(24)
        pending = Pending(rule, str(payload.get("description", ""))[:1000], session.id, request_id,
                          secrets.token_urlsafe(24), time.time() + self.ttl,
                          asyncio.get_running_loop().create_future())
        self._pending[token] = pending
        text = (f"The assistant needs a credential: {rule.name} (for {rule.host}).\n"
                f"{pending.description}\nEnter it here, on this computer: {self.link(token)}\n"
                f"The link works once, for {self.ttl / 60:g} minutes. The assistant never sees the value.")
        # Channels with modals ask in place: they pass the value to ChannelHost.submit_credential(token, …).
        await self.send_card(route, "Credential needed", text, (), f"cred-{request_id}",
                             {"form_url": self.link(token), "credential": {
                                 "token": token, "name": rule.name, "host": rule.host,
                                 "description": pending.description}})
        task = asyncio.create_task(self._wait(token, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("credential.requested", name=rule.name, host=rule.host, session=session.id)
        return DEFERRED

    async def _wait(self, token: str, pending: Pending) -> None:
        try:
            status = await asyncio.wait_for(asyncio.shield(pending.done), max(0.0, pending.expires_at - time.time()))
        except asyncio.TimeoutError:
            self._pending.pop(token, None)
            status = "expired"
            log.info("credential.finished", name=pending.rule.name, status="expired")
        self.answer(pending.session_id, pending.request_id, status)
        if self.closed is not None:
            outcomes = {"saved": "✅ Saved in the vault.", "rejected": "❌ Refused.", "expired": "⌛ Expired."}
            await self.closed(f"cred-{pending.request_id}", outcomes.get(status, "⚠️ Not saved."))


def _page(status: int, body: str) -> web.Response:
    # Framed only by the host's own web chat (its credential modal).
    from aiohttp import web

    return web.Response(status=status, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                            "form-action 'self'; frame-ancestors 'self'"},
                        text=f"<!doctype html><meta charset='utf-8'><title>NanoClaw</title>{body}")
