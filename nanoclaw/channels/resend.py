"""The Resend channel: mail in through Resend's inbound webhooks, mail out through its API.

Owns the webhook endpoint `/hooks/resend` (Svix signatures, whose timestamp bounds replays; `email.received`
events), fetching each received mail (text, headers, attachments) with the Resend SDK, and sending answers
with it. A chat is one correspondent's address: one session each, no groups, no threads the host sees.
Answers keep the mail thread with "Re: <subject>", In-Reply-To and References of the correspondent's last
mail, kept in state/ so that after a restart the answer still lands in the same thread. Each mail goes out
with an idempotency key made of the outbound row's id, so a retried send is not sent twice.

Resend delivers a webhook that failed again later, and lists received mail; at start the channel also
passes on what arrived since the newest mail it passed on (`state/resend-seen.json`), oldest first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
from collections import deque
from email.utils import formataddr, getaddresses, parseaddr
from pathlib import Path
from typing import Any

import httpx
import resend
from aiohttp import web
from svix.webhooks import Webhook, WebhookVerificationError

from nanoclaw.channels.base import (
    Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult, render_text,
)
from nanoclaw.channels.mail_text import (
    automated, html_to_text, is_reply_subject, reply_subject, strip_quotes, subject_for, to_mail_html,
)
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.text import split_message
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger

log = get_logger(__name__)

DEFAULT_API_URL = "https://api.resend.com"
MAX_TEXT = 100_000  # not a protocol limit: longer answers go out as several mails so each stays readable
MAX_FILE = 40 * 2**20  # Resend's limit for a mail with its attachments
RECENT_IDS = 1000
MAX_THREADS_KEPT = 500
CATCH_UP_PAGES, PAGE_SIZE = 10, 100


class _Malformed(ValueError):
    """A webhook or received mail without what the channel needs."""


def _addr(value: Any) -> tuple[str, str]:
    name, address = parseaddr(str(value or ""))
    return name, address.strip().lower()


def _addresses(values: Any) -> set[str]:
    items = values if isinstance(values, list) else [values] if isinstance(values, str) else []
    return {a.strip().lower() for _, a in getaddresses([str(v) for v in items]) if "@" in a}


class ResendChannel(Channel):
    type = "resend"
    settings_asked = ("RESEND_API_KEY", "RESEND_WEBHOOK_SECRET", "RESEND_FROM")
    capabilities = Capabilities(
        files=True, max_message_length=MAX_TEXT,
        formatting="Email: write Markdown (**bold**, _italic_, lists, `code`, [links](url), tables); it is sent"
                   " as HTML with the Markdown as the plain-text part. Paragraphs, not chat fragments.",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._verifier: Webhook | None = None
        self._from = ""  # "Name <address>" the answers come from
        self._own: set[str] = set()  # our addresses: mail from them is never a correspondent's
        self._inbound = ""  # when set, only mail to this address is for the assistant
        self._http: httpx.AsyncClient | None = None  # attachment downloads (signed URLs, no key)
        # correspondent → (subject, message id, references) of their last mail: what an answer quotes
        self._threads: dict[str, tuple[str, str, str]] = {}
        self._recent: deque[str] = deque(maxlen=RECENT_IDS)  # Resend may deliver a webhook twice
        self._lock = asyncio.Lock()  # one mail at a time, in order
        self._seen: tuple[str, str] | None = None  # (created_at, id) of the newest mail passed on
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        extra = self.host.settings.extra
        for name, how in (("RESEND_API_KEY", "an API key with full access (Resend → API Keys → Create API Key)"),
                          ("RESEND_WEBHOOK_SECRET", "the webhook's signing secret, whsec_… (Resend → Webhooks)"),
                          ("RESEND_FROM", "the address answers come from, on a domain verified at Resend")):
            if not extra.get(name):
                raise ConfigError(f"Resend needs {name} in credentials.env: {how}; see docs/channels/resend.md")
        name, address = _addr(extra["RESEND_FROM"])
        if "@" not in address:
            raise ConfigError(f"RESEND_FROM={extra['RESEND_FROM']!r} is not a mail address")
        self._from = formataddr((name or self.host.settings.assistant_name, address))
        self._inbound = _addr(extra.get("RESEND_INBOUND_ADDRESS"))[1]
        self._own = {address, self._inbound} - {""}
        try:
            self._verifier = Webhook(extra["RESEND_WEBHOOK_SECRET"])
        except Exception as exc:  # standardwebhooks refuses a secret that is not base64 after whsec_
            raise ConfigError("RESEND_WEBHOOK_SECRET is not a Resend signing secret (whsec_…)") from exc
        # The SDK keeps its key and address in module settings: one Resend account per host.
        resend.api_key = extra["RESEND_API_KEY"]
        resend.api_url = (extra.get("RESEND_API_URL") or DEFAULT_API_URL).rstrip("/")
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
        state = self.host.settings.state_dir
        self._threads = _read_threads(state / "resend-threads.json")
        seen = read_position(state / "resend-seen.json", self.type)
        if isinstance(seen, list) and len(seen) == 2 and all(isinstance(v, str) for v in seen):
            self._seen = (seen[0], seen[1])
            self._tasks.append(asyncio.create_task(self._catch_up()))
        url = self.host.register_webhook(self.type, self._on_webhook)
        log.info("resend.started", webhook=url, address=address)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- inbound -------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: request.headers.get(k, "") for k in ("svix-id", "svix-timestamp", "svix-signature")}
        try:
            assert self._verifier is not None
            self._verifier.verify(body, headers)
        except WebhookVerificationError as exc:  # bad signature, or a timestamp outside five minutes: a replay
            log.warning("resend.webhook_rejected", reason=str(exc), remote=request.remote)
            return web.Response(status=401, text="bad signature")
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise _Malformed("not a JSON object")
            if payload.get("type") != "email.received":
                return web.Response(status=200)  # sent / delivered / bounced …: not for the assistant
            email_id = _str(payload.get("data"), "email_id")
        except (ValueError, _Malformed) as exc:
            log.warning("resend.payload_malformed", error=str(exc))
            return web.Response(status=400, text="malformed payload")
        try:
            await self._take(email_id)
        except ChannelUnavailable as exc:  # the mail could not be fetched now: Resend delivers again later
            log.warning("resend.fetch_failed", email_id=email_id, error=str(exc))
            return web.Response(status=503, text="try again later")
        return web.Response(status=200)

    async def _take(self, email_id: str) -> None:
        """Fetch one received mail and pass it on (once)."""
        async with self._lock:
            if email_id in self._recent:
                return
            try:
                received = await self._api(resend.Emails.Receiving.get_async(email_id))
                event = await self._event(received, email_id)
            except (DestinationRefused, _Malformed) as exc:  # gone, or not a mail we can read: never retried
                log.warning("resend.mail_unreadable", email_id=email_id, error=str(exc))
                event = None
                received = {}
            self._recent.append(email_id)
            if event is not None:
                log.debug("resend.received", chat=event.platform_id, text=event.text)
                result = await self.host.receive(event)
                if not result.accepted:
                    log.info("resend.not_accepted", chat=event.platform_id, error=result.error)
            created = received.get("created_at") if isinstance(received, dict) else None
            if isinstance(created, str) and (self._seen is None or (created, email_id) > self._seen):
                self._seen = (created, email_id)
                write_position(self.host.settings.state_dir / "resend-seen.json", list(self._seen), self.type)

    async def _event(self, mail: Any, email_id: str) -> InboundEvent | None:
        """The host's event for a received mail; None for our own mail and mail to other addresses."""
        if not isinstance(mail, dict):
            raise _Malformed("the received mail is not an object")
        sender_name, sender = _addr(mail.get("from"))
        if "@" not in sender:
            raise _Malformed("no sender address")
        if sender in self._own:
            return None
        recipients = _addresses(mail.get("to")) | _addresses(mail.get("cc")) | _addresses(mail.get("received_for"))
        if self._inbound and self._inbound not in recipients:
            log.info("resend.other_recipient", email_id=email_id)
            return None
        headers = mail.get("headers") if isinstance(mail.get("headers"), dict) else {}
        lower = {str(k).lower(): str(v) for k, v in headers.items()}
        subject = str(mail.get("subject") or "").strip()
        text, html = mail.get("text"), mail.get("html")
        body = text if isinstance(text, str) and text.strip() else html_to_text(html) if isinstance(html, str) else ""
        text = strip_quotes(body)
        if subject and "in-reply-to" not in lower and not is_reply_subject(subject):
            text = f"Subject: {subject}\n\n{text}".strip()  # a new conversation: its subject is part of the request
        files, notes = await self._files(mail, email_id)
        text = "\n".join([text, *notes]).strip()
        if not text and not files:
            raise _Malformed("no text and no attachment")
        message_id = str(mail.get("message_id") or "").strip()
        from_bot = automated(lower, sender)
        if message_id and not from_bot:  # answers continue the person's mail thread, not a robot's
            references = " ".join([*lower.get("references", "").split()[-20:], message_id])
            self._threads.pop(sender, None)  # the most recent correspondent last
            self._threads[sender] = (subject, message_id, references)
            kept = dict(list(self._threads.items())[-MAX_THREADS_KEPT:])
            write_position(self.host.settings.state_dir / "resend-threads.json",
                           {c: list(t) for c, t in kept.items()}, self.type)
        return InboundEvent(
            channel_type=self.type, platform_id=sender, message_id=message_id.strip("<>") or email_id, text=text,
            sender_id=sender, sender_name=sender_name or sender, is_dm=True, chat_name=sender_name or sender,
            mentions_assistant=True, files=tuple(files), from_bot=from_bot, payload={"subject": subject},
        )

    async def _files(self, mail: dict[str, Any], email_id: str) -> tuple[list[FileAttachment], list[str]]:
        if not mail.get("attachments"):
            return [], []
        listed = await self._api(resend.Emails.Receiving.Attachments.list_async(email_id))
        files: list[FileAttachment] = []
        notes: list[str] = []
        for item in listed.get("data") or [] if isinstance(listed, dict) else []:
            name = str(_opt(item, "filename") or "attachment")
            url, size = _opt(item, "download_url"), _opt(item, "size")
            if isinstance(size, int) and size > MAX_FILE or not isinstance(url, str):
                notes.append(f"[attachment {name} skipped: too large or not available]")
                continue
            try:
                assert self._http is not None
                data = bytearray()
                async with self._http.stream("GET", url) as response:  # a signed URL: no key goes with it
                    response.raise_for_status()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_FILE:
                            raise ValueError("larger than 40 MB")
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("resend.download_failed", email_id=email_id, error=str(exc)[:200])
                notes.append(f"[attachment {name} could not be downloaded]")
                continue
            files.append(FileAttachment(name, bytes(data), _opt(item, "content_type")))
        return files, notes

    async def _catch_up(self) -> None:
        """Mail received while the host was down, oldest first (each passed on once)."""
        backoff = self.backoff()
        newer: list[tuple[str, str]] = []
        after: str | None = None
        pages = 0
        while pages < CATCH_UP_PAGES:
            params: dict[str, Any] = {"limit": PAGE_SIZE, **({"after": after} if after else {})}
            try:
                page = await self._api(resend.Emails.Receiving.list_async(params))  # type: ignore[arg-type]
            except ChannelUnavailable as exc:
                await backoff.wait(str(exc))
                continue
            except DestinationRefused as exc:
                log.warning("resend.catch_up_refused", error=str(exc))
                return
            pages += 1
            items = [i for i in page.get("data") or [] if isinstance(i, dict)] if isinstance(page, dict) else []
            reached = False
            for item in items:  # newest first
                key = (str(item.get("created_at")), str(item.get("id")))
                if self._seen is not None and key <= self._seen:
                    reached = True
                    break
                newer.append(key)
            if reached or not items or not (isinstance(page, dict) and page.get("has_more")):
                break
            after = str(items[-1].get("id"))
        for _, email_id in sorted(newer):
            while True:
                try:
                    await self._take(email_id)
                    break
                except ChannelUnavailable as exc:
                    await backoff.wait(str(exc))
        if backoff.failing:
            backoff.reset()
        log.info("resend.caught_up", mails=len(newer))

    # -- outbound ------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        to = message.route.platform_id.strip().lower()
        if "@" not in to or "," in to:
            raise DestinationRefused(f"resend chat {message.route.platform_id!r} is not one mail address")
        text = render_text(message) if message.kind in ("card", "question") else (message.text or "")
        pieces = split_message(text, MAX_TEXT)
        thread = self._threads.get(to)
        ids = []
        for i, piece in enumerate(pieces):
            params: dict[str, Any] = {
                "from": self._from, "to": [to], "text": piece, "html": to_mail_html(piece),
                # RFC 3834: marks us as a program, so vacation responders and other assistants do not loop.
                "headers": {"Auto-Submitted": "auto-replied" if thread else "auto-generated"},
            }
            if thread is not None:
                params["subject"] = reply_subject(thread[0])
                params["headers"].update({"In-Reply-To": thread[1], "References": thread[2]})
            else:
                params["subject"] = subject_for(piece) or self.host.settings.assistant_name
            file = message.file if i == len(pieces) - 1 else None
            if file is not None:
                kind = file.mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                params["attachments"] = [{"filename": file.name, "content": base64.b64encode(file.data).decode(),
                                          "content_type": kind}]
            # The same outbound row retried after a failure carries the same key: Resend sends it once.
            sent = await self._api(resend.Emails.send_async(params,  # type: ignore[arg-type]
                                                           {"idempotency_key": f"nanoclaw-{message.id}-{i}"}))
            ids.append(str(_opt(sent, "id")))
        return SendResult(ids[0] if ids else None)

    async def _api(self, call: Any) -> Any:
        """Await one SDK call; transient failures are ChannelUnavailable, refusals DestinationRefused."""
        try:
            result = await call
        except resend.exceptions.ResendError as exc:
            code = _code(exc.code)
            reason = f"Resend answered {code or '?'} {exc.error_type}: {str(exc.message)[:200]}"
            if code in (401, 403):  # retried: nothing is lost while the owner renews the key
                log.error("resend.key_refused", status=code)
            if code is None or code >= 500 or code in (401, 403, 409, 429):
                self._failing = True
                raise ChannelUnavailable(reason) from exc
            raise DestinationRefused(reason) from exc
        if self._failing:
            self._failing = False
            self.host.channel_ready(self.type)
        return result


def _code(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _opt(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _str(obj: Any, key: str) -> str:
    value = _opt(obj, key)
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{key} missing or not a string")
    return value


def _read_threads(path: Path) -> dict[str, tuple[str, str, str]]:
    data = read_position(path, "resend")
    return {c: (e[0], e[1], e[2]) for c, e in (data.items() if isinstance(data, dict) else [])
            if isinstance(e, list) and len(e) == 3 and all(isinstance(v, str) for v in e)}
