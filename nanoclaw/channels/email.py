"""The email channel: mail in over IMAP (IDLE, or polling where the server lacks it), mail out over SMTP.

Owns the mapping between mail and chats. A chat is the address replies go to:
the correspondent's address for one-to-one mail (a DM), the list's posting
address (List-Post) for mailing-list mail, and for a conversation of several
people without a list the sorted, comma-joined addresses of everyone but the
assistant (replies go to all of them). Email has no threads the host sees;
replies keep the mail thread together with "Re: <subject>", In-Reply-To and
References taken from the last mail of the chat (kept in state/, so a restart
answers in the same thread).

Processed mail is marked \\Seen, so a restart delivers only what is new.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import re
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import Any

import aioimaplib
import aiosmtplib

from nanoclaw.channels.base import (
    Capabilities, Channel, FileAttachment, Health, InboundEvent, OutgoingMessage, SendResult, render_text,
)
from nanoclaw.channels.email_servers import IMAP_TIMEOUT, Imap, MailSettings, check_smtp, open_imap, submit
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.mail_text import (
    automated, html_to_text, is_reply_subject, reply_subject, strip_quotes, subject_for, to_mail_html,
)
from nanoclaw.channels.text import split_message
from nanoclaw.config import Settings
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger

log = get_logger(__name__)

MAX_TEXT = 100_000  # not a protocol limit: longer answers go out as several mails so each stays readable
MAX_FILE = 50 * 2**20
IDLE_RENEW = aioimaplib.TWENTY_NINE_MINUTES  # servers may drop an IDLE older than 30 minutes (RFC 2177)
RECENT_IDS = 1000
MAX_THREADS_KEPT = 500  # chats whose reply threading is kept across restarts (the most recent)

_LIST_POST = re.compile(r"<mailto:([^>?]+)", re.I)


class _Malformed(ValueError):
    """A mail without what the channel needs (a sender address)."""


@dataclass(frozen=True)
class _Thread:
    """The last mail of a chat: what a reply quotes in Subject, In-Reply-To and References."""

    subject: str
    message_id: str
    references: str


# -- reading mail -------------------------------------------------------------


def _part_text(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):  # unknown or lying charset: best effort rather than losing the mail
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _body(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain", "html"))
    if not isinstance(part, EmailMessage):
        return ""
    text = _part_text(part)
    return strip_quotes(html_to_text(text) if part.get_content_subtype() == "html" else text)


def _files(mail: EmailMessage) -> tuple[list[FileAttachment], list[str]]:
    files: list[FileAttachment] = []
    notes: list[str] = []
    for part in mail.iter_attachments():
        name = part.get_filename() or "attachment"
        if part.get_content_type() == "message/rfc822":  # a mail forwarded as attachment: pass it on whole
            inner = part.get_payload(0)
            data = inner.as_bytes() if isinstance(inner, EmailMessage) else None
            name = part.get_filename() or "message.eml"
        else:
            data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        if len(data) > MAX_FILE:
            notes.append(f"[attachment {name} ({len(data) // 2**20} MB) skipped: larger than 50 MB]")
            continue
        files.append(FileAttachment(name, data, part.get_content_type()))
    return files, notes


def _addresses(mail: EmailMessage, *headers: str) -> list[tuple[str, str]]:
    values = [str(v) for h in headers for v in (mail.get_all(h) or [])]
    return [(name, addr.strip().lower()) for name, addr in getaddresses(values) if "@" in addr]


# -- the channel --------------------------------------------------------------


class EmailChannel(Channel):
    type = "email"
    settings_asked = ("EMAIL_ADDRESS", "EMAIL_PASSWORD", "EMAIL_IMAP_HOST", "EMAIL_SMTP_HOST")
    capabilities = Capabilities(
        threads=False, edits=False, reactions=False, cards=False, typing=False, files=True,
        max_message_length=MAX_TEXT,
        formatting="Email: write Markdown (**bold**, _italic_, lists, `code`, [links](url), tables); it is sent"
                   " as HTML with the Markdown as the plain-text part. Paragraphs, not chat fragments.",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._cfg: MailSettings | None = None
        self._task: asyncio.Task[None] | None = None
        self._threads: dict[str, _Thread] = {}  # chat → its last inbound mail, for replies in the same mail thread
        self._threads_file: Path | None = None
        self._failing = False  # the last send failed transiently: tell the host when one succeeds again
        # Mail passed on but not yet marked seen when the connection dropped comes again: pass it once.
        self._recent: deque[str] = deque(maxlen=RECENT_IDS)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._cfg = MailSettings.load(self.host.settings.extra)
        self._threads_file = self.host.settings.state_dir / f"email-threads-{_digest(self._cfg.address)}.json"
        saved = read_position(self._threads_file, self.type)
        for chat, entry in (saved.items() if isinstance(saved, dict) else []):
            if isinstance(entry, list) and len(entry) == 3 and all(isinstance(v, str) for v in entry):
                self._threads[chat] = _Thread(*entry)
        session: Imap | None = None
        try:
            session = await self._connect()
        except (OSError, asyncio.TimeoutError, aioimaplib.AioImapException) as exc:
            # The server is unreachable now: keep the host running and connect in the background.
            log.warning("email.imap_unavailable", host=self._cfg.imap_host, error=str(exc) or type(exc).__name__)
            self.report(Health.retrying(str(exc) or type(exc).__name__, 0.5))
        self._task = asyncio.create_task(self._run(session))
        log.info("email.started", address=self._cfg.address, folder=self._cfg.folder)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def _save_threads(self) -> None:
        if self._threads_file is not None:
            kept = dict(list(self._threads.items())[-MAX_THREADS_KEPT:])  # the most recent chats
            write_position(self._threads_file, {c: [t.subject, t.message_id, t.references] for c, t in kept.items()},
                           self.type)

    async def _connect(self) -> Imap:
        imap = await open_imap(self._config())
        self.report(Health.connected())
        return imap

    @classmethod
    async def identify(cls, settings: Settings) -> str:
        """Log in to IMAP (and select the folder) and to SMTP, then leave: the mailbox, as the channel will use it."""
        cfg = MailSettings.load(settings.extra)
        try:
            imap = await open_imap(cfg)
        except (OSError, asyncio.TimeoutError, aioimaplib.AioImapException) as exc:
            raise ChannelUnavailable(f"cannot reach the IMAP server {cfg.imap_host}:{cfg.imap_port}: "
                                     f"{exc or type(exc).__name__}") from exc
        imap.close()
        await check_smtp(cfg)
        return f"{cfg.address} (IMAP {cfg.imap_host}:{cfg.imap_port}, SMTP {cfg.smtp_host}:{cfg.smtp_port})"

    async def _run(self, session: Imap | None) -> None:
        """Read mail until stopped; every failure of a session leads to a new one after a growing pause."""
        backoff = self.backoff()
        while True:
            imap = None
            try:
                imap = session or await self._connect()
                session = None
                backoff.reset()
                await self._serve(imap)
            except asyncio.CancelledError:
                raise
            except ConfigError as exc:  # a certificate, a login: the owner must change a setting
                await backoff.fail(exc.reason, exc.fix)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any server misbehaviour
                await backoff.wait(str(exc) or type(exc).__name__)
            finally:
                if imap is not None:
                    imap.close()

    async def _serve(self, imap: Imap) -> None:
        idle = imap.client.has_capability("IDLE")
        log.info("email.connected", idle=idle)
        while True:
            await self._fetch_unseen(imap)
            if idle:
                await self._idle(imap)
            else:
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(imap.lost.wait(), self._config().poll_seconds)
                if imap.lost.is_set():
                    raise ConnectionError("the IMAP server closed the connection")

    async def _idle(self, imap: Imap) -> None:
        """Wait in IDLE until the server reports a change (new mail); renewed before servers give up on it."""
        done = await imap.call(imap.client.idle_start(timeout=IDLE_RENEW), "IDLE")
        await imap.call(imap.client.wait_server_push(timeout=IDLE_RENEW + IMAP_TIMEOUT), "IDLE", timeout=None)
        imap.client.idle_done()
        await imap.call(done, "DONE")

    async def _fetch_unseen(self, imap: Imap) -> None:
        found = await imap.call(imap.client.uid_search("UNSEEN", charset=None), "UID SEARCH")
        uids = [t for line in found.lines[:-1] for t in bytes(line).decode(errors="replace").split() if t.isdigit()]
        for uid in uids:
            fetched = await imap.call(imap.client.uid("fetch", uid, "BODY.PEEK[]"), "UID FETCH")
            raw = next((bytes(line) for line in fetched.lines if isinstance(line, bytearray)), None)
            if raw is not None:  # None: the mail was deleted in between
                await self._deliver(raw, uid)
            await imap.call(imap.client.uid("store", uid, "+FLAGS.SILENT", r"(\Seen)"), "UID STORE")

    # -- inbound -------------------------------------------------------------

    async def _deliver(self, raw: bytes, uid: str) -> None:
        try:
            mail = BytesParser(policy=policy.default).parsebytes(raw)
            assert isinstance(mail, EmailMessage)
            event = self._event(mail, uid)
        except Exception as exc:  # noqa: BLE001 - anyone can send anything: one bad mail must not stop the others
            log.warning("email.malformed", uid=uid, error=str(exc) or type(exc).__name__)
            return
        if event is None or event.message_id in self._recent:
            return
        self._recent.append(event.message_id)
        log.debug("email.received", chat=event.platform_id, message_id=event.message_id, text=event.text)
        try:
            result = await self.host.receive(event)
        except Exception as exc:  # noqa: BLE001 - keep reading; the mail is marked seen either way
            log.error("email.receive_failed", message_id=event.message_id, error=str(exc))
            return
        if not result.accepted:
            log.info("email.not_accepted", chat=event.platform_id, error=result.error)

    def _event(self, mail: EmailMessage, uid: str) -> InboundEvent | None:
        own = self._config().address
        senders = _addresses(mail, "From")
        if not senders:
            raise _Malformed("no sender address")
        sender_name, sender = senders[0]
        if sender == own:  # our own mail (a copy in the inbox, a list echoing our post)
            return None
        recipients = {addr for _, addr in _addresses(mail, "To", "Cc")}
        post = _LIST_POST.search(str(mail.get("List-Post", "")))
        others = recipients - {own, sender}
        if post:
            chat, is_dm, chat_name = post.group(1).strip().lower(), False, _list_name(mail, post.group(1))
        elif others:
            chat, is_dm, chat_name = ",".join(sorted(others | {sender})), False, str(mail.get("Subject", "")) or None
        else:
            chat, is_dm, chat_name = sender, True, sender_name or sender
        subject = str(mail.get("Subject", "")).strip()
        message_id = str(mail.get("Message-ID", "")).strip()
        text = _body(mail)
        if subject and not mail.get("In-Reply-To") and not is_reply_subject(subject):
            text = f"Subject: {subject}\n\n{text}".strip()  # a new conversation: its subject is part of the request
        files, notes = _files(mail)
        text = "\n".join([text, *notes]).strip()
        if not text and not files:
            raise _Malformed("no text and no attachment")
        from_bot = automated(dict(mail.items()), sender, listed=post is not None)
        if message_id and not from_bot:  # answers continue the people's mail thread, not a robot's
            references = " ".join([*str(mail.get("References", "")).split()[-20:], message_id])
            self._threads.pop(chat, None)  # the most recent chat last
            self._threads[chat] = _Thread(subject, message_id, references)
            self._save_threads()
        return InboundEvent(
            channel_type=self.type, platform_id=chat, message_id=message_id.strip("<>") or f"uid-{uid}",
            text=text, sender_id=sender, sender_name=sender_name or sender, is_dm=is_dm, chat_name=chat_name,
            mentions_assistant=is_dm or own in recipients, files=tuple(files),
            from_bot=from_bot, payload={"subject": subject},
        )

    # -- outbound ------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        recipients = [a.strip() for a in message.route.platform_id.split(",") if a.strip()]
        if not recipients or not all("@" in a for a in recipients):
            raise DestinationRefused(f"email chat {message.route.platform_id!r} is not a list of addresses")
        text = render_text(message) if message.kind in ("card", "question") else (message.text or "")
        pieces = split_message(text, MAX_TEXT)
        ids = []
        for i, piece in enumerate(pieces):
            file = message.file if i == len(pieces) - 1 else None
            mail = self._compose(message.route.platform_id, recipients, piece, file)
            await self._submit(mail, recipients)
            ids.append(str(mail["Message-ID"]).strip("<>"))
        if self._failing:
            self._failing = False
            self.host.channel_ready(self.type)
        return SendResult(ids[0])

    def _compose(self, chat: str, recipients: list[str], text: str, file: FileAttachment | None) -> EmailMessage:
        cfg = self._config()
        thread = self._threads.get(chat)
        mail = EmailMessage()
        mail["From"] = formataddr((self.host.settings.assistant_name, cfg.address))
        mail["To"] = ", ".join(recipients)
        if thread is not None:
            mail["Subject"] = reply_subject(thread.subject)
            mail["In-Reply-To"] = thread.message_id
            mail["References"] = thread.references
        else:
            mail["Subject"] = subject_for(text) or (file.name if file else self.host.settings.assistant_name)
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = make_msgid(domain=cfg.address.rpartition("@")[2])
        # RFC 3834: marks us as a program, so vacation responders and other assistants do not answer in a loop.
        mail["Auto-Submitted"] = "auto-replied" if thread is not None else "auto-generated"
        mail.set_content(text)
        mail.add_alternative(to_mail_html(text), subtype="html")
        if file is not None:
            kind = file.mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            maintype, _, subtype = kind.partition("/")
            mail.add_attachment(file.data, maintype=maintype, subtype=subtype or "octet-stream", filename=file.name)
        return mail

    async def _submit(self, mail: EmailMessage, recipients: list[str]) -> None:
        cfg = self._config()
        try:
            await submit(cfg, mail, recipients)
        except ConfigError as exc:
            # Retrying is right: the owner fixes the setting, restarts, and the waiting mail goes out.
            log.error("email.smtp_refused", host=cfg.smtp_host, error=exc.reason)
            self._failing = True
            self.report(Health.failed(exc.reason, exc.fix))
            raise ChannelUnavailable(str(exc)) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(r.code >= 500 for r in exc.recipients):
                raise DestinationRefused(f"the SMTP server refused {recipients}: {exc.recipients[0].message}") from exc
            self._failing = True
            raise ChannelUnavailable(f"the SMTP server deferred {recipients}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise DestinationRefused(f"the SMTP server refused the mail: {exc.code} {exc.message}") from exc
            self._failing = True
            raise ChannelUnavailable(f"the SMTP server deferred the mail: {exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            self._failing = True
            raise ChannelUnavailable(f"cannot reach the SMTP server {cfg.smtp_host}:{cfg.smtp_port}: {exc}") from exc

    def _config(self) -> MailSettings:
        if self._cfg is None:
            raise ChannelUnavailable("the email channel is not started")
        return self._cfg


def _list_name(mail: EmailMessage, post: str) -> str:
    """The list's display name from List-Id ("Team list <team.lists.example.com>"), else its address."""
    list_id = str(mail.get("List-Id", ""))
    name = list_id.partition("<")[0].strip().strip('"')
    return name or post.strip()


def _digest(address: str) -> str:
    return hashlib.sha256(address.lower().encode()).hexdigest()[:12]
