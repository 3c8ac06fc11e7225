"""The Signal channel: talks to signal-cli's daemon in HTTP mode (`signal-cli -a +NUMBER daemon --http`).

Owns the JSON-RPC calls to `POST {SIGNAL_RPC_URL}/api/v1/rpc` (send, edits, reactions,
typing, attachment download), the Server-Sent Events stream of `GET /api/v1/events` (inbound
messages, reconnected with backoff), and the mapping between Signal envelopes and NanoClaw
chats: a group is `group:<base64 group id>`, a DM is the person's number (or ACI when the
number is hidden), a message id is `<author>:<timestamp>` because Signal addresses a message
by its author and sent timestamp. Markdown goes out as plain text plus Signal text styles.

No well-kept Python client exists for signal-cli's JSON-RPC daemon (`signalbot` and similar
target bbernhard's separate REST wrapper), so this module speaks it with aiohttp directly.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import mimetypes
import urllib.parse
from typing import Any, AsyncIterator

import aiohttp

from nanoclaw.channels.base import (
    Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult, render_text,
)
from nanoclaw.channels.text import Dialect, convert, split_message
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

DEFAULT_RPC_URL = "http://127.0.0.1:8080"
MAX_LENGTH = 2000
MAX_FILE_BYTES = 50 * 2**20
GROUP_PREFIX = "group:"
_MENTION_PLACEHOLDER = "\ufffc"  # Signal puts U+FFFC where a mention sits in the text
_TYPING_REFRESH = 10.0  # Signal hides a typing indicator after 15 s unless it is sent again
_TYPING_MAX = 300.0  # stop refreshing even if the host never says "off"
_FIRST_CONNECT_WAIT = 5.0

# Markdown is rendered with private-use markers around styled runs, which become textStyle ranges.
_STYLES = {"\ue000": "BOLD", "\ue002": "ITALIC", "\ue004": "STRIKETHROUGH", "\ue006": "MONOSPACE"}
_CLOSERS = {chr(ord(opener) + 1): opener for opener in _STYLES}
_MARKERS = frozenset(_STYLES) | frozenset(_CLOSERS)
_SIGNAL_DIALECT = Dialect(
    bold=("\ue000", "\ue001"), italic=("\ue002", "\ue003"), strike=("\ue004", "\ue005"),
    code=("\ue006", "\ue007"), pre=("\ue006", "\ue007"),
    link=lambda text, href: f"{text} ({href})" if text != href else href,
    escape=lambda s: "".join(c for c in s if c not in _MARKERS),  # the agent's text can never forge a style
)

# JSON-RPC error codes of signal-cli that mean "try again later" (IO error, rate limit, internal error).
_TRANSIENT_CODES = {-3, -5, -32603}
_TRANSIENT_RESULTS = {"NETWORK_FAILURE", "RATE_LIMIT_FAILURE"}


class _Malformed(ValueError):
    """A platform payload that does not have the shape signal-cli documents."""


def to_signal(markdown: str) -> tuple[str, list[tuple[int, int, str]]]:
    """CommonMark → (plain text, [(start, length, STYLE)]) with offsets in code points."""
    plain: list[str] = []
    open_at: dict[str, list[int]] = {}
    styles: list[tuple[int, int, str]] = []
    for char in convert(markdown, _SIGNAL_DIALECT):
        if char in _STYLES:
            open_at.setdefault(char, []).append(len(plain))
        elif char in _CLOSERS and open_at.get(_CLOSERS[char]):
            start = open_at[_CLOSERS[char]].pop()
            if len(plain) > start:
                styles.append((start, len(plain) - start, _STYLES[_CLOSERS[char]]))
        elif char not in _MARKERS:
            plain.append(char)
    return "".join(plain), sorted(styles)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _pieces(markdown: str) -> list[tuple[str, list[str]]]:
    """The message split at Signal's limit, each piece with its textStyle ranges in UTF-16 units."""
    plain, styles = to_signal(markdown)
    result: list[tuple[str, list[str]]] = []
    position = 0
    for piece in split_message(plain, MAX_LENGTH):
        begin = plain.find(piece, position)  # pieces are substrings of `plain`, in order
        begin = begin if begin >= 0 else position
        end = begin + len(piece)
        position = end
        ranges = []
        for start, length, style in styles:
            lo, hi = max(start, begin), min(start + length, end)
            if lo < hi:
                offset = _utf16_len(piece[: lo - begin])
                ranges.append(f"{offset}:{_utf16_len(piece[lo - begin:hi - begin])}:{style}")
        result.append((piece, ranges))
    return result


def _target(platform_id: str) -> dict[str, Any]:
    """JSON-RPC params naming the chat: a group id or one recipient."""
    if platform_id.startswith(GROUP_PREFIX):
        return {"groupId": platform_id[len(GROUP_PREFIX):]}
    return {"recipient": [platform_id]}


def _split_id(platform_message_id: str) -> tuple[str, int]:
    """`<author>:<timestamp>` → (author, timestamp); authors are numbers or ACIs, neither contains ':'."""
    author, _, timestamp = platform_message_id.rpartition(":")
    if not author or not timestamp.isdigit():
        raise DestinationRefused(f"{platform_message_id!r} is not a Signal message id (<author>:<timestamp>)")
    return author, int(timestamp)


def _data_uri(file: FileAttachment) -> str:
    mime = file.mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    name = urllib.parse.quote(file.name, safe="")  # signal-cli URL-decodes data URI parameters
    return f"data:{mime};filename={name};base64,{base64.b64encode(file.data).decode('ascii')}"


def _rpc_error(method: str, error: Any) -> Exception:
    """A JSON-RPC error as ChannelUnavailable (retry later) or DestinationRefused (permanent)."""
    if not isinstance(error, dict):
        return ChannelUnavailable(f"signal-cli {method}: malformed error {error!r}")
    code, message = error.get("code"), str(error.get("message") or "")
    response = (error.get("data") or {}).get("response") if isinstance(error.get("data"), dict) else None
    results = response.get("results") if isinstance(response, dict) else None
    kinds = {r.get("type") for r in results if isinstance(r, dict)} if isinstance(results, list) else set()
    text = f"signal-cli {method} failed ({code}): {message}"
    if code in _TRANSIENT_CODES or kinds & _TRANSIENT_RESULTS:
        return ChannelUnavailable(text)
    return DestinationRefused(text)


class SignalChannel(Channel):
    type = "signal"
    settings_asked = ("SIGNAL_ACCOUNT", "SIGNAL_RPC_URL")
    capabilities = Capabilities(
        edits=True, reactions=True, typing=True, files=True, max_message_length=MAX_LENGTH,
        formatting="Signal: Markdown **bold**, *italic*, ~~strike~~ and `code` show as Signal text styles; "
        "no headings, tables or link markup (links are shown as text (url))",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._session: aiohttp.ClientSession | None = None
        self._listener: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._last_event_id: str | None = None
        self._ids = itertools.count(1)
        self._typing: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        extra = self.host.settings.extra
        self.account = (extra.get("SIGNAL_ACCOUNT") or "").strip()
        if not self.account:
            raise ConfigError(
                "SIGNAL_ACCOUNT is not set: put the bot's Signal number (e.g. +15551234567), the one signal-cli "
                "registered or linked, in ~/.config/nanoclaw/credentials.env (see docs/channels/signal.md)"
            )
        self.url = (extra.get("SIGNAL_RPC_URL") or DEFAULT_RPC_URL).rstrip("/")
        self.bot_numbers = {n.strip() for n in (extra.get("SIGNAL_BOT_NUMBERS") or "").split(",") if n.strip()}
        # read_bufsize: one SSE line holds a whole envelope; aiohttp refuses lines over twice this size
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), read_bufsize=2**20)
        self._listener = asyncio.create_task(self._listen(), name="signal-events")
        try:  # messages sent before the stream is open would be missed: wait briefly for it
            await asyncio.wait_for(self._connected.wait(), _FIRST_CONNECT_WAIT)
        except asyncio.TimeoutError:
            log.warning("signal.daemon_unreachable", url=self.url, hint="is `signal-cli daemon --http` running?")

    async def stop(self) -> None:
        tasks = [*self._typing.values(), *([self._listener] if self._listener else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._typing.clear()
        if self._session is not None:
            await self._session.close()

    # ---- inbound -------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Read the event stream forever; reconnect with exponential backoff (0.5 s doubling to 30 s)."""
        assert self._session is not None
        backoff = self.backoff()
        while True:
            headers = {"Accept": "text/event-stream"}
            if self._last_event_id:  # signal-cli replays what we missed while away
                headers["Last-Event-ID"] = self._last_event_id
            error = "stream ended"
            try:
                async with self._session.get(
                    f"{self.url}/api/v1/events", params={"account": self.account}, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),  # keep-alives every 15 s
                ) as resp:
                    if resp.status != 200:
                        raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
                    if not self._connected.is_set():
                        log.info("signal.connected", url=self.url)
                    self._connected.set()
                    self.host.channel_ready(self.type)
                    backoff.reset()
                    async for data in self._sse(resp):
                        await self._dispatch(data)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            await backoff.wait(error)

    async def _sse(self, resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
        """The `data` of each Server-Sent Event (multi-line data joined by newlines)."""
        data: list[str] = []
        async for raw in resp.content:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if data:
                    yield "\n".join(data)
                data = []
            elif line.startswith(":"):
                continue  # keep-alive comment
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                elif name == "id":
                    self._last_event_id = value

    async def _dispatch(self, data: str) -> None:
        """One event of the stream; malformed ones are logged and skipped, never raised."""
        try:
            event = await self._to_event(json.loads(data))
        except Exception as exc:  # any shape we did not foresee: skip it, the stream goes on
            log.warning("signal.malformed_event", error=f"{type(exc).__name__}: {exc}", size=len(data))
            return
        if event is not None:
            try:
                await self.host.receive(event)
            except Exception as exc:  # the stream must survive whatever the host does with one message
                log.error("signal.receive_failed", message_id=event.message_id, error=f"{type(exc).__name__}: {exc}")

    async def _to_event(self, payload: Any) -> InboundEvent | None:
        """An InboundEvent for a person's (or another bot's) message; None for everything else."""
        if not isinstance(payload, dict):
            raise _Malformed("event is not an object")
        params = payload.get("params", payload)  # a bare {envelope, account} or a JSON-RPC "receive" notification
        if isinstance(params, dict) and "result" in params and "envelope" not in params:
            params = params["result"]  # subscribeReceive wraps it once more
        if not isinstance(params, dict) or (params.get("exception") and "envelope" not in params):
            return None  # e.g. a decryption failure reported without an envelope
        if params.get("account") not in (None, self.account):
            return None  # another account of a multi-account daemon
        envelope = params["envelope"]
        if not isinstance(envelope, dict):
            raise _Malformed("envelope is not an object")
        source = envelope.get("sourceNumber") or envelope.get("source") or envelope.get("sourceUuid")
        data = envelope.get("dataMessage")
        if source == self.account or "syncMessage" in envelope or data is None:
            return None  # our own messages, receipts, typing, calls, edits, stories
        if not isinstance(source, str) or not isinstance(data, dict):
            raise _Malformed("envelope without a source or with a malformed dataMessage")
        timestamp = envelope["timestamp"]
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise _Malformed("timestamp is not an integer")
        text = data.get("message") or ""
        if not isinstance(text, str):
            raise _Malformed("message is not a string")
        if data.get("reaction") is not None or data.get("remoteDelete") is not None:
            return None
        group = data.get("groupInfo")
        if group is not None and not (isinstance(group, dict) and isinstance(group.get("groupId"), str)):
            raise _Malformed("groupInfo without a groupId")
        text, mentioned = self._resolve_mentions(text, data.get("mentions") or [], envelope)
        attachments = data.get("attachments") or []
        if not isinstance(attachments, list):
            raise _Malformed("attachments is not a list")
        files, notes = await self._download(attachments, source, group)
        if not text and not files and not notes:
            return None  # stickers, group updates, expiry timer changes
        sender_name = envelope.get("sourceName") or None
        return InboundEvent(
            channel_type=self.type,
            platform_id=f"{GROUP_PREFIX}{group['groupId']}" if group else source,
            message_id=f"{source}:{timestamp}",
            text="\n".join([text, *notes]) if notes else text,
            sender_id=source,
            sender_name=sender_name if isinstance(sender_name, str) else None,
            is_dm=group is None,
            chat_name=(group.get("groupName") or None) if group else sender_name,
            mentions_assistant=mentioned,
            files=tuple(files),
            from_bot=source in self.bot_numbers or envelope.get("sourceUuid") in self.bot_numbers,
        )

    def _resolve_mentions(self, text: str, mentions: Any, envelope: dict[str, Any]) -> tuple[str, bool]:
        """Replace each U+FFFC placeholder by @name; True when one of them is the bot."""
        if not isinstance(mentions, list):
            raise _Malformed("mentions is not a list")
        units = text.encode("utf-16-le")
        mentioned = False
        for m in sorted(mentions, key=lambda m: m["start"], reverse=True):  # from the end: offsets stay valid
            start, length = m["start"], m["length"]
            if not isinstance(start, int) or not isinstance(length, int) or start < 0 or length < 0:
                raise _Malformed("mention without integer start/length")
            is_bot = self.account in (m.get("number"), m.get("name"))
            mentioned = mentioned or is_bot
            name = self.host.settings.assistant_name if is_bot else (m.get("name") or m.get("number") or m.get("uuid"))
            units = units[: start * 2] + f"@{name}".encode("utf-16-le") + units[(start + length) * 2:]
        return units.decode("utf-16-le", "replace"), mentioned

    async def _download(
        self, attachments: list[Any], source: str, group: dict[str, Any] | None,
    ) -> tuple[list[FileAttachment], list[str]]:
        """Fetch the attachments signal-cli already stored; too large or failed ones become notes."""
        files: list[FileAttachment] = []
        notes: list[str] = []
        for att in attachments:
            if not isinstance(att, dict) or not isinstance(att.get("id"), str):
                raise _Malformed("attachment without an id")
            name = att.get("filename") or att["id"]
            size = att.get("size")
            if isinstance(size, int) and size > MAX_FILE_BYTES:
                notes.append(f"[attachment {name} skipped: larger than 50 MB]")
                continue
            where = {"groupId": group["groupId"]} if group else {"recipient": source}
            try:
                result = await self._rpc("getAttachment", {"id": att["id"], **where})
                encoded = result.get("data") if isinstance(result, dict) else result  # older versions: bare string
                data = base64.b64decode(encoded, validate=True)
            except (ChannelUnavailable, DestinationRefused, ValueError, TypeError) as exc:
                log.warning("signal.attachment_failed", attachment=att["id"], error=str(exc))
                notes.append(f"[attachment {name} could not be downloaded]")
                continue
            if len(data) > MAX_FILE_BYTES:
                notes.append(f"[attachment {name} skipped: larger than 50 MB]")
                continue
            files.append(FileAttachment(name, data, att.get("contentType") or None))
        return files, notes

    # ---- outbound ------------------------------------------------------------------------

    async def _rpc(self, method: str, params: dict[str, Any]) -> Any:
        """One JSON-RPC call; transport failures are ChannelUnavailable, errors mapped by `_rpc_error`."""
        if self._session is None:
            raise ChannelUnavailable("the Signal channel is not started")
        body = {"jsonrpc": "2.0", "method": method, "params": params, "id": next(self._ids)}
        try:
            async with self._session.post(f"{self.url}/api/v1/rpc", json=body) as resp:
                if resp.status != 200:
                    # 5xx/429 are outages; other statuses mean SIGNAL_RPC_URL is not signal-cli: retry once fixed
                    raise ChannelUnavailable(f"signal-cli {method}: HTTP {resp.status}")
                reply = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise ChannelUnavailable(f"signal-cli {method}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(reply, dict):
            raise ChannelUnavailable(f"signal-cli {method}: malformed reply")
        if reply.get("error") is not None:
            raise _rpc_error(method, reply["error"])
        return reply.get("result")

    async def _send_piece(self, platform_id: str, text: str, styles: list[str], **extra: Any) -> str:
        params: dict[str, Any] = {**_target(platform_id), "message": text, **extra}
        if styles:
            params["textStyle"] = styles
        result = await self._rpc("send", params)
        timestamp = result.get("timestamp") if isinstance(result, dict) else None
        if not isinstance(timestamp, int):
            raise ChannelUnavailable("signal-cli send: reply without a timestamp")
        return f"{self.account}:{timestamp}"

    async def send(self, message: OutgoingMessage) -> SendResult:
        text = render_text(message) if message.kind in ("card", "question") else (message.text or "")
        pieces = _pieces(text)
        ids: list[str] = []
        if message.file is not None:  # the first piece rides along as the file's caption
            first, styles = pieces.pop(0)
            ids.append(await self._send_piece(message.route.platform_id, first, styles,
                                              attachments=[_data_uri(message.file)]))
        for piece, styles in pieces:
            if piece:
                ids.append(await self._send_piece(message.route.platform_id, piece, styles))
        log.info("signal.sent", chat=message.route.platform_id, kind=message.kind, pieces=len(ids))
        return SendResult(ids[0] if ids else None)

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        _, timestamp = _split_id(platform_message_id)
        piece, styles = _pieces(text)[0]  # an edit replaces one message: the rest of a long text is cut
        await self._send_piece(route.platform_id, piece, styles, editTimestamp=timestamp)

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        author, timestamp = _split_id(platform_message_id)
        await self._rpc("sendReaction", {**_target(route.platform_id), "emoji": emoji,
                                         "targetAuthor": author, "targetTimestamp": timestamp})

    async def set_typing(self, route: Route, on: bool) -> None:
        previous = self._typing.pop(route.platform_id, None)
        if previous is not None:
            previous.cancel()
        if on:
            self._typing[route.platform_id] = asyncio.create_task(self._keep_typing(route.platform_id))
        else:
            await self._typing_once(route.platform_id, stop=True)

    async def _keep_typing(self, platform_id: str) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + _TYPING_MAX
        while loop.time() < until:
            await self._typing_once(platform_id, stop=False)
            await asyncio.sleep(_TYPING_REFRESH)

    async def _typing_once(self, platform_id: str, stop: bool) -> None:
        try:
            await self._rpc("sendTyping", {**_target(platform_id), "stop": stop})
        except (ChannelUnavailable, DestinationRefused) as exc:  # a missed indicator is harmless
            log.debug("signal.typing_failed", chat=platform_id, error=str(exc))
