"""A fake IMAP server on 127.0.0.1: one mailbox, the IMAP4rev1 subset aioimaplib uses to wait for and read mail.

CAPABILITY (IDLE optional), STARTTLS (with `tls="starttls"`; `tls="ssl"` is TLS from the first byte), LOGIN, SELECT, UID SEARCH (UNSEEN, ALL, uid sets), UID FETCH (BODY.PEEK[],
BODY[], RFC822, FLAGS), UID STORE ±FLAGS[.SILENT], IDLE/DONE with untagged EXISTS when mail arrives,
NOOP, LOGOUT. A test "writes" mail with `append` and drops clients with `drop_connections`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, field


@dataclass
class StoredMail:
    uid: int
    data: bytes
    flags: set[str] = field(default_factory=set)


@dataclass(eq=False)  # hashed by identity: kept in a set of live clients
class _Client:
    writer: asyncio.StreamWriter
    selected: bool = False
    known: int = 0  # the EXISTS count this client was last told
    idle_tag: str | None = None
    secure: bool = False  # TLS is on (from the start, or after STARTTLS)


class FakeImapServer:
    def __init__(self, user: str, password: str, *, idle: bool = True, folder: str = "INBOX",
                 tls: str = "none", tls_context: ssl.SSLContext | None = None) -> None:
        self.user, self.password, self.idle, self.folder = user, password, idle, folder
        self.tls, self.tls_context = tls, tls_context
        self.mails: list[StoredMail] = []
        self.commands: list[str] = []  # every command line received (LOGIN's password masked)
        self.logins = 0
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._next_uid = 1
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                  ssl=self.tls_context if self.tls == "ssl" else None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await self.drop_connections()
        if self._server is not None:
            self._server.close()
        if self._tasks:  # each connection's task ends before the loop does (a TLS transport closes a turn later)
            await asyncio.wait(self._tasks, timeout=2)
            for task in self._tasks:
                task.cancel()

    def append(self, data: bytes) -> int:
        """Deliver a mail into the mailbox; clients waiting in IDLE hear about it at once."""
        mail = StoredMail(self._next_uid, data)
        self._next_uid += 1
        self.mails.append(mail)
        for client in list(self._clients):
            if client.idle_tag is not None:
                self._tell_exists(client)
        return mail.uid

    def seen(self, uid: int) -> bool:
        return any(m.uid == uid and "\\Seen" in m.flags for m in self.mails)

    async def drop_connections(self) -> None:
        for client in list(self._clients):
            client.writer.transport.abort()
        self._clients.clear()
        await asyncio.sleep(0)

    # -- protocol ------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer, secure=self.tls == "ssl")
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._clients.add(client)
        writer.write(b"* OK fake IMAP server ready\r\n")
        try:
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                tag, _, name = text.partition(" ")
                if name.strip().upper() == "STARTTLS" and self.tls == "starttls" and not client.secure:
                    self.commands.append(text)
                    self._send(client, f"{tag} OK Begin TLS negotiation now")
                    await writer.drain()
                    assert self.tls_context is not None
                    await writer.start_tls(self.tls_context)
                    client.secure = True
                    continue
                self._handle(client, text)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._clients.discard(client)
            writer.transport.abort()

    def _handle(self, client: _Client, line: str) -> None:
        if client.idle_tag is not None:
            if line.strip().upper() == "DONE":
                self._send(client, f"{client.idle_tag} OK IDLE terminated")
                client.idle_tag = None
            return
        tag, _, rest = line.partition(" ")
        name, _, args = rest.partition(" ")
        name = name.upper()
        self.commands.append(f"{tag} LOGIN ***" if name == "LOGIN" else line)
        if name == "UID":
            sub, _, args = args.partition(" ")
            name = f"UID {sub.upper()}"
        handler = {
            "CAPABILITY": self._capability, "LOGIN": self._login, "SELECT": self._select, "NOOP": self._noop,
            "LOGOUT": self._logout, "IDLE": self._idle, "UID SEARCH": self._search, "UID FETCH": self._fetch,
            "UID STORE": self._store,
        }.get(name)
        if handler is None:
            self._send(client, f"{tag} BAD unknown command {name}")
            return
        if name.startswith("UID") or name == "IDLE":
            if not client.selected:
                self._send(client, f"{tag} BAD no mailbox selected")
                return
        handler(client, tag, args)

    def _send(self, client: _Client, text: str | bytes) -> None:
        client.writer.write(text if isinstance(text, bytes) else text.encode() + b"\r\n")

    def _tell_exists(self, client: _Client) -> None:
        if client.selected and client.known != len(self.mails):
            client.known = len(self.mails)
            self._send(client, f"* {client.known} EXISTS")

    def _capability(self, client: _Client, tag: str, args: str) -> None:
        starttls = " STARTTLS LOGINDISABLED" if self.tls == "starttls" and not client.secure else ""
        self._send(client, "* CAPABILITY IMAP4rev1" + (" IDLE" if self.idle else "") + starttls)
        self._send(client, f"{tag} OK CAPABILITY completed")

    def _login(self, client: _Client, tag: str, args: str) -> None:
        if self.tls == "starttls" and not client.secure:
            self._send(client, f"{tag} NO [PRIVACYREQUIRED] LOGIN only after STARTTLS")
            return
        user, _, password = args.partition(" ")
        if password.startswith('"'):
            password = re.sub(r'\\(.)', r"\1", password[1:-1])
        if user.strip('"') == self.user and password == self.password:
            self.logins += 1
            self._send(client, f"{tag} OK LOGIN completed")
        else:
            self._send(client, f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")

    def _select(self, client: _Client, tag: str, args: str) -> None:
        if args.strip('"').upper() != self.folder.upper():
            self._send(client, f"{tag} NO no such mailbox")
            return
        client.selected, client.known = True, len(self.mails)
        self._send(client, f"* {client.known} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1] UIDs valid\r\n"
                           f"* OK [UIDNEXT {self._next_uid}] Predicted next UID")
        self._send(client, f"{tag} OK [READ-WRITE] SELECT completed")

    def _noop(self, client: _Client, tag: str, args: str) -> None:
        self._tell_exists(client)
        self._send(client, f"{tag} OK NOOP completed")

    def _logout(self, client: _Client, tag: str, args: str) -> None:
        self._send(client, f"* BYE logging out\r\n{tag} OK LOGOUT completed")
        client.writer.close()

    def _idle(self, client: _Client, tag: str, args: str) -> None:
        if not self.idle:
            self._send(client, f"{tag} BAD IDLE not supported")
            return
        client.idle_tag = tag
        self._send(client, "+ idling")
        self._tell_exists(client)  # mail that came in since the client last looked

    def _matching(self, uid_set: str) -> list[tuple[int, StoredMail]]:
        """(sequence number, mail) for a uid set such as 3, 1:4, 5:*, 1,3."""
        wanted: list[tuple[int, int]] = []
        for item in uid_set.split(","):
            low, _, high = item.partition(":")
            top = max((m.uid for m in self.mails), default=0)
            a = top if low == "*" else int(low)
            b = a if not high else top if high == "*" else int(high)
            wanted.append((min(a, b), max(a, b)))
        return [(seq, m) for seq, m in enumerate(self.mails, 1) if any(a <= m.uid <= b for a, b in wanted)]

    def _search(self, client: _Client, tag: str, args: str) -> None:
        words = args.split()
        if len(words) >= 2 and words[0].upper() == "CHARSET":
            words = words[2:]
        found = list(self.mails)
        for word in words:
            if word.upper() == "UNSEEN":
                found = [m for m in found if "\\Seen" not in m.flags]
            elif word.upper() == "ALL":
                pass
            elif re.fullmatch(r"[\d:*,]+", word):
                uids = {m.uid for _, m in self._matching(word)}
                found = [m for m in found if m.uid in uids]
            else:
                self._send(client, f"{tag} BAD unsupported search key {word}")
                return
        self._send(client, "* SEARCH" + "".join(f" {m.uid}" for m in found))
        self._send(client, f"{tag} OK SEARCH completed")

    def _fetch(self, client: _Client, tag: str, args: str) -> None:
        uid_set, _, items = args.partition(" ")
        items = items.upper()
        for seq, mail in self._matching(uid_set):
            parts = [f"UID {mail.uid}"]
            body: bytes | None = None
            if "BODY.PEEK[]" in items or "BODY[]" in items or "RFC822" in items:
                if "BODY.PEEK[]" not in items:
                    mail.flags.add("\\Seen")
                key = "RFC822" if "RFC822" in items else "BODY[]"
                body = mail.data
                parts.append(f"{key} {{{len(body)}}}")
            if "FLAGS" in items:
                parts.insert(1, f"FLAGS ({' '.join(sorted(mail.flags))})")
            head = (f"* {seq} FETCH (" + " ".join(parts)).encode()
            self._send(client, head + b")\r\n" if body is None else head + b"\r\n" + body + b")\r\n")
        self._send(client, f"{tag} OK FETCH completed")

    def _store(self, client: _Client, tag: str, args: str) -> None:
        match = re.fullmatch(r"(\S+) ([+-]?)FLAGS(\.SILENT)? \(?([^)]*)\)?", args.strip(), re.I)
        if match is None:
            self._send(client, f"{tag} BAD bad STORE arguments")
            return
        uid_set, sign, silent, flags = match.groups()
        for seq, mail in self._matching(uid_set):
            change = set(flags.split())
            mail.flags = mail.flags | change if sign == "+" else mail.flags - change if sign == "-" else change
            if not silent:
                self._send(client, f"* {seq} FETCH (UID {mail.uid} FLAGS ({' '.join(sorted(mail.flags))}))")
        self._send(client, f"{tag} OK STORE completed")
