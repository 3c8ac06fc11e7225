"""The Webex channel: a Webex bot, webhooks in (`/hooks/webex`) and the REST API out through webexpythonsdk.

A chat is a Webex room (1:1 rooms are DMs); a thread is a parent message, so each thread gets
its own session. Webhooks carry only ids: the channel reads the message (or the card's submitted
inputs) back through the API, so a forged or replayed notification can only make it read a real
message, which the host ignores when it has it already. Each notification is signed with
`X-Spark-Signature` (HMAC-SHA1 of the body under the webhook's secret); unsigned, wrongly signed
and stale ones are refused and logged.

Cards are Adaptive Cards (`adaptive_cards.py`); Webex has no dialogs, so a credential request's card
carries the input itself. Webex has no reactions or typing indicator for bots.

Messages written while the host was down are read back at start (per room, newest-first pages
until the last one passed on, then handed over oldest first); positions in `state/webex-seen.json`.
webexpythonsdk is synchronous (requests), so its calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import httpx
import requests
from aiohttp import web
from webexpythonsdk import WebexAPI
from webexpythonsdk.exceptions import ApiError

from nanoclaw.channels import adaptive_cards as cards
from nanoclaw.channels import credentials
from nanoclaw.channels.base import Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.text import split_message, to_markdown
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.host.attachments import safe_file_name
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

DEFAULT_API_URL = "https://webexapis.com/v1/"
MAX_TEXT = 7000  # Webex refuses messages over 7439 bytes of Markdown
MAX_FILE = 100 * 2**20  # Webex's own limit per file
MAX_AGE = 300.0  # seconds: a signed notification about an older message is a replay (catch-up reads those)
CATCH_UP_LIMIT = 200  # messages read back per room after a restart
HOOKS = (("messages", "created"), ("attachmentActions", "created"))
T = TypeVar("T")


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` (X-Spark-Signature) is the HMAC-SHA1 of `body` under `secret`."""
    if not header:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    # As bytes: compare_digest refuses str with non-ASCII characters, and a header may hold any.
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode("utf-8", "replace"))


def _parse_time(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class WebexChannel(Channel):
    type = "webex"
    settings_asked = ("WEBEX_BOT_TOKEN", "WEBEX_WEBHOOK_SECRET")
    capabilities = Capabilities(
        threads=True, edits=True, cards=True, files=True, max_message_length=MAX_TEXT,
        formatting="Webex Markdown: **bold**, _italic_, `code`, ``` blocks, lists, > quotes and [links](url)",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._api: WebexAPI | None = None
        self._me = ""
        self._token = ""
        self._secret = ""
        self._api_url = DEFAULT_API_URL
        self._inbound = asyncio.Lock()  # notifications are handled one at a time, in arrival order
        self._names: dict[str, str | None] = {}
        self._failing = False
        self._seen: dict[str, dict[str, Any]] = {}  # room → {"id", "created", "direct"} of the newest passed on
        self._seen_file: Path | None = None
        self._catch_up_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        extra = self.host.settings.extra
        self._token = extra.get("WEBEX_BOT_TOKEN", "")
        self._secret = extra.get("WEBEX_WEBHOOK_SECRET", "")
        if not self._token:
            raise ConfigError("WEBEX_BOT_TOKEN is not set: create a bot at developer.webex.com → My Webex Apps → "
                              "Create a Bot and copy its access token (see docs/channels/webex.md)")
        if not self._secret:
            raise ConfigError("WEBEX_WEBHOOK_SECRET is not set: choose a long random string; NanoClaw signs its "
                              "webhooks with it (see docs/channels/webex.md)")
        self._api_url = extra.get("WEBEX_API_URL") or DEFAULT_API_URL
        self._api = WebexAPI(access_token=self._token, base_url=self._api_url, wait_on_rate_limit=False,
                             single_request_timeout=30)
        try:
            me = await self._call("people.me", lambda api: api.people.me())
        except DestinationRefused as exc:
            raise ConfigError(f"Webex refused WEBEX_BOT_TOKEN ({exc}): copy the bot's token again") from exc
        self._me = str(me.id)
        url = self.host.register_webhook(self.type, self._on_webhook)
        public = extra.get("WEBEX_WEBHOOK_URL")
        if public:
            await self._ensure_webhooks(public)
        self._seen_file = self.host.settings.state_dir / "webex-seen.json"
        data = read_position(self._seen_file, self.type)
        self._seen = {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("id"), str)} \
            if isinstance(data, dict) else {}
        if self._seen:
            self._catch_up_task = asyncio.create_task(self._catch_up())
        log.info("webex.started", webhook=url, bot=str(me.displayName or ""))

    async def stop(self) -> None:
        if self._catch_up_task is not None:
            self._catch_up_task.cancel()
            await asyncio.gather(self._catch_up_task, return_exceptions=True)
        self._api = None

    async def _ensure_webhooks(self, target: str) -> None:
        """Point one webhook per resource at `target` with our secret (ours, found by name, updated in place)."""
        existing = await self._call("webhooks.list", lambda api: list(api.webhooks.list()))
        for resource, event in HOOKS:
            name = f"nanoclaw {resource}"
            found = next((w for w in existing if w.resource == resource and w.event == event
                          and w.name == name), None)
            if found is not None:
                await self._call("webhooks.update", lambda api, w=found, n=name: api.webhooks.update(
                    w.id, name=n, targetUrl=target, secret=self._secret, status="active"))
            else:
                await self._call("webhooks.create", lambda api, r=resource, e=event, n=name: api.webhooks.create(
                    name=n, targetUrl=target, resource=r, event=e, secret=self._secret))
        log.info("webex.webhooks_registered", target=target)

    # -- inbound ---------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405)
        body = await request.read()
        if not signature_ok(self._secret, body, request.headers.get("X-Spark-Signature")):
            log.warning("webex.webhook_rejected", reason="bad or missing signature", remote=request.remote)
            return web.Response(status=401, text="bad signature")
        try:
            note = json.loads(body)
            resource, data = str(note["resource"]), note["data"]
            item_id, created = str(data["id"]), _parse_time(data.get("created"))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("webex.payload_malformed", error=type(exc).__name__)
            return web.Response(status=400, text="malformed payload")
        if created is None or abs(time.time() - created) > MAX_AGE:
            log.warning("webex.webhook_rejected", reason="stale or undated", remote=request.remote)
            return web.Response(status=401, text="stale notification")
        if self._api is None:
            return web.Response(status=503)
        async with self._inbound:
            try:
                if resource == "messages" and note.get("event") == "created":
                    if data.get("personId") != self._me:  # our own messages: not even read back
                        message = await self._call("messages.get", lambda api: api.messages.get(item_id))
                        await self._pass_on(message.to_dict())
                elif resource == "attachmentActions":
                    action = await self._call("attachment_actions.get", lambda api: api.attachment_actions.get(item_id))
                    await self._on_press(action.to_dict())
            except (ChannelUnavailable, DestinationRefused) as exc:  # the next catch-up reads the message
                log.warning("webex.read_failed", resource=resource, error=str(exc))
        return web.Response(status=200)

    async def _pass_on(self, message: dict[str, Any]) -> None:
        event = await self._to_event(message)
        if event is None:
            return
        result = await self.host.receive(event)
        if not result.accepted and result.error:
            try:
                await self._post(event.platform_id, event.thread_id, markdown=result.error)
            except (ChannelUnavailable, DestinationRefused) as exc:
                log.warning("webex.notice_failed", error=str(exc))
        self._note_seen(message)

    async def _to_event(self, message: dict[str, Any]) -> InboundEvent | None:
        """The host's event for a message; None for our own and for what is not a message."""
        room, message_id, sender = message.get("roomId"), message.get("id"), message.get("personId")
        if not (isinstance(room, str) and isinstance(message_id, str) and isinstance(sender, str)):
            log.warning("webex.payload_malformed", error="message without room, id or sender")
            return None
        if sender == self._me:
            return None
        email = str(message.get("personEmail") or "")
        text = message.get("text") if isinstance(message.get("text"), str) else ""
        mentioned = self._me in (message.get("mentionedPeople") or [])
        files, notes = await self._download(message.get("files"))
        direct = message.get("roomType") == "direct"
        name = await self._name("person", sender) or email or None
        parent = message.get("parentId")
        return InboundEvent(
            channel_type=self.type, platform_id=room, message_id=message_id,
            text="\n".join([str(text), *notes]).strip(), sender_id=sender, sender_name=name,
            thread_id=parent if isinstance(parent, str) and parent else None, is_dm=direct,
            chat_name=name if direct else await self._name("room", room), mentions_assistant=mentioned,
            files=tuple(files), from_bot=email.endswith("@webex.bot"),  # every Webex bot's address is @webex.bot
        )

    async def _on_press(self, action: dict[str, Any]) -> None:
        person, room, message_id = action.get("personId"), action.get("roomId"), action.get("messageId")
        inputs = action.get("inputs")
        value = cards.take_value(inputs)  # out of the payload first, whatever follows
        press = cards.parse_press(inputs)
        if press is None or not all(isinstance(v, str) for v in (person, room, message_id)):
            log.warning("webex.press_malformed")
            return
        assert isinstance(person, str) and isinstance(room, str) and isinstance(message_id, str)
        thread = await self._thread_of(message_id)
        if press.kind == "answer":
            error = await self.host.answer(press.card_id, press.label, person)
            name = await self._name("person", person) or "Someone"
            note = error or f"{name} chose **{press.label}**"
        else:
            if press.kind == "credential" and not value:
                return  # Webex requires the input; an empty submit cannot arrive from its clients
            status = credentials.submit(self.host, self.type, press.token, value if press.kind == "credential"
                                        else None, person)
            del value
            log.info("webex.credential", status=status.partition(":")[0])
            note = credentials.reply(status)
            if not status.startswith("refused:"):  # answered: the card (and its input) goes away
                try:
                    await self._call("messages.delete", lambda api: api.messages.delete(message_id))
                except (ChannelUnavailable, DestinationRefused) as exc:
                    log.warning("webex.card_delete_failed", error=str(exc))
        try:
            await self._post(room, thread, markdown=note)
        except (ChannelUnavailable, DestinationRefused) as exc:
            log.warning("webex.notice_failed", error=str(exc))

    async def _thread_of(self, message_id: str) -> str | None:
        """The thread a card was posted in (its parent), so notes about it go there too."""
        try:
            message = await self._call("messages.get", lambda api: api.messages.get(message_id))
        except (ChannelUnavailable, DestinationRefused):
            return None
        parent = message.to_dict().get("parentId")
        return parent if isinstance(parent, str) and parent else None

    async def _name(self, kind: str, id_: str) -> str | None:
        if id_ not in self._names:
            try:
                if kind == "person":
                    found = await self._call("people.get", lambda api: api.people.get(id_))
                    self._names[id_] = str(found.displayName or "") or None
                else:
                    found = await self._call("rooms.get", lambda api: api.rooms.get(id_))
                    self._names[id_] = str(found.title or "") or None
            except (ChannelUnavailable, DestinationRefused):
                return None  # not remembered: the next message may have better luck
        return self._names[id_]

    async def _download(self, urls: Any) -> tuple[list[FileAttachment], list[str]]:
        got: list[FileAttachment] = []
        notes: list[str] = []
        if not isinstance(urls, list):
            return got, notes
        async with httpx.AsyncClient(timeout=60) as client:
            for url in urls:
                if not isinstance(url, str) or not self._may_send_token_to(url):
                    notes.append("[a file could not be received: no Webex download link]")
                    continue
                try:
                    async with client.stream("GET", url, headers={"Authorization": f"Bearer {self._token}"}) as r:
                        r.raise_for_status()
                        name = _file_name(r.headers.get("Content-Disposition", "")) or "file"
                        if int(r.headers.get("Content-Length") or 0) > MAX_FILE:
                            notes.append(f"[file {name} not received: larger than 100 MB]")
                            continue
                        data = bytearray()
                        async for chunk in r.aiter_bytes():
                            data += chunk
                            if len(data) > MAX_FILE:
                                break
                except httpx.HTTPError as exc:
                    log.warning("webex.file_failed", error=type(exc).__name__)
                    notes.append("[a file could not be downloaded]")
                    continue
                if len(data) > MAX_FILE:
                    notes.append(f"[file {name} not received: larger than 100 MB]")
                else:
                    got.append(FileAttachment(name, bytes(data), r.headers.get("Content-Type", "").split(";")[0] or None))
        return got, notes

    def _may_send_token_to(self, url: str) -> bool:
        # The bot token goes only to the API's own host (webexapis.com, or a test server).
        parts, api = urlsplit(url), urlsplit(self._api_url)
        return parts.netloc == api.netloc and parts.scheme == api.scheme

    # -- catching up -----------------------------------------------------------

    def _note_seen(self, message: dict[str, Any]) -> None:
        room, created = str(message.get("roomId")), str(message.get("created") or "")
        current = self._seen.get(room)
        if current is not None and str(current.get("created") or "") > created:
            return
        self._seen[room] = {"id": message.get("id"), "created": created, "direct": message.get("roomType") == "direct"}
        if self._seen_file is not None:
            write_position(self._seen_file, self._seen, self.type)

    async def _catch_up(self) -> None:
        for room, seen in list(self._seen.items()):
            try:
                missed = await self._call("messages.list", lambda api, r=room, s=seen: _newer(api, r, s))
            except (ChannelUnavailable, DestinationRefused) as exc:
                log.warning("webex.catch_up_failed", room=room, error=str(exc))
                continue
            async with self._inbound:
                for message in missed:
                    await self._pass_on(message)
            if missed:
                log.info("webex.caught_up", room=room, messages=len(missed))

    # -- outbound --------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        room, thread = message.route.platform_id, message.route.thread_id
        if message.file is not None:
            return SendResult(await self._send_file(room, thread, message.file, to_markdown(message.text or "")))
        card: dict[str, Any] | None = None
        text = to_markdown(message.text or "")
        credential = cards.credential_request(message)
        if credential is not None:
            card = cards.credential_card(message, credential, task_module=False)
        elif message.buttons and message.card_id:
            card = cards.question_card(message)
        if message.title:
            text = f"**{message.title}**\n\n{text}"
        if message.buttons and card is None:
            text += "\n\n" + "\n".join(f"{i}) {label}" for i, label in enumerate(message.buttons, 1))
        pieces = split_message(text, MAX_TEXT)
        first: str | None = None
        for i, piece in enumerate(pieces):
            attach = [cards.attachment(card)] if card is not None and i == len(pieces) - 1 else None
            sent = await self._post(room, thread, markdown=piece or " ", attachments=attach)
            first = first or sent
        return SendResult(first)

    async def _send_file(self, room: str, thread: str | None, file: FileAttachment, caption: str) -> str:
        # The SDK uploads a local file under its own name: write it, under a harmless name, to a private folder.
        with tempfile.TemporaryDirectory(prefix="nanoclaw-webex-") as folder:
            path = Path(folder) / safe_file_name(file.name)
            path.write_bytes(file.data)
            return await self._post(room, thread, markdown=caption or None, files=[str(path)])

    async def _post(self, room: str, thread: str | None, **content: Any) -> str:
        sent = await self._call("messages.create", lambda api: api.messages.create(
            roomId=room, parentId=thread, **{k: v for k, v in content.items() if v is not None}))
        return str(sent.id)

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        markdown = split_message(to_markdown(text), MAX_TEXT)[0]  # an edit cannot add messages: the rest is cut
        await self._call("messages.update", lambda api: api.messages.update(
            messageId=platform_message_id, roomId=route.platform_id, markdown=markdown))

    async def close_card(self, route: Route, platform_message_id: str, card_id: str, text: str, outcome: str) -> None:
        # Webex edits a message's text, never its card: the card goes (as after a press) and the outcome follows.
        await self._call("messages.delete", lambda api: api.messages.delete(platform_message_id))
        await self._post(route.platform_id, route.thread_id,
                         markdown=split_message(to_markdown(f"{text}\n\n{outcome}"), MAX_TEXT)[0])

    async def _call(self, what: str, call: Callable[[WebexAPI], T]) -> T:
        """One SDK call in a worker thread; outages are ChannelUnavailable, refusals DestinationRefused."""
        api = self._api
        if api is None:
            raise ChannelUnavailable("the Webex channel is not started")
        try:
            result = await asyncio.to_thread(call, api)
        except ApiError as exc:
            reason = f"Webex {what}: {exc.status_code} {exc.message or exc.description or ''}".strip()
            if exc.status_code == 429 or exc.status_code >= 500:
                self._failing = True
                raise ChannelUnavailable(reason) from exc
            raise DestinationRefused(reason) from exc
        except requests.RequestException as exc:
            self._failing = True
            raise ChannelUnavailable(f"Webex unreachable ({what}): {type(exc).__name__}") from exc
        if self._failing:
            self._failing = False
            self.host.channel_ready(self.type)
        return result


def _newer(api: WebexAPI, room: str, seen: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages of `room` after the one `seen`, oldest first (a bot lists group rooms by its mentions only)."""
    params: dict[str, Any] = {} if seen.get("direct") else {"mentionedPeople": "me"}
    found: list[dict[str, Any]] = []
    for message in api.messages.list(roomId=room, max=50, **params):  # newest first, page after page
        data = message.to_dict()
        if data.get("id") == seen["id"] or str(data.get("created") or "") < str(seen.get("created") or ""):
            break
        found.append(data)
        if len(found) >= CATCH_UP_LIMIT:
            log.warning("webex.catch_up_capped", room=room, limit=CATCH_UP_LIMIT)
            break
    return found[::-1]


def _file_name(disposition: str) -> str | None:
    """The file name in a Content-Disposition header (`attachment; filename="report.pdf"`)."""
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            return value.strip().strip('"') or None
    return None
