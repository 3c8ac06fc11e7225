"""The Google Chat channel: a Chat app on an HTTP endpoint (`/hooks/googlechat`), answering through the Chat API.

Google posts each interaction event with a bearer token: a JWT signed by Google for
`chat@system.gserviceaccount.com` whose audience is the Cloud project number. The channel checks it
with google-auth against Google's published certificates (cached, refetched for an unknown key id),
the issuer and the audience, and refuses (and logs) anything else, expired tokens included.

A chat is a space (`spaces/…`); in spaces with threaded replies each thread (`spaces/…/threads/…`)
is its own session; direct messages and unthreaded spaces drop the thread. Messages go out with
google-apps-chat (the REST transport) authenticated as the app's service account. Cards are cards v2
(`googlechat_cards.py`); a credential request opens a dialog. A click is answered in the HTTP
response itself (the card updated in place), as Chat expects.

What Chat does not let an app do with its own (app) authentication is left out, said in
docs/channels/googlechat.md: reactions, uploading files, typing, and reading history to catch up.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any, Callable, TypeVar

import httpx
import requests
from aiohttp import web
from google.api_core import exceptions as google_errors
from google.apps import chat_v1
from google.auth import exceptions as auth_errors
from google.auth import jwt as google_jwt
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account
from google.protobuf import field_mask_pb2

from nanoclaw.channels import credentials
from nanoclaw.channels import googlechat_cards as cards
from nanoclaw.channels.base import Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult
from nanoclaw.channels.text import split_message, to_google_chat
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

DEFAULT_API_URL = "https://chat.googleapis.com"
CHAT_ISSUER = "chat@system.gserviceaccount.com"
DEFAULT_CERTS_URL = f"https://www.googleapis.com/service_accounts/v1/metadata/x509/{CHAT_ISSUER}"
SCOPES = ["https://www.googleapis.com/auth/chat.bot"]
MAX_TEXT = 4096
MAX_FILE = 200 * 2**20
CLOCK_SKEW = 30  # seconds allowed between Google's clock and ours
CERTS_MAX_AGE = 3600.0
T = TypeVar("T")


class GoogleChatChannel(Channel):
    type = "googlechat"
    settings_asked = ("GOOGLECHAT_SERVICE_ACCOUNT_FILE", "GOOGLECHAT_PROJECT_NUMBER")
    capabilities = Capabilities(
        threads=True, edits=True, cards=True, modals=True, max_message_length=MAX_TEXT,
        formatting="Google Chat: *bold* _italic_ ~strike~ `code` ```blocks```; links show as <url|text>;"
                   " no headings or tables",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._client: chat_v1.ChatServiceClient | None = None
        self._session: AuthorizedSession | None = None
        self._certs: dict[str, str] = {}
        self._certs_at = 0.0
        self._certs_lock = asyncio.Lock()
        self._failing = False

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        extra = self.host.settings.extra
        key_file = extra.get("GOOGLECHAT_SERVICE_ACCOUNT_FILE", "")
        self._project = extra.get("GOOGLECHAT_PROJECT_NUMBER", "").strip()
        if not key_file:
            raise ConfigError("GOOGLECHAT_SERVICE_ACCOUNT_FILE is not set: the path of the JSON key of the Chat app's"
                              " service account (see docs/channels/googlechat.md)")
        if not self._project.isdigit():
            raise ConfigError("GOOGLECHAT_PROJECT_NUMBER is not set (or not a number): the project number on the"
                              " Google Cloud console's dashboard; Google's tokens are addressed to it")
        try:
            creds = service_account.Credentials.from_service_account_file(key_file, scopes=SCOPES)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"GOOGLECHAT_SERVICE_ACCOUNT_FILE ({key_file}) is not a readable service account key:"
                              f" {type(exc).__name__}") from exc
        self._api_url = (extra.get("GOOGLECHAT_API_URL") or DEFAULT_API_URL).rstrip("/")
        self._certs_url = extra.get("GOOGLECHAT_CERTS_URL") or DEFAULT_CERTS_URL
        self._client = chat_v1.ChatServiceClient(credentials=creds, transport="rest",
                                                 client_options={"api_endpoint": self._api_url})
        self._session = AuthorizedSession(creds)
        url = self.host.register_webhook(self.type, self._on_webhook)
        log.info("googlechat.started", webhook=url, project=self._project)

    async def stop(self) -> None:
        if self._session is not None:
            self._session.close()
        self._client = self._session = None

    # -- inbound ---------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405)
        auth = request.headers.get("Authorization", "")
        reason = await self._token_refused(auth[7:].strip() if auth.startswith("Bearer ") else "")
        if reason:
            log.warning("googlechat.webhook_rejected", reason=reason, remote=request.remote)
            return web.Response(status=401, text="invalid token")
        try:
            event = json.loads(await request.read())
            if not isinstance(event, dict):
                raise ValueError("not an object")
            kind = event.get("type")
            if kind == "MESSAGE":
                await self._on_message(event)
                return web.json_response({})
            if kind == "CARD_CLICKED":
                return web.json_response(await self._on_click(event))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("googlechat.payload_malformed", error=type(exc).__name__)
            return web.Response(status=400, text="malformed event")
        return web.json_response({})  # ADDED_TO_SPACE, REMOVED_FROM_SPACE…: nothing to say

    async def _token_refused(self, token: str) -> str | None:
        """Why the bearer token is not Google's for this project (None: it is)."""
        if not token:
            return "no bearer token"
        try:
            head = token.split(".")[0]
            header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
            certs = await self._google_certs(str(header.get("kid") or "") if isinstance(header, dict) else "")
            claims = google_jwt.decode(token, certs=certs, audience=self._project, clock_skew_in_seconds=CLOCK_SKEW)
        except (ValueError, IndexError, TypeError, auth_errors.GoogleAuthError, httpx.HTTPError) as exc:  # binascii.Error is a ValueError
            return f"token not valid: {type(exc).__name__}"
        if claims.get("iss") != CHAT_ISSUER:
            return "token not issued by Google Chat"
        return None

    async def _google_certs(self, kid: str) -> dict[str, str]:
        async with self._certs_lock:
            stale = time.monotonic() - self._certs_at > CERTS_MAX_AGE
            if stale or (kid not in self._certs and time.monotonic() - self._certs_at > 10):
                async with httpx.AsyncClient(timeout=15) as client:
                    response = await client.get(self._certs_url)
                    response.raise_for_status()
                    certs = response.json()
                if not isinstance(certs, dict):
                    raise ValueError("Google's certificates are not a JSON object")
                self._certs, self._certs_at = {str(k): str(v) for k, v in certs.items()}, time.monotonic()
            return self._certs

    async def _on_message(self, event: dict[str, Any]) -> None:
        message, space = event["message"], event["space"]
        sender = message.get("sender") or event.get("user") or {}
        name, space_name, sender_id = message["name"], space["name"], sender["name"]
        if not all(isinstance(v, str) and v for v in (name, space_name, sender_id)):
            raise ValueError("message, space or sender without a name")
        direct = space.get("type") == "DM" or space.get("spaceType") == "DIRECT_MESSAGE" or bool(space.get("singleUserBotDm"))
        threaded = space.get("spaceThreadingState") == "THREADED_MESSAGES" or space.get("threaded") is True
        thread = (message.get("thread") or {}).get("name") if threaded and not direct else None
        mentioned = any(a.get("type") == "USER_MENTION" and ((a.get("userMention") or {}).get("user") or {})
                        .get("type") == "BOT" for a in message.get("annotations") or [] if isinstance(a, dict))
        files, notes = await self._download(message.get("attachment"))
        text = message.get("text") if isinstance(message.get("text"), str) else ""
        display = sender.get("displayName") if isinstance(sender.get("displayName"), str) else None
        result = await self.host.receive(InboundEvent(
            channel_type=self.type, platform_id=space_name, message_id=name,
            text="\n".join([text, *notes]).strip(), sender_id=sender_id, sender_name=display,
            thread_id=thread if isinstance(thread, str) else None, is_dm=direct,
            chat_name=display if direct else space.get("displayName"), mentions_assistant=mentioned,
            files=tuple(files), from_bot=sender.get("type") == "BOT",
        ))
        if not result.accepted and result.error:
            try:
                await self._create(space_name, thread if isinstance(thread, str) else None, {"text": result.error})
            except (ChannelUnavailable, DestinationRefused) as exc:
                log.warning("googlechat.notice_failed", error=str(exc))

    async def _on_click(self, event: dict[str, Any]) -> dict[str, Any]:
        """The synchronous answer to a card click (or to a dialog's request and submission)."""
        value = cards.take_value(event)  # out of the event first, whatever follows
        click = cards.parse_click(event)
        user = (event.get("user") or {}).get("name")
        if click is None or not isinstance(user, str):
            log.warning("googlechat.click_malformed")
            return {}
        display = (event.get("user") or {}).get("displayName") or "Someone"
        if click.function == cards.ANSWER:
            error = await self.host.answer(click.params["card"], click.params.get("label", ""), user)
            if error:
                return {"actionResponse": {"type": "NEW_MESSAGE"}, "text": error}
            return cards.answered(event.get("message"), f"{display} chose *{click.params.get('label', '')}*")
        if click.function == cards.FORM:
            return cards.credential_dialog(click.params)
        if click.function == cards.SAVE and not value:
            return cards.dialog_status("Enter the value, or close this dialog.", ok=False)
        status = credentials.submit(self.host, self.type, click.params["token"],
                                    value if click.function == cards.SAVE else None, user)
        del value
        log.info("googlechat.credential", status=status.partition(":")[0])
        if click.function == cards.SAVE:
            return cards.dialog_status(credentials.reply(status), ok=status == "saved")
        if status.startswith("refused:"):
            return {"actionResponse": {"type": "NEW_MESSAGE"}, "text": credentials.reply(status)}
        return cards.answered(event.get("message"), f"{credentials.outcome(status)} ({display})")

    async def _download(self, attachments: Any) -> tuple[list[FileAttachment], list[str]]:
        got: list[FileAttachment] = []
        notes: list[str] = []
        for item in attachments if isinstance(attachments, list) else []:
            if not isinstance(item, dict):
                continue
            name = str(item.get("contentName") or "file")
            ref = (item.get("attachmentDataRef") or {}).get("resourceName")
            if not isinstance(ref, str) or not ref:  # a Drive file: Chat gives a link, not the data
                notes.append(f"[{name}: a Google Drive file, not downloaded]")
                continue
            try:
                data = await self._call("media.download", lambda _: self._fetch_media(ref))
            except (ChannelUnavailable, DestinationRefused) as exc:
                log.warning("googlechat.file_failed", error=str(exc))
                notes.append(f"[{name} could not be downloaded]")
                continue
            if data is None:
                notes.append(f"[{name} not received: larger than 200 MB]")
            else:
                got.append(FileAttachment(name, data, item.get("contentType") or None))
        return got, notes

    def _fetch_media(self, resource: str) -> bytes | None:
        assert self._session is not None
        with self._session.get(f"{self._api_url}/v1/media/{resource}", params={"alt": "media"}, stream=True,
                               timeout=60) as response:
            if response.status_code >= 400:
                raise google_errors.from_http_response(response)
            data = bytearray()
            for chunk in response.iter_content(65536):
                data += chunk
                if len(data) > MAX_FILE:
                    return None
            return bytes(data)

    # -- outbound --------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        space, thread = message.route.platform_id, message.route.thread_id
        text = to_google_chat(message.text or "")
        card: dict[str, Any] | None = None
        credential = cards.credential_request(message)
        if credential is not None:
            card = cards.credential_card(message, credential)
        elif message.buttons and message.card_id:
            card = cards.question_card(message)
        if message.file is not None:  # an app cannot upload files to Chat: the host's text says what it was
            text = text or f"(a file, {message.file.name}, could not be attached on Google Chat)"
        if card is not None:  # the card carries the text
            return SendResult(await self._create(space, thread, {"cardsV2": [card], "fallbackText": text[:MAX_TEXT]}))
        if message.title:
            text = f"*{message.title}*\n{text}"
        if message.buttons:
            text += "\n" + "\n".join(f"{i}) {label}" for i, label in enumerate(message.buttons, 1))
        first: str | None = None
        for piece in split_message(text, MAX_TEXT):
            sent = await self._create(space, thread, {"text": piece})
            first = first or sent
        return SendResult(first)

    async def _create(self, space: str, thread: str | None, body: dict[str, Any]) -> str:
        request: dict[str, Any] = {"parent": space}
        if thread:
            body = {**body, "thread": {"name": thread}}
            request["message_reply_option"] = chat_v1.CreateMessageRequest.MessageReplyOption \
                .REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD
        request["message"] = chat_v1.Message.from_json(json.dumps(body))
        sent = await self._call("messages.create", lambda c: c.create_message(request=request, retry=None,
                                                                              timeout=30))
        return str(sent.name)

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        body = chat_v1.Message(name=platform_message_id, text=split_message(to_google_chat(text), MAX_TEXT)[0])
        await self._call("messages.update", lambda c: c.update_message(
            message=body, update_mask=field_mask_pb2.FieldMask(paths=["text"]), retry=None, timeout=30))

    async def close_card(self, route: Route, platform_message_id: str, card_id: str, text: str, outcome: str) -> None:
        # Updating text alone keeps a message's cards (and their buttons): cards_v2 is replaced by none.
        body = chat_v1.Message(name=platform_message_id,
                               text=split_message(to_google_chat(f"{text}\n\n{outcome}"), MAX_TEXT)[0], cards_v2=[])
        await self._call("messages.update", lambda c: c.update_message(
            message=body, update_mask=field_mask_pb2.FieldMask(paths=["text", "cards_v2"]), retry=None, timeout=30))

    async def _call(self, what: str, call: Callable[[chat_v1.ChatServiceClient], T]) -> T:
        """One client call in a worker thread; outages are ChannelUnavailable, refusals DestinationRefused."""
        client = self._client
        if client is None:
            raise ChannelUnavailable("the Google Chat channel is not started")
        try:
            result = await asyncio.to_thread(call, client)
        except google_errors.GoogleAPICallError as exc:
            code = int(exc.code or 0)
            reason = f"Google Chat {what}: {code} {exc.message}"[:300]
            if code in (408, 429) or code >= 500:
                self._failing = True
                raise ChannelUnavailable(reason) from exc
            raise DestinationRefused(reason) from exc
        except (requests.RequestException, auth_errors.TransportError, auth_errors.RefreshError) as exc:
            # A refused service-account key is also retried: nothing is lost while the owner fixes it.
            self._failing = True
            raise ChannelUnavailable(f"Google Chat unreachable ({what}): {type(exc).__name__}") from exc
        if self._failing:
            self._failing = False
            self.host.channel_ready(self.type)
        return result
