"""The Telegram channel: a bot on the Telegram Bot API through python-telegram-bot.

Owns the bot's connection (long polling with getUpdates by default, or a webhook
at the host's `/hooks/telegram` when TELEGRAM_WEBHOOK_URL is set), turning
messages and button presses into host events, and sending the agent's replies
as Telegram HTML: split at 4096 characters, cards as inline keyboards, files as
documents, typing as a chat action. Telegram has no threads: one chat, one
conversation.

Settings (credentials.env): TELEGRAM_BOT_TOKEN (required), TELEGRAM_API_BASE,
TELEGRAM_FILE_BASE, TELEGRAM_WEBHOOK_URL, TELEGRAM_WEBHOOK_SECRET.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path
from typing import Any, Iterator

from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ChatAction, ChatType, MessageEntityType, ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, TelegramError
from telegram.request import HTTPXRequest

from nanoclaw.channels import whoami
from nanoclaw.channels.base import (
    Backoff, Capabilities, Channel, FileAttachment, InboundEvent, OutgoingMessage, SendResult, render_text,
)
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.text import split_message, to_plain, to_telegram_html
from nanoclaw.config import Settings
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes, Telegram's limit
MAX_DOWNLOAD = 20 * 2**20  # the Bot API refuses getFile above 20 MB
POLL_TIMEOUT = 25  # seconds a getUpdates long poll waits for news
TYPING_REFRESH = 4.0  # Telegram shows "typing…" for 5 s after each chat action
TYPING_MAX = 600.0  # never type forever if the host's "off" is lost
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
UPDATES = ["message", "callback_query"]


def _usable_update(raw: Any) -> Any:
    """`raw` if python-telegram-bot can parse it; a bare {update_id} (to confirm and skip) or None if not."""
    update_id = raw.get("update_id") if isinstance(raw, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        log.warning("telegram.malformed_update", reason="no update_id")
        return None
    try:
        Update.de_json(raw, None)
        return raw
    except Exception as exc:
        log.warning("telegram.malformed_update", update_id=update_id, error=type(exc).__name__)
        return {"update_id": update_id}


class _UpdatesRequest(HTTPXRequest):
    """getUpdates transport that replaces unparseable updates, so one bad update never blocks the queue.

    python-telegram-bot parses a whole batch at once; one malformed entry would fail
    every poll at the same offset. The documented hook is `parse_json_payload`.
    """

    def parse_json_payload(self, payload: bytes) -> dict[str, Any]:
        data = super().parse_json_payload(payload)
        if isinstance(data.get("result"), list):
            data["result"] = [u for u in map(_usable_update, data["result"]) if u is not None]
        return data


@contextlib.contextmanager
def _delivery_errors(token: str) -> Iterator[None]:
    """Telegram errors as the host's: transient → ChannelUnavailable, permanent → DestinationRefused."""
    try:
        yield
    except ChatMigrated as exc:
        raise DestinationRefused(f"the group became a supergroup: its new id is {exc.new_chat_id}") from exc
    except (BadRequest, Forbidden) as exc:
        raise DestinationRefused(f"telegram: {_safe(exc, token)}") from exc
    except TelegramError as exc:  # NetworkError, TimedOut, RetryAfter (429), 5xx, InvalidToken, Conflict
        raise ChannelUnavailable(f"telegram: {_safe(exc, token)}") from exc


def _safe(exc: BaseException, token: str) -> str:
    """An error text fit for logs: python-telegram-bot puts the token in some messages."""
    return f"{type(exc).__name__}: {exc}".replace(token, "<token>") if token else f"{type(exc).__name__}: {exc}"


def _chat_id(platform_id: str) -> int | str:
    try:
        return int(platform_id)
    except ValueError:
        return platform_id  # "@channelname"


def _message_id(platform_message_id: str) -> int:
    try:
        return int(platform_message_id)
    except ValueError as exc:
        raise DestinationRefused(f"not a Telegram message id: {platform_message_id!r}") from exc


def html_pieces(markdown: str, md_limit: int = MAX_TEXT) -> list[str]:
    """Markdown as Telegram HTML pieces of at most 4096 characters each.

    The Markdown is split first (so every piece is balanced HTML) and a piece whose
    HTML came out longer than the limit (escapes, tags) is split again, smaller.
    """
    pieces: list[str] = []
    for part in split_message(markdown, md_limit):
        converted = to_telegram_html(part)
        if len(converted) <= MAX_TEXT or len(part) <= 1:
            pieces.append(converted)
        else:
            pieces.extend(html_pieces(part, max(1, min(len(part) - 1, len(part) * MAX_TEXT // len(converted) - 32))))
    return [p for p in pieces if p.strip()]


class TelegramChannel(Channel):
    type = "telegram"
    settings_asked = ("TELEGRAM_BOT_TOKEN",)
    capabilities = Capabilities(
        threads=False, edits=True, reactions=True, cards=True, typing=True, files=True, max_message_length=MAX_TEXT,
        stream_interval=1.0,  # Bot API: about one message (edits count) per second in a chat
        formatting="Telegram: use Markdown **bold**, _italic_, ~~strike~~, `code`, ``` blocks and [links](url); "
                   "no tables; headings show as bold. Reactions must be one of Telegram's standard emoji.",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._bot: Bot | None = None
        self._me: User | None = None
        self._token = ""
        self._offset: int | None = None
        self._offset_file: Path | None = None
        self._task: asyncio.Task[None] | None = None
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._long_card_ids: dict[str, str] = {}  # short token → card id too long for callback data
        self._partial: dict[str, list[str]] = {}  # message id → ids of pieces already sent (retry resumes)
        self._webhook_url = ""
        self._secret = ""

    # --- lifecycle -------------------------------------------------------------------------------------

    @classmethod
    async def identify(cls, settings: Settings) -> str:
        return await whoami.telegram(settings.extra)

    async def start(self) -> None:
        extra = self.host.settings.extra
        self._token = extra.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not self._token:
            raise ConfigError(
                "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather in Telegram (/newbot) and put its "
                "token in ~/.config/nanoclaw/credentials.env as TELEGRAM_BOT_TOKEN=…"
            )
        api = extra.get("TELEGRAM_API_BASE") or "https://api.telegram.org/bot"
        files = extra.get("TELEGRAM_FILE_BASE") or (api[:-3] + "file/bot" if api.endswith("/bot") else api)
        self._bot = Bot(
            self._token, base_url=api, base_file_url=files,
            request=HTTPXRequest(connection_pool_size=16, media_write_timeout=60.0),
            get_updates_request=_UpdatesRequest(connection_pool_size=1),
        )
        self._webhook_url = extra.get("TELEGRAM_WEBHOOK_URL", "").strip()
        # Where polling got to: after a restart, updates the last process took are not fetched again.
        bot = hashlib.sha256(self._token.split(":")[0].encode()).hexdigest()[:12]  # the bot's id, not its secret
        self._offset_file = self.host.settings.state_dir / f"telegram-offset-{bot}.json"
        saved = read_position(self._offset_file, self.type)
        if isinstance(saved, dict) and isinstance(saved.get("offset"), int):
            self._offset = saved["offset"]
        if self._webhook_url:
            self._secret = extra.get("TELEGRAM_WEBHOOK_SECRET", "").strip() or secrets.token_urlsafe(32)
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", self._secret):
                raise ConfigError("TELEGRAM_WEBHOOK_SECRET may only hold 1-256 letters, digits, _ and -")
            self.host.register_webhook(self.type, self._on_webhook)
        error: Exception | None = None
        try:
            await self._connect()
        except InvalidToken as exc:
            raise ConfigError(
                "Telegram rejected TELEGRAM_BOT_TOKEN: copy it again from @BotFather (/mybots → API Token)"
            ) from exc
        except TelegramError as exc:  # offline at boot: keep trying in the background, never drop the channel
            error = exc
        self._task = asyncio.create_task(self._run(error), name="telegram")

    async def _connect(self) -> None:
        """Learn who the bot is (for mentions) and choose how updates arrive."""
        assert self._bot is not None
        await self._bot.initialize()
        self._me = self._bot.bot
        if self._webhook_url:
            await self._bot.set_webhook(self._webhook_url, secret_token=self._secret, allowed_updates=UPDATES)
        else:
            await self._bot.delete_webhook()  # getUpdates is refused while a webhook is set
        log.info("telegram.connected", username=self._me.username, mode="webhook" if self._webhook_url else "polling")

    async def _run(self, error: Exception | None) -> None:
        backoff = self.backoff()
        while error is not None:
            await backoff.wait(_safe(error, self._token))
            try:
                await self._connect()
                error = None
            except Exception as exc:
                error = exc
        if backoff.reset():
            self.host.channel_ready(self.type)
        if not self._webhook_url:
            await self._poll(backoff)

    async def _poll(self, backoff: Backoff) -> None:
        assert self._bot is not None
        while True:
            try:
                updates = await self._bot.get_updates(
                    offset=self._offset, timeout=POLL_TIMEOUT, allowed_updates=UPDATES,
                )
            except Exception as exc:  # network, 5xx, 429, 409 (another poller), bad JSON: wait and retry
                await backoff.wait(_safe(exc, self._token))
                continue
            if backoff.reset():
                self.host.channel_ready(self.type)
            for update in updates:
                self._offset = update.update_id + 1
                await self._dispatch(update)
            if updates and self._offset_file is not None:
                write_position(self._offset_file, {"offset": self._offset}, self.type)

    async def stop(self) -> None:
        for task in [self._task, *self._typing.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._typing.clear()
        if self._bot is not None:
            await self._bot.shutdown()

    # --- inbound ---------------------------------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.Response:
        """Telegram's POST of one update; only with our secret token (set by setWebhook)."""
        given = request.headers.get(SECRET_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), self._secret.encode()):
            log.warning("telegram.webhook_rejected", reason="missing secret" if given is None else "wrong secret",
                        remote=request.remote)
            return web.Response(status=401 if given is None else 403, text="bad secret token")
        if request.method != "POST":
            return web.Response(status=405)
        try:
            raw = json.loads(await request.read())
        except ValueError:
            log.warning("telegram.malformed_update", reason="not JSON")
            return web.Response(status=400, text="not JSON")
        usable = _usable_update(raw)
        if usable:  # a bad update is answered 200 all the same: Telegram would resend it forever
            await self._dispatch(Update.de_json(usable, self._bot))
        return web.Response(text="ok")

    async def _dispatch(self, update: Update) -> None:
        try:
            if update.callback_query is not None:
                await self._on_press(update)
            elif update.message is not None:
                await self._on_message(update.message)
        except Exception as exc:  # one odd update must never stop the loop
            log.warning("telegram.update_failed", update_id=update.update_id, error=_safe(exc, self._token))

    async def _on_message(self, msg: Message) -> None:
        user = msg.from_user
        if user is None or (self._me is not None and user.id == self._me.id):
            return  # channel posts without a sender, or our own messages
        text = msg.text or msg.caption or ""
        files, notes = await self._download(msg)
        if notes:
            text = "\n".join([text, *notes]).strip()
        if not text and not files:
            return  # service messages (joins, pins), stickers
        # An anonymous group admin writes as the GroupAnonymousBot "bot" on behalf of the group: a person.
        from_bot = user.is_bot and not (msg.sender_chat is not None and msg.sender_chat.id == msg.chat.id)
        event = InboundEvent(
            channel_type=self.type, platform_id=str(msg.chat.id), message_id=str(msg.message_id), text=text,
            sender_id=str(user.id), sender_name=user.full_name, is_dm=msg.chat.type == ChatType.PRIVATE,
            chat_name=msg.chat.effective_name, mentions_assistant=self._mentions_me(msg), files=tuple(files),
            from_bot=from_bot, payload={"username": user.username} if user.username else {},
        )
        result = await self.host.receive(event)
        if not result.accepted and result.error and not from_bot:
            with contextlib.suppress(TelegramError):
                await msg.reply_text(result.error)

    def _mentions_me(self, msg: Message) -> bool:
        """An @username or text mention of the bot, a /command@bot, or a reply to one of its messages."""
        me = self._me
        if me is None:
            return False
        kinds = [MessageEntityType.MENTION, MessageEntityType.TEXT_MENTION, MessageEntityType.BOT_COMMAND]
        found = {**msg.parse_entities(kinds), **msg.parse_caption_entities(kinds)}
        handle = f"@{me.username}".lower()
        for entity, text in found.items():
            if entity.type == MessageEntityType.TEXT_MENTION and entity.user and entity.user.id == me.id:
                return True
            if entity.type == MessageEntityType.MENTION and text.lower() == handle:
                return True
            if entity.type == MessageEntityType.BOT_COMMAND and text.lower().endswith(handle):
                return True
        reply = msg.reply_to_message
        return bool(reply and reply.from_user and reply.from_user.id == me.id)

    async def _download(self, msg: Message) -> tuple[list[FileAttachment], list[str]]:
        """The message's document, photo (largest size), audio, voice or video; notes for what was skipped."""
        found = [(msg.document, None), (msg.photo[-1] if msg.photo else None, "image/jpeg"),
                 (msg.audio, None), (msg.voice, None), (msg.video, None)]
        files: list[FileAttachment] = []
        notes: list[str] = []
        for media, mime in found:
            if media is None:
                continue
            name = getattr(media, "file_name", None) or f"{type(media).__name__.lower()}-{media.file_unique_id}" + (
                ".jpg" if mime == "image/jpeg" else "")
            if media.file_size and media.file_size > MAX_DOWNLOAD:
                log.info("telegram.file_skipped", chat=msg.chat.id, size=media.file_size)
                notes.append(f"[file {name} ({media.file_size / 2**20:.0f} MB) not received: bots can only "
                             f"download files up to {MAX_DOWNLOAD // 2**20} MB]")
                continue
            try:
                data = await (await media.get_file()).download_as_bytearray()
            except TelegramError as exc:
                log.warning("telegram.file_failed", chat=msg.chat.id, error=_safe(exc, self._token))
                notes.append(f"[file {name} could not be downloaded]")
                continue
            files.append(FileAttachment(name, bytes(data), getattr(media, "mime_type", None) or mime))
        return files, notes

    async def _on_press(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        ref, _, _index = (query.data or "").rpartition("|")
        card_id = self._long_card_ids.get(ref[1:]) if ref.startswith("~") else ref
        message = query.message if isinstance(query.message, Message) else None
        markup = message.reply_markup if message is not None else None
        labels = [b.text for row in (markup.inline_keyboard if markup else ()) for b in row
                  if b.callback_data == query.data]
        if not card_id or not labels:
            await query.answer("This question is no longer open.")
            return
        error = await self.host.answer(card_id, labels[0], str(query.from_user.id))
        await query.answer(error[:200] if error else None)
        if error is None and message is not None:  # answered: the buttons go, so nobody presses twice
            with contextlib.suppress(TelegramError):
                await message.edit_reply_markup(None)

    # --- outbound --------------------------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        assert self._bot is not None, "send() before start()"
        text = message.text or ""
        markup = None
        if message.kind in ("card", "question"):
            if message.card_id and message.buttons:
                text = "\n\n".join(p for p in (f"**{message.title}**" if message.title else "", text) if p)
                markup = self._keyboard(message.card_id, message.buttons)
            else:
                text = render_text(message)
        pieces = html_pieces(text)
        chat = _chat_id(message.route.platform_id)
        sent = self._partial.setdefault(message.id, [])
        try:
            with _delivery_errors(self._token):
                if message.file is not None:
                    caption = pieces.pop() if pieces and len(pieces[-1]) <= MAX_CAPTION else None
                    await self._send_pieces(chat, pieces, sent, None)
                    doc = await self._bot.send_document(chat, message.file.data, filename=message.file.name,
                                                        caption=caption, parse_mode=ParseMode.HTML)
                    sent.append(str(doc.message_id))
                else:
                    await self._send_pieces(chat, pieces, sent, markup)
        except ChannelUnavailable:
            raise  # keep what went out: the host's retry resumes after it
        except BaseException:
            self._partial.pop(message.id, None)
            raise
        del self._partial[message.id]
        return SendResult(sent[-1] if sent else None)

    async def _send_pieces(self, chat: int | str, pieces: list[str], sent: list[str],
                           markup: InlineKeyboardMarkup | None) -> None:
        """Send the pieces not yet in `sent` (a retry resumes after the last one that went out)."""
        assert self._bot is not None
        for i in range(len(sent), len(pieces)):
            keyboard = markup if i == len(pieces) - 1 else None
            try:
                msg = await self._bot.send_message(chat, pieces[i], parse_mode=ParseMode.HTML, reply_markup=keyboard)
            except BadRequest as exc:
                if "can't parse entities" not in str(exc).lower():
                    raise
                msg = await self._bot.send_message(chat, to_plain(pieces[i]), reply_markup=keyboard)
            sent.append(str(msg.message_id))

    def _keyboard(self, card_id: str, buttons: tuple[str, ...]) -> InlineKeyboardMarkup:
        """One button per row; callback data "<card id>|<n>", or "~<token>|<n>" when that exceeds 64 bytes."""
        ref = card_id
        if len(f"{card_id}|{len(buttons)}".encode()) > MAX_CALLBACK_DATA:
            token = secrets.token_hex(6)
            self._long_card_ids[token] = card_id
            ref = f"~{token}"
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(label, callback_data=f"{ref}|{i}")] for i, label in enumerate(buttons)]
        )

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        assert self._bot is not None
        pieces = html_pieces(text) or ["…"]
        if len(pieces) > 1:
            log.info("telegram.edit_truncated", chat=route.platform_id, pieces=len(pieces))
        with _delivery_errors(self._token):
            try:
                await self._bot.edit_message_text(pieces[0], _chat_id(route.platform_id),
                                                  _message_id(platform_message_id), parse_mode=ParseMode.HTML)
            except BadRequest as exc:
                if "not modified" not in str(exc).lower():
                    raise

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        assert self._bot is not None
        with _delivery_errors(self._token):
            await self._bot.set_message_reaction(_chat_id(route.platform_id), _message_id(platform_message_id), emoji)

    async def set_typing(self, route: Route, on: bool) -> None:
        key = route.platform_id
        task = self._typing.pop(key, None)
        if task is not None:
            task.cancel()
        if on:
            assert self._bot is not None
            with _delivery_errors(self._token):
                await self._bot.send_chat_action(_chat_id(key), ChatAction.TYPING)
            self._typing[key] = asyncio.create_task(self._keep_typing(key))

    async def _keep_typing(self, platform_id: str) -> None:
        """Renew the typing indicator until the host turns it off (or TYPING_MAX passes)."""
        assert self._bot is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + TYPING_MAX
        while loop.time() < end:
            await asyncio.sleep(TYPING_REFRESH)
            with contextlib.suppress(TelegramError):
                await self._bot.send_chat_action(_chat_id(platform_id), ChatAction.TYPING)
        self._typing.pop(platform_id, None)
