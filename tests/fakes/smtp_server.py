"""A fake SMTP submission server on 127.0.0.1 (aiosmtpd, AUTH LOGIN/PLAIN): records every mail.

`tls`: none, starttls (required before mail) or ssl (TLS from the first byte); `auth=False` is a relay that
takes mail without a login and offers no AUTH at all.

`set_down(True)` closes the listening socket (connection refused, as in an outage); `set_down(False)`
listens on the same port again. `reject_with` makes the next mails fail with that SMTP reply.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class SentMail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None


class FakeSmtpServer:
    def __init__(self, user: str, password: str, *, tls: str = "none", tls_context: ssl.SSLContext | None = None,
                 auth: bool = True) -> None:
        self.user, self.password = user, password
        self.tls, self.tls_context, self.auth = tls, tls_context, auth
        self.sent: list[SentMail] = []
        self.reject_with: str | None = None  # e.g. "550 5.1.1 no such user": answer DATA with it
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        await self._listen()
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def set_down(self, down: bool) -> None:
        if down:
            await self.stop()
        elif self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", self.port,
                                                ssl=self.tls_context if self.tls == "ssl" else None)
        self.port = self._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def _protocol(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH without TLS is what we want on 127.0.0.1; aiosmtpd warns about it
            warnings.simplefilter("ignore", UserWarning)
            starttls = self.tls == "starttls"
            return SMTP(self, hostname="fake-smtp.test", authenticator=self._authenticate if self.auth else None,
                        auth_required=self.auth, auth_require_tls=False,
                        tls_context=self.tls_context if starttls else None, require_starttls=starttls)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
            self.user, self.password)
        return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reject_with is not None:
            return self.reject_with
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or b"")
        assert isinstance(message, EmailMessage)
        self.sent.append(SentMail(str(envelope.mail_from), list(envelope.rcpt_tos), message,
                                  session.auth_data if isinstance(session.auth_data, str) else None))
        return "250 2.0.0 OK: queued"
