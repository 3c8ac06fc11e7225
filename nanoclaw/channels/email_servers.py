"""The email channel's servers: its settings, TLS (a private CA, STARTTLS), the IMAP connection, SMTP submission.

Kept apart from `email.py` (how mail maps to chats) because this is where a
new user's setup goes wrong: a self-signed certificate (Proton Mail Bridge, a
home server), a relay that takes mail without a login, a server that offers
STARTTLS on 143. Each such failure becomes a `ConfigError` whose message says
what to change, so doctor and the dashboard show `failed (…; fix: …)` instead
of a reconnect loop in the log.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Awaitable, Mapping

import aioimaplib
import aiosmtplib

from nanoclaw.errors import ChannelUnavailable, ConfigError

IMAP_TIMEOUT = SMTP_TIMEOUT = 30.0
SECURITY = ("ssl", "starttls", "none")
SMTP_AUTH = ("login", "none")
CA_FIX = ("if the server is your own or Proton Mail Bridge, save its certificate (PEM) and set EMAIL_CA_FILE to "
          "that file in credentials.env; otherwise check the host name (see docs/channels/email.md)")


class ImapRefused(Exception):
    """The IMAP server answered NO or BAD: the session is restarted."""


@dataclass(frozen=True)
class MailSettings:
    address: str
    password: str
    username: str
    imap_host: str
    imap_port: int
    imap_security: str  # ssl (implicit TLS, 993) | starttls (143, upgraded) | none
    smtp_host: str
    smtp_port: int
    smtp_security: str  # ssl (465) | starttls (587) | none
    smtp_auth: str  # login | none (a relay that takes mail from this machine without a login)
    ca_file: str | None  # a PEM bundle trusted instead of the system's (self-signed servers)
    folder: str
    poll_seconds: float

    @classmethod
    def load(cls, extra: Mapping[str, str]) -> MailSettings:
        address = (extra.get("EMAIL_ADDRESS") or "").strip().lower()
        if "@" not in address:
            raise ConfigError("EMAIL_ADDRESS is not set (or not an address): the mailbox the assistant reads and"
                              " sends from, best a dedicated one; see docs/channels/email.md")
        password = extra.get("EMAIL_PASSWORD") or ""
        if not password:
            raise ConfigError("EMAIL_PASSWORD is not set: the mailbox's password; Gmail, iCloud and Outlook need an"
                              " app password (account security settings → App passwords); see docs/channels/email.md")
        security = _choice(extra, "EMAIL_SECURITY", "starttls", SECURITY)
        # EMAIL_SECURITY=starttls has always meant STARTTLS for SMTP and implicit TLS for IMAP (what most providers
        # offer); EMAIL_IMAP_SECURITY / EMAIL_SMTP_SECURITY choose each side on their own.
        imap_security = _choice(extra, "EMAIL_IMAP_SECURITY", "none" if security == "none" else "ssl", SECURITY)
        smtp_security = _choice(extra, "EMAIL_SMTP_SECURITY", security, SECURITY)
        ca_file = (extra.get("EMAIL_CA_FILE") or "").strip() or None
        if ca_file is not None and not Path(ca_file).expanduser().is_file():
            raise ConfigError(f"EMAIL_CA_FILE={ca_file!r} is not a file: point it at the server's certificate "
                              "(PEM), e.g. the one Proton Mail Bridge exports")
        domain = address.rpartition("@")[2]
        return cls(
            address=address, password=password, username=extra.get("EMAIL_USERNAME") or address,
            imap_host=extra.get("EMAIL_IMAP_HOST") or f"imap.{domain}",
            imap_port=_number(extra, "EMAIL_IMAP_PORT", 993 if imap_security == "ssl" else 143, int),
            imap_security=imap_security,
            smtp_host=extra.get("EMAIL_SMTP_HOST") or f"smtp.{domain}",
            smtp_port=_number(extra, "EMAIL_SMTP_PORT", 465 if smtp_security == "ssl" else 587, int),
            smtp_security=smtp_security, smtp_auth=_choice(extra, "EMAIL_SMTP_AUTH", "login", SMTP_AUTH),
            ca_file=str(Path(ca_file).expanduser()) if ca_file else None,
            folder=extra.get("EMAIL_FOLDER") or "INBOX",
            poll_seconds=_number(extra, "EMAIL_POLL_SECONDS", 60.0, float),
        )

    def tls_context(self) -> ssl.SSLContext:
        """The system's trust store, or only EMAIL_CA_FILE when set; certificates and host names are checked."""
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"EMAIL_CA_FILE={self.ca_file!r} holds no certificate this computer can read ({exc})",
                              "export the server's certificate as PEM and point EMAIL_CA_FILE at it") from exc


def _choice(extra: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (extra.get(name) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(allowed)}")
    return value


def _number(extra: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    value = extra.get(name)
    try:
        number = kind(value) if value else default
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive")
    return number


def tls_problem(exc: BaseException, server: str, setting: str) -> ConfigError | None:
    """A TLS failure that is a setting to change (an untrusted certificate, TLS on a plain port), or None."""
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, ssl.SSLCertVerificationError):
            why = error.verify_message or str(error)
            return ConfigError(f"the {server} presented a certificate this computer does not trust ({why})", CA_FIX)
        if isinstance(error, ssl.SSLError):
            return ConfigError(f"TLS with the {server} failed ({error.reason or error})",
                               f"check {setting} and the port: ssl is TLS from the first byte (993, 465), starttls "
                               "upgrades a plain connection (143, 587, 1143, 1025)")
    return None


# -- IMAP -----------------------------------------------------------------------


class Imap:
    """One IMAP connection whose commands give up when it drops (aioimaplib would wait for their answer forever)."""

    def __init__(self, client: aioimaplib.IMAP4) -> None:
        self.client = client
        self.lost = asyncio.Event()
        client.protocol.conn_lost_cb = lambda exc: self.lost.set()

    async def call(self, awaitable: Awaitable[Any], what: str, timeout: float | None = IMAP_TIMEOUT) -> Any:
        """The result of one command; a NO or BAD answer, a lost connection or a timeout raise."""
        task = asyncio.ensure_future(awaitable)
        gone = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait({task, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not task.done():
                task.cancel()
        if task not in done:
            raise ConnectionError(f"IMAP {what}: " + ("connection lost" if self.lost.is_set() else "no answer"))
        result = task.result()
        if isinstance(result, aioimaplib.Response) and result.result != "OK":
            raise ImapRefused(f"IMAP {what}: {result.result} {result.lines[-1:]!r}")
        return result

    async def starttls(self, context: ssl.SSLContext, host: str) -> None:
        """RFC 3501 STARTTLS: ask, then upgrade the same connection and learn the capabilities again.

        aioimaplib knows the command but has no call for it, so the upgrade is done here with asyncio's start_tls.
        """
        protocol = self.client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ConfigError(f"the IMAP server {host} does not offer STARTTLS",
                              "set EMAIL_IMAP_SECURITY=ssl (port 993), or none only for a server on this machine")
        await self.call(protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)),
                        "STARTTLS")
        loop = asyncio.get_running_loop()
        protocol.transport = await asyncio.wait_for(
            loop.start_tls(protocol.transport, protocol, context, server_hostname=host), IMAP_TIMEOUT)
        await self.call(protocol.capability(), "CAPABILITY")

    def close(self) -> None:
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()


async def open_imap(cfg: MailSettings) -> Imap:
    """Connect, secure, log in and select the folder; settings the server refuses raise ConfigError."""
    context = cfg.tls_context() if cfg.imap_security != "none" else None
    if cfg.imap_security == "ssl":
        client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(host=cfg.imap_host, port=cfg.imap_port, timeout=IMAP_TIMEOUT,
                                                        ssl_context=context)
    else:
        client = aioimaplib.IMAP4(host=cfg.imap_host, port=cfg.imap_port, timeout=IMAP_TIMEOUT)
    imap = Imap(client)
    try:
        await imap.call(imap.client.wait_hello_from_server(), "connect")
        if context is not None and cfg.imap_security == "starttls":
            await imap.starttls(context, cfg.imap_host)
        if (await imap.client.login(cfg.username, cfg.password)).result != "OK":
            raise ConfigError(f"the IMAP server {cfg.imap_host} refused the login of {cfg.username}",
                              "check EMAIL_USERNAME and EMAIL_PASSWORD (an app password for Gmail, iCloud, Outlook;"
                              " the Bridge password for Proton Mail Bridge)")
        if (await imap.client.select(cfg.folder)).result != "OK":
            raise ConfigError(f"EMAIL_FOLDER={cfg.folder!r}: the IMAP server has no such folder")
    except BaseException as exc:
        imap.close()
        problem = tls_problem(exc, f"IMAP server {cfg.imap_host}:{cfg.imap_port}", "EMAIL_IMAP_SECURITY")
        if problem is not None:
            raise problem from exc
        raise
    return imap


# -- SMTP -----------------------------------------------------------------------


def smtp_options(cfg: MailSettings) -> dict[str, Any]:
    """aiosmtplib's connection options for these settings (no login when EMAIL_SMTP_AUTH=none)."""
    options: dict[str, Any] = {
        "hostname": cfg.smtp_host, "port": cfg.smtp_port, "use_tls": cfg.smtp_security == "ssl",
        "start_tls": cfg.smtp_security == "starttls", "timeout": SMTP_TIMEOUT,
    }
    if cfg.smtp_security != "none":
        options["tls_context"] = cfg.tls_context()
    if cfg.smtp_auth == "login":
        options.update(username=cfg.username, password=cfg.password)
    return options


async def submit(cfg: MailSettings, mail: EmailMessage, recipients: list[str]) -> None:
    """Hand one mail to the SMTP server; TLS and login problems become ConfigError, the rest pass through."""
    try:
        await aiosmtplib.send(mail, sender=cfg.address, recipients=recipients, **smtp_options(cfg))
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise ConfigError(f"the SMTP server {cfg.smtp_host} refused the login ({exc.code})",
                          "check EMAIL_PASSWORD; a relay that needs no login wants EMAIL_SMTP_AUTH=none") from exc
    except aiosmtplib.SMTPException as exc:
        if "AUTH" in str(exc) and cfg.smtp_auth == "login" and not isinstance(exc, aiosmtplib.SMTPResponseException):
            raise ConfigError(f"the SMTP server {cfg.smtp_host} offers no login ({exc})",
                              "set EMAIL_SMTP_AUTH=none for a relay that takes mail without one") from exc
        problem = tls_problem(exc, f"SMTP server {cfg.smtp_host}:{cfg.smtp_port}", "EMAIL_SMTP_SECURITY")
        if problem is not None:
            raise problem from exc
        raise


async def check_smtp(cfg: MailSettings) -> None:
    """Connect, secure and log in without sending anything (setup and doctor)."""
    client = aiosmtplib.SMTP(**smtp_options(cfg))
    try:
        await client.connect()
        await client.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise ConfigError(f"the SMTP server {cfg.smtp_host} refused the login ({exc.code})",
                          "check EMAIL_PASSWORD; a relay that needs no login wants EMAIL_SMTP_AUTH=none") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        problem = tls_problem(exc, f"SMTP server {cfg.smtp_host}:{cfg.smtp_port}", "EMAIL_SMTP_SECURITY")
        if problem is not None:
            raise problem from exc
        raise ChannelUnavailable(f"cannot reach the SMTP server {cfg.smtp_host}:{cfg.smtp_port}: {exc}") from exc
