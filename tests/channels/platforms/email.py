"""Email for the channel contract: a fake IMAP mailbox the bot reads and a fake SMTP server it sends through.

A person writes by appending a mail to the bot's mailbox. The group chat is a mailing list (List-Post),
the DM chat a correspondent's address. What the bot sent is read back from the SMTP server; a sent
mail's `text` is its text/plain part, which keeps the Markdown as written (the HTML part is in raw).
"""

from __future__ import annotations

import mimetypes
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from pathlib import Path

from tests.channels.harness import Platform, PlatformMessage
from tests.fakes.imap_server import FakeImapServer
from tests.fakes.smtp_server import FakeSmtpServer, SentMail
from tests.fakes.tls import private_ca

BOT_ADDRESS = "andy@example.com"
BOT_PASSWORD = "app-password-1234"
LIST_ID = "Team list <team.lists.example.com>"


class EmailPlatform(Platform):
    channel_type = "email"
    group_chat = "team@lists.example.com"
    dm_chat = "u1@example.com"

    def __init__(self, *, idle: bool = True, tls: str = "none", trust: bool = True, smtp_auth: bool = True) -> None:
        """tls: none | starttls | ssl on both servers, their certificate from a private CA that the channel is
        told to trust (EMAIL_CA_FILE) unless `trust` is False; smtp_auth=False: a relay without a login."""
        self.imap = FakeImapServer(BOT_ADDRESS, BOT_PASSWORD, idle=idle)
        self.smtp = FakeSmtpServer(BOT_ADDRESS, BOT_PASSWORD, auth=smtp_auth)
        self.tls, self.trust, self.smtp_auth = tls, trust, smtp_auth

    async def start(self, tmp: Path) -> dict[str, str]:
        env = {"EMAIL_SECURITY": "none"}
        if self.tls != "none":
            ca = private_ca(tmp / "mail-tls")
            for server in (self.imap, self.smtp):
                server.tls, server.tls_context = self.tls, ca.server
            env = {"EMAIL_IMAP_SECURITY": self.tls, "EMAIL_SMTP_SECURITY": self.tls}
            if self.trust:
                env["EMAIL_CA_FILE"] = str(ca.ca_file)
        if not self.smtp_auth:
            env["EMAIL_SMTP_AUTH"] = "none"
        await self.imap.start()
        await self.smtp.start()
        return {
            "EMAIL_ADDRESS": BOT_ADDRESS, "EMAIL_PASSWORD": BOT_PASSWORD, **env,
            "EMAIL_IMAP_HOST": "127.0.0.1", "EMAIL_IMAP_PORT": str(self.imap.port),
            "EMAIL_SMTP_HOST": "127.0.0.1", "EMAIL_SMTP_PORT": str(self.smtp.port), "EMAIL_POLL_SECONDS": "0.2",
        }

    async def stop(self) -> None:
        await self.imap.stop()
        await self.smtp.stop()

    def mail(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, file: tuple[str, bytes] | None = None, from_bot: bool = False,
        subject: str = "Hello", html: str | None = None,
    ) -> EmailMessage:
        """The mail a person's client would send."""
        mail = EmailMessage()
        address = (chat or self.dm_chat) if dm else f"{sender}@example.com"
        mail["From"] = formataddr((sender_name, address))
        if dm:
            mail["To"] = BOT_ADDRESS
        else:
            lst = chat or self.group_chat
            mail["To"] = lst
            if mention:
                mail["Cc"] = BOT_ADDRESS
            mail["List-Id"] = LIST_ID
            mail["List-Post"] = f"<mailto:{lst}>"
            mail["Precedence"] = "list"
        mail["Subject"] = subject
        mail["Date"] = formatdate()
        mail["Message-ID"] = make_msgid(domain="example.com")
        if from_bot:
            mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(text)
        if html is not None:
            mail.add_alternative(html, subtype="html")
        if file is not None:
            kind = mimetypes.guess_type(file[0])[0] or "application/octet-stream"
            maintype, _, subtype = kind.partition("/")
            mail.add_attachment(file[1], maintype=maintype, subtype=subtype, filename=file[0])
        return mail

    def deliver(self, mail: EmailMessage | bytes) -> str:
        """Put a mail into the bot's mailbox; returns its Message-ID without angle brackets."""
        self.imap.append(mail if isinstance(mail, bytes) else mail.as_bytes())
        return "" if isinstance(mail, bytes) else str(mail["Message-ID"]).strip("<>")

    async def user_says(
        self, text: str, *, chat: str | None = None, sender: str = "u1", sender_name: str = "Alice",
        dm: bool = False, mention: bool = False, thread: str | None = None,
        file: tuple[str, bytes] | None = None, from_bot: bool = False,
    ) -> str:
        return self.deliver(self.mail(text, chat=chat, sender=sender, sender_name=sender_name, dm=dm,
                                      mention=mention, file=file, from_bot=from_bot))

    async def bot_messages(self, chat: str | None = None) -> list[PlatformMessage]:
        found = [_recorded(m) for m in self.smtp.sent]
        return [m for m in found if chat is None or m.chat == chat]

    async def send_malformed(self) -> None:
        self.deliver(b"\x00\xff\xfe this is not a mail at all\r\n\r\n")
        self.deliver(b"From: <<<@>>>\r\nSubject: no usable sender\r\n\r\nhello\r\n")
        self.deliver(b"")
        self.deliver(b"From: Eve <eve@example.com>\r\nTo: andy@example.com\r\nContent-Type: multipart/mixed\r\n\r\n")

    async def drop_connections(self) -> None:
        await self.imap.drop_connections()

    async def set_down(self, down: bool) -> None:
        await self.smtp.set_down(down)

    def bold(self, text: str) -> str:
        return f"**{text}**"  # the text/plain part keeps Markdown; the HTML part has <strong> (test_email checks it)


def _recorded(sent: SentMail) -> PlatformMessage:
    mail = sent.message
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    attachments = list(mail.iter_attachments())
    first = attachments[0] if attachments else None
    data = first.get_payload(decode=True) if first is not None else None
    return PlatformMessage(
        id=str(mail["Message-ID"]).strip("<>"),
        chat=",".join(sorted(a.lower() for _, a in getaddresses([str(mail["To"])]))),
        text=str(plain.get_content()).rstrip("\n") if plain is not None else "",
        file_name=first.get_filename() if first is not None else None,
        file_data=data if isinstance(data, bytes) else None,
        raw={"from": str(mail["From"]), "to": str(mail["To"]), "subject": str(mail["Subject"]),
             "in_reply_to": _header(mail, "In-Reply-To"), "references": _header(mail, "References"),
             "auto_submitted": mail["Auto-Submitted"], "rcpt": sent.recipients, "login": sent.login,
             "html": str(html.get_content()) if html is not None else None},
    )


def _header(mail: EmailMessage, name: str) -> str | None:
    value = mail[name]
    return " ".join(str(value).split()) if value is not None else None  # unfolded


PLATFORM = EmailPlatform
