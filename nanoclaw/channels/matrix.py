"""The Matrix channel: a bot account on any homeserver, through matrix-nio's AsyncClient.

Owns the login (access token or password), the sync loop with reconnect backoff, auto-joining
invites, turning room messages (text and files) into `InboundEvent`s, and sending text (Markdown as
an HTML `formatted_body` plus a plain `body`), files, edits (`m.replace`), reactions (`m.annotation`)
and typing notices. Unencrypted rooms only: nio runs without olm here.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
from nio import (
    AsyncClient, AsyncClientConfig, BadEvent, ErrorResponse, InviteMemberEvent, MatrixRoom,
    MemoryDownloadResponse, RoomMemberEvent, RoomMessageEmote, RoomMessageMedia, RoomMessageNotice,
    RoomMessageText, RoomMessagesResponse, SyncResponse, UnknownBadEvent, UploadResponse,
)

from nanoclaw.channels import whoami
from nanoclaw.channels.base import (
    Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult, render_text,
)
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.text import split_message, to_matrix_html
from nanoclaw.config import Settings
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

LIMIT = 16000  # characters per message; Matrix caps a whole event at 64 KiB
MAX_EVENT_BYTES = 60000  # body + formatted_body + envelope must stay under the 64 KiB event cap
MAX_FILE = 50 * 2**20
SYNC_TIMEOUT_MS = 30000
_TRANSIENT = (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)  # ValueError: a non-JSON body
_AUTH_ERRORS = {"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN", "M_USER_DEACTIVATED"}
_TEXT_EVENTS = (RoomMessageText, RoomMessageNotice, RoomMessageEmote)


class MatrixChannel(Channel):
    type = "matrix"
    settings_asked = ("MATRIX_HOMESERVER", "MATRIX_USER_ID", "MATRIX_ACCESS_TOKEN")
    capabilities = Capabilities(
        threads=False, edits=True, reactions=True, cards=False, typing=True, files=True,
        max_message_length=LIMIT,
        stream_interval=2.0,  # Synapse limits message events (edits are events) to a small burst, then ~1 per 5 s
        formatting="Matrix (Markdown rendered as HTML): **bold**, *italic*, `code`, ```code blocks```, "
                   "[links](https://…), lists, > quotes",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.client: AsyncClient | None = None
        self.user_id = ""
        self._bots: frozenset[str] = frozenset()
        self._direct: set[str] = set()  # rooms we were invited to as a direct chat
        self._to_join: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._synced = False  # after the first sync: events from then on are new
        self._caught_up = False  # nio's rooms hold their state (after a first sync, or a full-state one)
        self._started_ms = 0
        self._password = ""
        self._token_file: Path | None = None
        self._saved_token = ""

    # -- lifecycle -------------------------------------------------------------

    @classmethod
    async def identify(cls, settings: Settings) -> str:
        return await whoami.matrix(settings.extra)

    async def start(self) -> None:
        extra = self.host.settings.extra
        homeserver = _required(extra, "MATRIX_HOMESERVER", "the URL of the bot's homeserver, e.g. https://matrix.org")
        self.user_id = _required(extra, "MATRIX_USER_ID", "the bot account's full id, e.g. @andy:matrix.org")
        token, password = extra.get("MATRIX_ACCESS_TOKEN"), extra.get("MATRIX_PASSWORD")
        if not token and not password:
            raise ConfigError("set MATRIX_ACCESS_TOKEN (Element: Settings → Help & About → Access Token) "
                              "or MATRIX_PASSWORD for the bot account")
        self._started_ms = int(time.time() * 1000)
        self._bots = frozenset(u.strip() for u in extra.get("MATRIX_BOT_USERS", "").split(",") if u.strip())
        # Retries are ours (backoff in the sync loop, the host's delivery retries): nio must not loop itself.
        config = AsyncClientConfig(max_timeouts=0, max_limit_exceeded=0, request_timeout=30,
                                   encryption_enabled=False, store_sync_tokens=False)
        device = extra.get("MATRIX_DEVICE_ID") or ""
        self.client = AsyncClient(homeserver.rstrip("/"), self.user_id, device_id=device or None, config=config)
        self._password = password or ""
        if token:
            self.client.restore_login(self.user_id, device, token)
        self._token_file = self.host.settings.state_dir / f"matrix-sync-{_digest(self.user_id)}.json"
        resumed = self._load_position()
        try:
            # The backlog before the very first start is history; after a restart, what came while the host
            # was down is new: the saved sync token picks up exactly there (the host ignores repeats), and
            # that first sync brings every room's full state back (names, members), without waiting.
            await self._sync(first=not resumed)
        except _AuthFailed as exc:
            raise ConfigError(f"the homeserver refused the bot's login (MATRIX_ACCESS_TOKEN, or "
                              f"MATRIX_USER_ID and MATRIX_PASSWORD): {exc}") from exc
        except _Transient as exc:  # the homeserver may come up later: the sync loop keeps trying
            log.warning("channel.start_offline", channel=self.type, error=str(exc))
        self._task = asyncio.create_task(self._run(), name="matrix-sync")

    async def _login(self) -> None:
        assert self.client is not None
        try:
            resp = await self.client.login(self._password, device_name="NanoClaw")
        except _TRANSIENT as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(resp, ErrorResponse):
            raise (_AuthFailed if resp.status_code in _AUTH_ERRORS else _Transient)(str(resp))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.client is not None:
            await self.client.close()

    async def _run(self) -> None:
        """Sync forever; on any failure wait 0.5 s, doubling to 30 s, and try again."""
        backoff = self.backoff()
        while True:
            try:
                await self._sync(first=not self._synced and not self._saved_token)
            except _AuthFailed as exc:
                log.error("channel.auth_failed", channel=self.type, error=str(exc))
                return
            except Exception as exc:  # never let the loop die: a bad sync is retried
                await backoff.wait(f"{type(exc).__name__}: {exc}")
                continue
            if backoff.reset():
                log.info("channel.reconnected", channel=self.type)
                self.host.channel_ready(self.type)

    async def _sync(self, first: bool) -> None:
        assert self.client is not None
        if not self.client.access_token:
            await self._login()
        room_filter: dict[str, Any] = {"timeline": {"limit": 1}} if first else {}
        sync_filter = {"room": room_filter, "presence": {"types": []}}
        # Resuming from a saved token: nio's rooms are empty, so ask for their full state, and at once.
        catch_up = not first and not self._caught_up
        try:
            # `since` given, not set on the client: nio skips a response whose token it already holds, and
            # with nothing new since the saved token that would be this one, state and all.
            resp = await self.client.sync(timeout=0 if first or catch_up else SYNC_TIMEOUT_MS,
                                          sync_filter=sync_filter, full_state=catch_up or None,
                                          since=self._saved_token if catch_up else None)
        except _TRANSIENT as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(resp, SyncResponse):
            if isinstance(resp, ErrorResponse) and resp.status_code in _AUTH_ERRORS:
                raise _AuthFailed(str(resp))
            if catch_up and isinstance(resp, ErrorResponse) and str(resp.status_code).startswith("4"):
                log.warning("matrix.sync_token_refused", error=str(resp))  # start over from now
                self.client.next_batch, self._saved_token, self._started_ms = "", "", int(time.time() * 1000)
                self._synced = self._caught_up = False
            raise _Transient(str(resp))
        for room_id, invite in resp.rooms.invite.items():
            self._note_invite(room_id, invite.invite_state)
        for room_id in list(self._to_join):
            await self._join(room_id)
        if not first:
            for room_id, info in resp.rooms.join.items():
                room = self.client.rooms.get(room_id)
                if room is not None:
                    for event in self._since_our_join(info.timeline.events):
                        await self._handle(room, event)
        self._synced = self._caught_up = True
        self._save_position(resp.next_batch)

    def _load_position(self) -> bool:
        """Resume from the last sync of an earlier run; False on a first start (or an unreadable file).

        The file also keeps the rooms we were invited to as direct chats: the invite said so, and no
        later sync repeats it."""
        assert self.client is not None and self._token_file is not None
        saved = read_position(self._token_file, self.type)
        token = saved.get("next_batch") if isinstance(saved, dict) else None
        if not isinstance(token, str) or not token:
            return False
        assert isinstance(saved, dict)
        direct = saved.get("direct")
        self._direct = {r for r in direct if isinstance(r, str)} if isinstance(direct, list) else set()
        self._saved_token = token
        self._started_ms = 0  # events after the token are new whatever their time
        log.info("matrix.resumed", since="saved sync token")
        return True

    def _save_position(self, token: str) -> None:
        if token and token != self._saved_token and self._token_file is not None:
            data = {"next_batch": token, "direct": sorted(self._direct)}
            if write_position(self._token_file, data, self.type):
                self._saved_token = token

    # -- inbound ---------------------------------------------------------------

    def _note_invite(self, room_id: str, invite_state: list[Any]) -> None:
        """Every invite is accepted: who may talk to an agent is decided by the host's wiring, not here."""
        self._to_join.add(room_id)
        for event in invite_state:
            if isinstance(event, InviteMemberEvent) and event.state_key == self.user_id:
                if event.content.get("is_direct"):
                    self._direct.add(room_id)

    async def _join(self, room_id: str) -> None:
        try:
            resp = await self._client().join(room_id)
        except _TRANSIENT as exc:  # the sync token has moved on: keep the invite and try again next sync
            log.warning("matrix.join_failed", room=room_id, error=f"{type(exc).__name__}: {exc}", retry=True)
            return
        self._to_join.discard(room_id)
        if isinstance(resp, ErrorResponse):
            log.warning("matrix.join_failed", room=room_id, error=str(resp), retry=False)
        else:
            log.info("matrix.joined", room=room_id, direct=room_id in self._direct)

    def _since_our_join(self, events: list[Any]) -> list[Any]:
        """In a room we just joined, what came before our join is history, not messages to answer."""
        for i in range(len(events) - 1, -1, -1):
            e = events[i]
            if (isinstance(e, RoomMemberEvent) and e.state_key == self.user_id and e.membership == "join"
                    and e.prev_membership != "join"):
                return events[i + 1:]
        return events

    async def _handle(self, room: MatrixRoom, event: Any) -> None:
        try:
            await self._handle_message(room, event)
        except Exception as exc:  # one odd event must not stop the others
            log.warning("matrix.event_failed", room=room.room_id, error=f"{type(exc).__name__}: {exc}")

    async def _handle_message(self, room: MatrixRoom, event: Any) -> None:
        if isinstance(event, (BadEvent, UnknownBadEvent)):
            log.warning("matrix.malformed_event", room=room.room_id, type=event.type, event=event.event_id)
            return
        if not isinstance(event, (*_TEXT_EVENTS, RoomMessageMedia)) or event.sender == self.user_id:
            return
        if event.server_timestamp < self._started_ms:
            # History: Synapse may answer a restart's first sync from a 2-minute cache, so the sync
            # token alone cannot tell what is new.
            return
        content: dict[str, Any] = event.source.get("content", {})
        relation = content.get("m.relates_to")
        if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
            return  # an edit of an earlier message: that one was already answered
        files: tuple[FileAttachment, ...] = ()
        if isinstance(event, RoomMessageMedia):
            if not event.url.startswith("mxc://"):
                log.warning("matrix.malformed_event", room=room.room_id, type="media-not-mxc", event=event.event_id)
                return
            files, text = await self._download(room.room_id, event, content)
        else:
            text = _strip_reply_fallback(event.body, relation)
        await self.host.receive(InboundEvent(
            channel_type=self.type, platform_id=room.room_id, message_id=event.event_id, text=text,
            sender_id=event.sender, sender_name=room.user_name(event.sender), is_dm=self._is_dm(room),
            chat_name=room.display_name, mentions_assistant=self._mentions_me(room, content, text),
            files=files, from_bot=event.sender in self._bots,
        ))

    def _is_dm(self, room: MatrixRoom) -> bool:
        return room.room_id in self._direct or room.member_count == 2

    def _mentions_me(self, room: MatrixRoom, content: dict[str, Any], body: str) -> bool:
        mentions = content.get("m.mentions")
        if isinstance(mentions, dict):  # intentional mentions: when present, they alone count (spec v1.7)
            ids = mentions.get("user_ids")
            return isinstance(ids, list) and self.user_id in ids
        name = room.user_name(self.user_id) or self.user_id
        html = content.get("formatted_body")
        return (self.user_id in body or re.match(rf"@?{re.escape(name)}[:,]", body, re.IGNORECASE) is not None
                or (isinstance(html, str) and f"matrix.to/#/{self.user_id}" in html))

    async def _download(
        self, room_id: str, event: RoomMessageMedia, content: dict[str, Any],
    ) -> tuple[tuple[FileAttachment, ...], str]:
        """The file of a media event, and the caption (a body that differs from the filename, spec v1.10)."""
        assert self.client is not None
        name = str(content.get("filename") or event.body or "file")
        caption = event.body if content.get("filename") and event.body != name else ""
        info = content.get("info") if isinstance(content.get("info"), dict) else {}
        size = info.get("size")
        if isinstance(size, int) and size > MAX_FILE:
            return (), _join(caption, f"[{name} was not downloaded: larger than 50 MB]")
        try:
            resp = await self.client.download(event.url)
        except _TRANSIENT as exc:
            resp = exc  # type: ignore[assignment]
        if not isinstance(resp, MemoryDownloadResponse):
            log.warning("matrix.download_failed", room=room_id, error=str(resp))
            return (), _join(caption, f"[{name} could not be downloaded]")
        if len(resp.body) > MAX_FILE:
            return (), _join(caption, f"[{name} was not kept: larger than 50 MB]")
        mime = info.get("mimetype") if isinstance(info.get("mimetype"), str) else resp.content_type
        return (FileAttachment(name, resp.body, mime),), caption

    # -- outbound --------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        room = message.route.platform_id
        if message.file is not None:
            content = await self._file_content(message.file, message.text or "")
            return SendResult(await self._put(room, "m.room.message", content, _txn(message.id, 0)))
        text = render_text(message) if message.kind in ("card", "question") else (message.text or "")
        ids = [await self._put(room, "m.room.message", _text_content(piece), _txn(message.id, i))
               for i, piece in enumerate(_pieces(text))]
        return SendResult(ids[0])

    async def already_sent(self, route: Route, message_id: str) -> str | None:
        """Synapse shows the sending device its own transaction id in `unsigned`: look for ours."""
        client = self._client()
        try:
            resp = await client.room_messages(route.platform_id, limit=100)
        except _TRANSIENT as exc:
            raise ChannelUnavailable(f"matrix: {exc}") from exc
        if not isinstance(resp, RoomMessagesResponse):
            return None
        wanted = _txn(message_id, 0)
        for event in resp.chunk:
            if getattr(event, "source", {}).get("unsigned", {}).get("transaction_id") == wanted:
                return str(event.event_id)
        return None

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        new = _text_content(text)
        content = {"msgtype": "m.text", "body": f"* {new['body']}", "m.new_content": new,
                   "m.relates_to": {"rel_type": "m.replace", "event_id": platform_message_id}}
        await self._put(route.platform_id, "m.room.message", content)

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": platform_message_id, "key": emoji}}
        # a stable transaction id: a retried reaction is the same event, not a duplicate the server refuses
        await self._put(route.platform_id, "m.reaction", content, f"nanoclaw-react-{platform_message_id}-{emoji}")

    async def set_typing(self, route: Route, on: bool) -> None:
        try:
            await self._client().room_typing(route.platform_id, typing_state=on, timeout=SYNC_TIMEOUT_MS)
        except _TRANSIENT as exc:  # a missed typing notice is harmless
            log.debug("matrix.typing_failed", room=route.platform_id, error=str(exc))

    async def _file_content(self, file: FileAttachment, caption: str) -> dict[str, Any]:
        mime = file.mime_type or "application/octet-stream"
        try:
            resp, _ = await self._client().upload(io.BytesIO(file.data), content_type=mime, filename=file.name,
                                                  filesize=len(file.data))
        except _TRANSIENT as exc:
            raise ChannelUnavailable(f"matrix upload: {exc}") from exc
        if not isinstance(resp, UploadResponse):
            _raise_for(resp)
        msgtype = next((f"m.{k}" for k in ("image", "audio", "video") if mime.startswith(f"{k}/")), "m.file")
        content: dict[str, Any] = {"msgtype": msgtype, "body": file.name, "filename": file.name,
                                   "url": resp.content_uri, "info": {"mimetype": mime, "size": len(file.data)}}
        if caption:
            content.update(_text_content(caption))  # body becomes the caption, filename keeps the name
            content["msgtype"] = msgtype
        return content

    async def _put(self, room: str, event_type: str, content: dict[str, Any], txn: str | None = None) -> str:
        """Send one event; the transaction id makes a retried send idempotent on the homeserver."""
        try:
            resp = await self._client().room_send(room, event_type, content, tx_id=txn)
        except _TRANSIENT as exc:
            raise ChannelUnavailable(f"matrix: {type(exc).__name__}: {exc}") from exc
        if isinstance(resp, ErrorResponse):
            _raise_for(resp)
        return str(resp.event_id)

    def _client(self) -> AsyncClient:
        if self.client is None:
            raise ChannelUnavailable("matrix channel is not started")
        return self.client


class _Transient(Exception):
    """The homeserver could not be reached or answered with an error worth retrying."""


class _AuthFailed(Exception):
    """The homeserver no longer accepts the bot's credentials."""


def _raise_for(resp: Any) -> None:
    """5xx, 429 and unreachable mean later; other refusals (not in the room, no such room) are final."""
    status = getattr(getattr(resp, "transport_response", None), "status", None)
    code = getattr(resp, "status_code", None)
    if status is None or status >= 500 or status == 429 or code in ("M_LIMIT_EXCEEDED", "M_UNKNOWN_TOKEN"):
        raise ChannelUnavailable(f"matrix: {resp}")
    raise DestinationRefused(f"matrix: {resp}")


def _required(extra: Any, name: str, what: str) -> str:
    value = extra.get(name)
    if not value:
        raise ConfigError(f"{name} is not set: put {what} into ~/.config/nanoclaw/credentials.env")
    return str(value)


def _txn(message_id: str, piece: int) -> str:
    return f"nanoclaw-{message_id}-{piece}"


def _text_content(markdown: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": markdown, "format": "org.matrix.custom.html",
            "formatted_body": to_matrix_html(markdown)}


def _pieces(text: str) -> list[str]:
    """Split at LIMIT characters, and further where a piece's event would pass the 64 KiB cap (wide characters)."""
    out: list[str] = []
    for piece in split_message(text, LIMIT):
        while len(json.dumps(_text_content(piece), ensure_ascii=False).encode()) > MAX_EVENT_BYTES:
            head, *rest = split_message(piece, max(1, len(piece) // 2))
            out.append(head)
            piece = piece[len(head):].lstrip()
        out.append(piece)
    return out


def _strip_reply_fallback(body: str, relation: Any) -> str:
    """Replies from older clients quote the original as '> ' lines first; the agent needs only the reply."""
    if not (isinstance(relation, dict) and "m.in_reply_to" in relation and body.startswith("> ")):
        return body
    lines = body.split("\n")
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).lstrip("\n")


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def _digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()[:12]
