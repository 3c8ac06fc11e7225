"""The Microsoft Teams channel: a bot of the Azure Bot Service, activities in at `/hooks/teams`, replies
through the Bot Connector with the Microsoft 365 Agents SDK's activity schema and connector client.

Every activity is POSTed with a Bot Framework JWT: the channel checks its RS256 signature against
the keys the Bot Framework publishes (OpenID metadata → JWKS, cached by PyJWT), the issuer, the
audience (our app id), its expiry (5 minutes of leeway, as the SDK allows) and that its
`serviceurl` claim is the activity's serviceUrl, so nobody can make the bot send its token
elsewhere. Refusals are logged and answered 401.

A chat is a Teams conversation: a personal chat (DM), a group chat, or a channel. In a channel each
post and its replies form a thread (`…;messageid=<root>`), so each thread is its own session; chats
have no threads. The serviceUrl of each conversation is kept in `state/teams-conversations.json`,
so the bot writes there after a restart; others go to Teams' global connector address.

Cards are Adaptive Cards (`adaptive_cards.py`); a credential request's "Enter credential" opens a
task module (a dialog) whose password input is answered in the invoke's HTTP response. The Bot
Framework gives bots no reactions, no file upload without Graph, and no history to catch up from
(docs/channels/teams.md says so).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import jwt
import pydantic
from aiohttp import web
from microsoft_agents.activity import Activity, Attachment, ChannelAccount, ConversationAccount
from microsoft_agents.hosting.core.connector.client import ConnectorClient

from nanoclaw.channels import adaptive_cards as cards
from nanoclaw.channels import credentials
from nanoclaw.channels.base import Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.teams_auth import BotToken, TokenRefused, TokenValidator
from nanoclaw.channels.text import split_message, to_markdown
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

# Teams' global Bot Connector address, for conversations the bot has not heard from since this host's first start.
DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/teams/"
MAX_TEXT = 20000  # Teams takes ~28 KB per message, card and envelope included
MAX_FILE = 100 * 2**20
DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info"
THREAD_MARK = ";messageid="


class TeamsChannel(Channel):
    type = "teams"
    settings_asked = ("TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_TENANT_ID")
    capabilities = Capabilities(
        threads=True, edits=True, cards=True, modals=True, typing=True, max_message_length=MAX_TEXT,
        formatting="Teams Markdown: **bold**, _italic_, ~~strike~~, `code`, ``` blocks, lists and [links](url)",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._validator: TokenValidator | None = None
        self._token: BotToken | None = None
        self._clients: dict[str, ConnectorClient] = {}  # serviceUrl → client
        self._conversations: dict[str, dict[str, str]] = {}  # conversation → {"service_url", "type"}
        self._file: Path | None = None
        self._failing = False
        self._inbound = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        extra = self.host.settings.extra
        app_id, password = extra.get("TEAMS_APP_ID", ""), extra.get("TEAMS_APP_PASSWORD", "")
        if not app_id or not password:
            raise ConfigError("TEAMS_APP_ID and TEAMS_APP_PASSWORD are needed: the Microsoft App ID of the Azure Bot"
                              " and a client secret of its app registration (see docs/channels/teams.md)")
        self._app_id = app_id
        self._default_service = extra.get("TEAMS_SERVICE_URL") or DEFAULT_SERVICE_URL
        self._validator = TokenValidator(app_id, extra.get("TEAMS_OPENID_URL") or None)
        self._token = BotToken(app_id, password, extra.get("TEAMS_TENANT_ID") or None, extra.get("TEAMS_TOKEN_URL") or None)
        self._file = self.host.settings.state_dir / "teams-conversations.json"
        saved = read_position(self._file, self.type)
        self._conversations = {k: v for k, v in saved.items() if isinstance(v, dict) and
                               isinstance(v.get("service_url"), str)} if isinstance(saved, dict) else {}
        url = self.host.register_webhook(self.type, self._on_webhook)
        log.info("teams.started", webhook=url, app_id=app_id)

    async def stop(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    # -- inbound ---------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST" or self._validator is None:
            return web.Response(status=405 if request.method != "POST" else 503)
        body = await request.read()
        try:
            activity = Activity.model_validate_json(body)
            if not activity.type or activity.conversation is None or not activity.conversation.id:
                raise ValueError("an activity needs a type and a conversation")
        except (ValueError, pydantic.ValidationError) as exc:
            # Checked after the token below too; parsing first only picks the serviceUrl to compare with.
            activity = None
            parse_error: Exception | None = exc
        else:
            parse_error = None
        auth = request.headers.get("Authorization", "")
        try:
            await self._validator.check(auth[7:].strip() if auth.startswith("Bearer ") else "",
                                        activity.service_url if activity is not None else None)
        except TokenRefused as exc:
            log.warning("teams.webhook_rejected", reason=str(exc), remote=request.remote)
            return web.Response(status=401, text="invalid token")
        if activity is None:
            log.warning("teams.payload_malformed", error=type(parse_error).__name__)
            return web.Response(status=400, text="malformed activity")
        self._remember(activity)
        async with self._inbound:
            if activity.type == "invoke":
                return web.json_response(await self._on_invoke(activity))
            if activity.type == "message":
                await self._on_message(activity)
        return web.Response(status=202)

    def _remember(self, activity: Activity) -> None:
        base, _ = _split(activity.conversation.id)
        entry = {"service_url": str(activity.service_url or ""), "type": str(activity.conversation.conversation_type or "")}
        if entry["service_url"] and self._conversations.get(base) != entry:
            self._conversations[base] = entry
            if self._file is not None:
                write_position(self._file, self._conversations, self.type)

    async def _on_message(self, activity: Activity) -> None:
        sender, me = activity.from_property, activity.recipient
        if sender is None or not sender.id or not activity.id:
            log.warning("teams.payload_malformed", error="message without sender or id")
            return
        if me is not None and sender.id == me.id:
            return
        press = cards.parse_press(activity.value) if activity.value is not None else None
        if press is not None and press.kind == "answer":
            await self._on_answer(activity, press)
            return
        if press is not None and press.kind == "refuse":
            status = credentials.submit(self.host, self.type, press.token, None, sender.id)
            log.info("teams.credential", status=status.partition(":")[0])
            if status.startswith("refused:"):
                await self._notice(activity.conversation.id, credentials.reply(status))
            else:
                await self._close_card(activity, f"{credentials.outcome(status)} ({sender.name or 'someone'})")
            return
        base, thread = _split(activity.conversation.id)
        kind = activity.conversation.conversation_type or ""
        if kind == "channel" and thread is None:
            thread = activity.id  # a new post: its replies will carry its id
        text, mentioned = self._mentions(activity)
        files, notes = await self._download(activity.attachments or [])
        direct = kind == "personal"
        result = await self.host.receive(InboundEvent(
            channel_type=self.type, platform_id=base, message_id=activity.id,
            text="\n".join([text, *notes]).strip(), sender_id=sender.id, sender_name=sender.name,
            thread_id=thread if kind == "channel" else None, is_dm=direct,
            chat_name=sender.name if direct else activity.conversation.name, mentions_assistant=mentioned,
            files=tuple(files), from_bot=sender.role == "bot" or sender.id.startswith("28:"),
        ))
        if not result.accepted and result.error:
            await self._notice(activity.conversation.id, result.error)

    def _mentions(self, activity: Activity) -> tuple[str, bool]:
        """The text with each `<at>Name</at>` as `@Name` (ours as the assistant's name), and whether we were."""
        text, mentioned = activity.text or "", False
        me = activity.recipient.id if activity.recipient else None
        for entity in activity.entities or []:
            data = entity.model_dump(by_alias=True)
            who = data.get("mentioned") or {}
            if data.get("type") != "mention" or not isinstance(who, dict):
                continue
            ours = who.get("id") == me
            mentioned = mentioned or ours
            name = self.host.settings.assistant_name if ours else str(who.get("name") or "")
            if isinstance(data.get("text"), str) and data["text"]:
                text = text.replace(data["text"], f"@{name}")
        return text.strip(), mentioned

    async def _download(self, attachments: list[Attachment]) -> tuple[list[FileAttachment], list[str]]:
        got: list[FileAttachment] = []
        notes: list[str] = []
        for item in attachments:
            if item.content_type != DOWNLOAD_INFO or not isinstance(item.content, dict):
                continue  # cards, the HTML copy of the text, inline images: not files
            name, url = str(item.name or "file"), item.content.get("downloadUrl")
            if not isinstance(url, str) or not url.startswith(("https://", "http://127.0.0.1")):
                notes.append(f"[{name} could not be received: no download link]")
                continue
            try:  # a pre-authenticated SharePoint link: no token of ours goes there
                async with httpx.AsyncClient(timeout=60, follow_redirects=True) as client:
                    async with client.stream("GET", url) as response:
                        response.raise_for_status()
                        data = bytearray()
                        async for chunk in response.aiter_bytes():
                            data += chunk
                            if len(data) > MAX_FILE:
                                break
            except httpx.HTTPError as exc:
                log.warning("teams.file_failed", error=type(exc).__name__)
                notes.append(f"[{name} could not be downloaded]")
                continue
            if len(data) > MAX_FILE:
                notes.append(f"[{name} not received: larger than 100 MB]")
            else:
                got.append(FileAttachment(name, bytes(data), None))
        return got, notes

    async def _on_answer(self, activity: Activity, press: cards.Press) -> None:
        sender = activity.from_property
        assert sender is not None and sender.id
        error = await self.host.answer(press.card_id, press.label, sender.id)
        if error:
            await self._notice(activity.conversation.id, error)
            return
        await self._close_card(activity, f"{sender.name or 'Someone'} chose **{press.label}**")

    async def _on_invoke(self, activity: Activity) -> dict[str, Any]:
        """Task modules: `task/fetch` opens the credential form, `task/submit` brings what was typed."""
        value = activity.value if isinstance(activity.value, dict) else {}
        data = value.get("data") if isinstance(value.get("data"), dict) else {}
        typed = cards.take_value(data)  # out of the payload first, whatever follows
        press = cards.parse_press(data)
        sender = activity.from_property
        if press is None or sender is None or not sender.id:
            log.warning("teams.invoke_malformed", name=str(activity.name or ""))
            return {}
        if activity.name == "task/fetch" and press.kind == "form":
            form = cards.credential_form({"token": press.token, "name": press.name, "host": press.host})
            return {"task": {"type": "continue", "value": {"title": "Credential needed", "height": "small",
                                                            "width": "medium", "card": cards.attachment(form)}}}
        if activity.name != "task/submit" or press.kind != "credential" or not typed:
            return {"task": {"type": "message", "value": "Enter the value, or close this form."}}
        status = credentials.submit(self.host, self.type, press.token, typed, sender.id)
        del typed
        log.info("teams.credential", status=status.partition(":")[0])
        if not status.startswith("refused:") and activity.reply_to_id:
            await self._close_card(activity, f"{credentials.outcome(status)} ({sender.name or 'someone'})")
        return {"task": {"type": "message", "value": credentials.reply(status)}}

    async def _close_card(self, activity: Activity, outcome: str) -> None:
        """Replace the pressed card (activity.replyToId) by the outcome, without buttons (Teams does not send
        the card back with a press, and the Bot Connector cannot read it, so its text is not kept)."""
        if not activity.reply_to_id:
            return
        card = cards.answered_card([], to_markdown(outcome))
        update = self._activity(activity.conversation.id, attachments=[cards.attachment(card)])
        update.id = activity.reply_to_id
        try:
            await self._connector(activity.conversation.id, "update", lambda c: c.conversations.update_activity(
                activity.conversation.id, activity.reply_to_id or "", update))
        except (ChannelUnavailable, DestinationRefused) as exc:  # the answer itself was taken
            log.warning("teams.card_update_failed", error=str(exc))

    async def _notice(self, conversation: str, text: str) -> None:
        try:
            await self._post(conversation, self._activity(conversation, text=text))
        except (ChannelUnavailable, DestinationRefused) as exc:
            log.warning("teams.notice_failed", error=str(exc))

    # -- outbound --------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        conversation = _join(message.route.platform_id, message.route.thread_id)
        text = to_markdown(message.text or "")
        card: dict[str, Any] | None = None
        credential = cards.credential_request(message)
        if credential is not None:
            card = cards.credential_card(message, credential, task_module=True)
        elif message.buttons and message.card_id:
            card = cards.question_card(message)
        if card is not None:  # the card carries the title, text and buttons
            return SendResult(await self._post(conversation, self._activity(
                conversation, attachments=[cards.attachment(card)])))
        if message.file is not None:  # bots upload files only through Graph: the host's text says what it was
            text = text or f"(a file, {message.file.name}, could not be attached on Teams)"
        if message.title:
            text = f"**{message.title}**\n\n{text}"
        if message.buttons:
            text += "\n\n" + "\n".join(f"{i}) {label}" for i, label in enumerate(message.buttons, 1))
        first: str | None = None
        for piece in split_message(text, MAX_TEXT):
            sent = await self._post(conversation, self._activity(conversation, text=piece))
            first = first or sent
        return SendResult(first)

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        conversation = _join(route.platform_id, route.thread_id)
        update = self._activity(conversation, text=split_message(to_markdown(text), MAX_TEXT)[0])
        update.id = platform_message_id
        await self._connector(conversation, "update", lambda c: c.conversations.update_activity(
            conversation, platform_message_id, update))

    async def close_card(self, route: Route, platform_message_id: str, card_id: str, text: str, outcome: str) -> None:
        # An update replaces the whole activity: the same card's text, the outcome, and no actions.
        conversation = _join(route.platform_id, route.thread_id)
        card = cards.answered_card([{"type": "TextBlock", "text": to_markdown(text), "wrap": True}],
                                   to_markdown(outcome))
        update = self._activity(conversation, attachments=[cards.attachment(card)])
        update.id = platform_message_id
        await self._connector(conversation, "update", lambda c: c.conversations.update_activity(
            conversation, platform_message_id, update))

    async def set_typing(self, route: Route, on: bool) -> None:
        if on:  # Teams hides the indicator by itself after a few seconds or at the next message
            conversation = _join(route.platform_id, route.thread_id)
            await self._post(conversation, Activity(type="typing", conversation=ConversationAccount(id=conversation),
                                                    from_property=ChannelAccount(id=f"28:{self._app_id}")))

    def _activity(self, conversation: str, *, text: str | None = None,
                  attachments: list[dict[str, Any]] | None = None) -> Activity:
        fields: dict[str, Any] = {"type": "message", "conversation": {"id": conversation},
                                  "from": {"id": f"28:{self._app_id}"}}
        if text is not None:
            fields.update(text=text, textFormat="markdown")
        if attachments:
            fields["attachments"] = attachments
        return Activity.model_validate(fields)

    async def _post(self, conversation: str, activity: Activity) -> str:
        sent = await self._connector(conversation, "send", lambda c: c.conversations.send_to_conversation(
            conversation, activity))
        return str(sent.id or "")

    async def _connector(self, conversation: str, what: str, call: Any) -> Any:
        """One Bot Connector call for `conversation`; outages are ChannelUnavailable, refusals DestinationRefused."""
        base, _ = _split(conversation)
        service = (self._conversations.get(base) or {}).get("service_url") or self._default_service
        if self._token is None:
            raise ChannelUnavailable("the Teams channel is not started")
        try:
            token = await self._token.get()
            client = self._clients.get(service)
            if client is None:
                client = self._clients[service] = ConnectorClient(service, token)
            client.client.headers["Authorization"] = f"Bearer {token}"
            result = await call(client)
        except aiohttp.ClientResponseError as exc:
            reason = f"Teams {what}: {exc.status}"
            if exc.status in (401, 408, 429) or exc.status >= 500:  # 401: an expired token, fetched anew next time
                if exc.status == 401 and self._token is not None:
                    self._token.forget()
                self._failing = True
                raise ChannelUnavailable(reason) from exc
            raise DestinationRefused(reason) from exc
        except (aiohttp.ClientError, httpx.HTTPError, asyncio.TimeoutError, OSError) as exc:
            self._failing = True
            raise ChannelUnavailable(f"Teams unreachable ({what}): {type(exc).__name__}") from exc
        if self._failing:
            self._failing = False
            self.host.channel_ready(self.type)
        return result


def _split(conversation: str) -> tuple[str, str | None]:
    """`19:x@thread.tacv2;messageid=17` → (`19:x@thread.tacv2`, `17`); other ids have no thread."""
    base, mark, thread = conversation.partition(THREAD_MARK)
    return base, (thread or None) if mark else None


def _join(chat: str, thread: str | None) -> str:
    return f"{chat}{THREAD_MARK}{thread}" if thread else chat

