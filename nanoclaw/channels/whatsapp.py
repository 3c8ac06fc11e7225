"""The WhatsApp channel: Meta's WhatsApp Cloud API, webhooks in and Graph API calls out.

Owns the `/hooks/whatsapp` webhook (the GET subscription check and POST events
signed with the app secret), turning WhatsApp messages into `InboundEvent`s
(media downloaded through the Graph API), and sending texts, reply-button or
list cards, reactions, files and the typing indicator. Every chat is a 1:1
conversation with one phone number (its wa_id): no groups, no threads, and the
Cloud API cannot edit a sent message.

There is no official Meta SDK for Python, so the Graph API is called with
httpx, the way Meta's own curl examples do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import mimetypes
from typing import Any

import httpx
from aiohttp import web

from nanoclaw.channels.base import (
    Capabilities,
    Channel,
    FileAttachment,
    InboundEvent,
    OutgoingMessage,
    SendResult,
    render_text,
)
from nanoclaw.channels.text import split_message, to_whatsapp
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

DEFAULT_API_BASE = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_INBOUND_FILE = 50 * 2**20
MAX_IMAGE = 5 * 2**20  # larger images go out as documents
IMAGE_TYPES = ("image/jpeg", "image/png")
# Interactive message limits of the Cloud API.
MAX_REPLY_BUTTONS, MAX_LIST_ROWS = 3, 10
BUTTON_TITLE, ROW_TITLE, ROW_DESCRIPTION, HEADER = 20, 24, 72, 60
BUTTON_ID, ROW_ID = 256, 200
BUTTON_BODY, LIST_BODY = 1024, 4096
LIST_BUTTON = "Choose"
ID_PREFIX = "nc"  # marks button ids this channel made: nc|<card_id>|<index>|<label>
# Graph error codes that mean "later" although the HTTP status is a 4xx: rate limits, temporary outages.
TRANSIENT_CODES = {4, 80007, 130429, 131000, 131016, 131048, 131056, 133004}

REQUIRED = {
    "WHATSAPP_ACCESS_TOKEN": "a permanent token of a system user (Meta Business settings → System users → "
                             "Generate token, permission whatsapp_business_messaging)",
    "WHATSAPP_PHONE_NUMBER_ID": "the Phone number ID shown in your Meta app under WhatsApp → API Setup",
    "WHATSAPP_APP_SECRET": "the App secret in your Meta app under App settings → Basic",
    "WHATSAPP_VERIFY_TOKEN": "any random string; enter the same one as Verify token under WhatsApp → Configuration",
}


class WhatsAppChannel(Channel):
    type = "whatsapp"
    settings_asked = ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET",
                      "WHATSAPP_VERIFY_TOKEN")
    capabilities = Capabilities(
        reactions=True, cards=True, typing=True, files=True, max_message_length=MAX_TEXT,
        formatting="WhatsApp: *bold* _italic_ ~strike~ `code` ```block```; no headings, tables or link markup",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._http: httpx.AsyncClient | None = None
        self._inbound = asyncio.Lock()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._last_inbound: dict[str, str] = {}  # wa_id → newest message id (the typing indicator needs one)

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        extra = self.host.settings.extra
        for name, how in REQUIRED.items():
            if not extra.get(name):
                raise ConfigError(f"WhatsApp needs {name} in credentials.env: {how}")
        self._phone_id = extra["WHATSAPP_PHONE_NUMBER_ID"]
        self._secret = extra["WHATSAPP_APP_SECRET"].encode()
        self._verify_token = extra["WHATSAPP_VERIFY_TOKEN"]
        base = (extra.get("WHATSAPP_API_BASE") or DEFAULT_API_BASE).rstrip("/")
        version = extra.get("WHATSAPP_API_VERSION") or DEFAULT_API_VERSION
        self._http = httpx.AsyncClient(
            base_url=f"{base}/{version}/", timeout=httpx.Timeout(30.0, connect=10.0),
            headers={"Authorization": f"Bearer {extra['WHATSAPP_ACCESS_TOKEN']}"},
        )
        url = self.host.register_webhook(self.type, self._webhook)
        log.info("whatsapp.started", webhook=url, phone_number_id=self._phone_id)

    async def stop(self) -> None:
        tasks = [t for t in (self._reconnect_task,) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- webhook (inbound) ---------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return self._subscription_check(request)
        if request.method != "POST":
            return web.Response(status=405)
        body = await request.read()
        signature = request.headers.get("X-Hub-Signature-256", "")
        if not signature:
            log.warning("whatsapp.webhook_rejected", reason="unsigned")
            return web.Response(status=401, text="signature missing")
        expected = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()):
            log.warning("whatsapp.webhook_rejected", reason="bad signature")
            return web.Response(status=403, text="bad signature")
        try:
            payload = json.loads(body)
        except ValueError:
            log.warning("whatsapp.malformed_payload", reason="not JSON", size=len(body))
            return web.Response(status=400, text="not JSON")
        if self._http is None:
            return web.Response(status=503)  # stopped: Meta redelivers later
        # Answered only once the host has stored the messages: a crash before that means no 200,
        # so Meta delivers again (the host ignores a message id it already has). One at a time, in order.
        async with self._inbound:
            try:
                await self._handle_payload(payload)
            except Exception as exc:  # one bad event must never stop the channel
                log.warning("whatsapp.malformed_payload", error=repr(exc)[:200])
        return web.Response(text="ok")

    def _subscription_check(self, request: web.Request) -> web.Response:
        query = request.query
        token = query.get("hub.verify_token", "")
        if query.get("hub.mode") == "subscribe" and hmac.compare_digest(
            token.encode("utf-8", "replace"), self._verify_token.encode()
        ):
            log.info("whatsapp.webhook_verified")
            return web.Response(text=query.get("hub.challenge", ""))
        log.warning("whatsapp.webhook_rejected", reason="wrong verify token")
        return web.Response(status=403, text="wrong verify token")

    async def _handle_payload(self, payload: Any) -> None:
        for entry in payload["entry"]:
            for change in entry["changes"]:
                value = change["value"]
                if value.get("metadata", {}).get("phone_number_id") != self._phone_id:
                    log.debug("whatsapp.other_number_ignored")
                    continue
                # `statuses` (sent/delivered/read) and `message_echoes` (our own number's messages)
                # are not for the host: only `messages` from people are.
                names = {c.get("wa_id"): c.get("profile", {}).get("name") for c in value.get("contacts", [])}
                for message in value.get("messages", []):
                    try:
                        await self._handle_message(message, names)
                    except (KeyError, TypeError, AttributeError, ValueError) as exc:
                        log.warning("whatsapp.malformed_payload", error=repr(exc)[:200])

    async def _handle_message(self, message: dict[str, Any], names: dict[Any, Any]) -> None:
        sender, message_id, kind = str(message["from"]), str(message["id"]), str(message["type"])
        self._last_inbound[sender] = message_id
        text, files = "", ()
        if kind == "text":
            text = message["text"]["body"]
        elif kind == "interactive":
            reply = message["interactive"].get("button_reply") or message["interactive"]["list_reply"]
            pressed = _decode_button_id(str(reply["id"]))
            if pressed is not None:
                await self._answer(pressed[0], pressed[1] or reply["title"], sender)
                return
            text = reply["title"]
        elif kind == "button":  # quick reply of a template message
            text = message["button"]["text"]
        elif kind in ("image", "document", "audio", "video", "sticker"):
            media = message[kind]
            attachment, note = await self._download(media, kind)
            text = "\n".join(part for part in (media.get("caption", ""), note) if part)
            files = (attachment,) if attachment else ()
        elif kind == "location":
            place = message["location"]
            text = f"📍 {place.get('name') or 'location'} ({place['latitude']}, {place['longitude']})"
        else:  # reactions, contacts, unsupported…: nothing the agent can use
            log.info("whatsapp.message_ignored", type=kind)
            return
        name = names.get(sender)
        await self.host.receive(InboundEvent(
            channel_type=self.type, platform_id=sender, message_id=message_id, text=text, sender_id=sender,
            sender_name=name, is_dm=True, chat_name=name, files=files,
            payload={"reply_to": message["context"]["id"]} if "context" in message else {},
        ))

    async def _answer(self, card_id: str, label: str, sender: str) -> None:
        error = await self.host.answer(card_id, label, sender)
        if error:  # e.g. the question expired: tell the person who pressed
            try:
                await self._send_text(sender, error)
            except (ChannelUnavailable, DestinationRefused) as exc:
                log.warning("whatsapp.answer_reply_failed", error=str(exc))

    async def _download(self, media: dict[str, Any], kind: str) -> tuple[FileAttachment | None, str]:
        """The file of an inbound media message, or a note for the agent saying why there is none."""
        mime = str(media.get("mime_type") or "").split(";")[0].strip() or None  # voice: "audio/ogg; codecs=opus"
        name = media.get("filename") or f"{kind}{mimetypes.guess_extension(mime or '') or ''}"
        try:
            info = await self._call("GET", str(media["id"]))
            if int(info.get("file_size") or 0) > MAX_INBOUND_FILE:
                return None, f"[{name} was not downloaded: larger than 50 MB]"
            assert self._http is not None
            data = bytearray()
            # The media URL needs the same bearer token as the Graph API (Meta's documented way).
            async with self._http.stream("GET", info["url"]) as response:
                response.raise_for_status()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_INBOUND_FILE:
                        return None, f"[{name} was not downloaded: larger than 50 MB]"
        except (httpx.HTTPError, ChannelUnavailable, DestinationRefused, KeyError) as exc:
            log.warning("whatsapp.download_failed", media=media.get("id"), error=str(exc)[:200])
            return None, f"[{name} could not be downloaded]"
        return FileAttachment(name, bytes(data), mime), ""

    # -- sending (outbound) -------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        to = message.route.platform_id
        if message.kind == "file" and message.file is not None:
            return SendResult(await self._send_file(to, message.file, message.text or ""))
        if message.kind in ("card", "question"):
            interactive = _interactive(message)
            if interactive is not None:
                return SendResult(await self._send(to, "interactive", interactive))
            # Too many buttons or too long for a native card: numbered text, answered by a reply.
            return SendResult(await self._send_text(to, render_text(
                dataclasses.replace(message, text=to_whatsapp(message.text or "")))))
        return SendResult(await self._send_text(to, to_whatsapp(message.text or "")))

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        await self._send(route.platform_id, "reaction", {"message_id": platform_message_id, "emoji": emoji})

    async def set_typing(self, route: Route, on: bool) -> None:
        # The Cloud API shows "typing…" by marking the person's newest message read with an indicator;
        # it disappears by itself when we answer (or after 25 s), so there is nothing to do for `off`.
        message_id = self._last_inbound.get(route.platform_id)
        if on and message_id:
            await self._call("POST", f"{self._phone_id}/messages", json={
                "messaging_product": "whatsapp", "status": "read", "message_id": message_id,
                "typing_indicator": {"type": "text"},
            })

    async def _send_text(self, to: str, text: str) -> str | None:
        """Send `text` (already in WhatsApp's format) in pieces of at most 4096 characters; the first piece's id."""
        ids = [await self._send(to, "text", {"preview_url": False, "body": piece})
               for piece in split_message(text, MAX_TEXT) if piece.strip()]
        return ids[0] if ids else None

    async def _send_file(self, to: str, file: FileAttachment, caption: str) -> str | None:
        mime = file.mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        kind = "image" if mime in IMAGE_TYPES and len(file.data) <= MAX_IMAGE else "document"
        upload = await self._call("POST", f"{self._phone_id}/media", files={"file": (file.name, file.data, mime)},
                                  data={"messaging_product": "whatsapp", "type": mime})
        media: dict[str, Any] = {"id": upload["id"]}
        if kind == "document":
            media["filename"] = file.name
        caption = to_whatsapp(caption)
        first = None
        if len(caption) > MAX_CAPTION:  # too long for a caption: the text goes first, on its own
            first, caption = await self._send_text(to, caption), ""
        if caption:
            media["caption"] = caption
        sent = await self._send(to, kind, media)
        return first or sent

    async def _send(self, to: str, kind: str, content: dict[str, Any]) -> str:
        result = await self._call("POST", f"{self._phone_id}/messages", json={
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": kind, kind: content,
        })
        return str(result["messages"][0]["id"])

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One Graph API request; its JSON answer, or ChannelUnavailable (retry later) / DestinationRefused."""
        if self._http is None:
            raise ChannelUnavailable("the WhatsApp channel is not started")
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # refused, reset, timed out
            self._start_reconnect()
            raise ChannelUnavailable(f"WhatsApp's Graph API is unreachable: {exc!r}") from exc
        if response.is_success:
            return response.json()  # type: ignore[no-any-return]
        error = _graph_error(response)
        code, text = error.get("code"), str(error.get("message") or response.reason_phrase)
        if response.status_code >= 500:
            self._start_reconnect()
            raise ChannelUnavailable(f"WhatsApp is unavailable ({response.status_code}): {text}")
        if response.status_code == 429 or code in TRANSIENT_CODES:
            raise ChannelUnavailable(f"WhatsApp asks to slow down (code {code}): {text}")
        if response.status_code == 401 or code == 190:
            # Retried rather than dropped: nothing is lost while the owner renews the token.
            log.error("whatsapp.token_refused", status=response.status_code)
            raise ChannelUnavailable(f"WhatsApp refused WHATSAPP_ACCESS_TOKEN: {text}")
        data = error.get("error_data")
        details = f" — {data['details']}" if isinstance(data, dict) and data.get("details") else ""
        raise DestinationRefused(f"WhatsApp refused the message (code {code}): {text}{details}")

    # -- reconnect -------------------------------------------------------------

    def _start_reconnect(self) -> None:
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Probe the Graph API with backoff after an outage; tell the host when sends can go out again."""
        backoff = self.backoff()
        while True:
            await backoff.wait("Graph API unavailable")
            try:
                assert self._http is not None
                if (await self._http.get(self._phone_id)).status_code < 500:
                    break
            except httpx.TransportError:
                pass
        log.info("channel.reconnected", channel=self.type)
        self.host.channel_ready(self.type)


def _graph_error(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _button_id(card_id: str, index: int, label: str, limit: int) -> str:
    # The full label rides in the id because titles are clipped to 20/24 characters on screen.
    return f"{ID_PREFIX}|{card_id}|{index}|{label}"[:limit]


def _decode_button_id(button_id: str) -> tuple[str, str] | None:
    """(card_id, label) of a button this channel made, else None."""
    parts = button_id.split("|", 3)
    if len(parts) != 4 or parts[0] != ID_PREFIX or not parts[1]:
        return None
    return parts[1], parts[3]


def _interactive(message: OutgoingMessage) -> dict[str, Any] | None:
    """Reply buttons (≤ 3) or a list (≤ 10) for a card; None when it does not fit WhatsApp's widgets."""
    buttons, card_id = message.buttons, message.card_id
    if not buttons or not card_id or len(buttons) > MAX_LIST_ROWS:
        return None
    body = to_whatsapp(message.text or "") or message.title or "…"
    interactive: dict[str, Any]
    if len(buttons) <= MAX_REPLY_BUTTONS:
        if len(body) > BUTTON_BODY:
            return None
        replies = [{"id": _button_id(card_id, i, label, BUTTON_ID), "title": _clip(label, BUTTON_TITLE)}
                   for i, label in enumerate(buttons)]
        interactive = {"type": "button", "body": {"text": body},
                       "action": {"buttons": [{"type": "reply", "reply": reply} for reply in replies]}}
    else:
        if len(body) > LIST_BODY:
            return None
        rows = []
        for i, label in enumerate(buttons):
            row = {"id": _button_id(card_id, i, label, ROW_ID), "title": _clip(label, ROW_TITLE)}
            if len(label) > ROW_TITLE:
                row["description"] = _clip(label, ROW_DESCRIPTION)
            rows.append(row)
        interactive = {"type": "list", "body": {"text": body},
                       "action": {"button": LIST_BUTTON, "sections": [{"rows": rows}]}}
    if message.title and message.text:
        interactive["header"] = {"type": "text", "text": _clip(message.title, HEADER)}
    return interactive
