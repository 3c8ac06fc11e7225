"""The Discord channel: a bot on Discord's gateway (discord.py), one chat per text channel or DM.

Owns the bot's connection (login, gateway, reconnect with backoff), turning Discord
messages and button presses into `InboundEvent`s / `ChannelHost.answer` calls, and
sending, editing, reacting and typing through Discord's REST API. Threads are
channels on Discord: an event in a thread carries the parent channel as its chat
and the thread as `thread_id`; replies to a thread go to the thread channel.

Credential requests (a card whose payload has "credential") get an "Enter credential"
button that opens a Discord modal; its submission goes to `ChannelHost.submit_credential`
and is answered with an ephemeral status. The value is never logged, stored or echoed.

Catch-up: the gateway never replays what was written while the bot was offline (a RESUME
only replays a short outage). So the newest message id passed to the host is kept per channel
in `state_dir/discord-seen-<app>.json`; after READY of a fresh session (not RESUMED) each of
those channels is asked for what came after it, oldest first, through the live handler.

Settings: DISCORD_BOT_TOKEN (required), DISCORD_API_BASE (default Discord's own;
tests point it at a fake server).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route as DiscordRoute

from nanoclaw.channels import whoami
from nanoclaw.channels import credentials
from nanoclaw.channels.discord_components import (
    CREDENTIAL_PREFIX, ENTER_LABEL, REFUSE_PREFIX, card_view, credential_modal, credential_request,
    hide_modal_values, parse_custom_id, take_modal_value,
)
from nanoclaw.channels.position import read_position, write_position
from nanoclaw.channels.base import (
    Capabilities,
    Channel,
    FileAttachment,
    InboundEvent,
    OutgoingMessage,
    SendResult,
)
from nanoclaw.channels.text import split_message
from nanoclaw.config import Settings
from nanoclaw.errors import ChannelUnavailable, ConfigError, DestinationRefused
from nanoclaw.logs import get_logger
from nanoclaw.protocol.messages import Route

log = get_logger(__name__)

DEFAULT_API_BASE = "https://discord.com/api/v10"
MAX_LENGTH = 2000  # Discord's limit for a message's content
MAX_FILE_BYTES = 50 * 2**20  # larger attachments are not downloaded
START_WAIT = 15.0  # how long start() waits for the first connection before going on in the background
TYPING_REFRESH = 8.0  # Discord shows "typing…" for about 10 s per trigger
TYPING_MAX = 600.0  # never type forever if the host forgets to switch it off
SEEN_SAVE_DELAY = 5.0  # the seen-message file is written at most this often (and on stop)
CATCH_UP_MAX = 200  # messages fetched per channel after a fresh session; older missed ones are skipped
_CHAT_TYPES = (discord.MessageType.default, discord.MessageType.reply)
TOKEN_REFUSED = ("Discord refused DISCORD_BOT_TOKEN: copy the bot's current token from "
                 "https://discord.com/developers/applications (your application → Bot → Reset Token)")
INTENT_REFUSED = ("Discord refused the Message Content intent: switch it on in the developer portal "
                  "(your application → Bot → Privileged Gateway Intents → Message Content Intent)")


class DiscordChannel(Channel):
    type = "discord"
    settings_asked = ("DISCORD_BOT_TOKEN",)
    capabilities = Capabilities(
        threads=True, edits=True, reactions=True, cards=True, modals=True, typing=True, files=True,
        max_message_length=MAX_LENGTH,
        stream_interval=1.0,  # 5 edits per 5 s in a channel
        formatting="Discord Markdown: **bold** *italic* __underline__ ~~strike~~ `code` ```blocks``` "
                   "> quotes, # headings, - lists, [text](url) links; no tables",
    )

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._client: _Client | None = None  # logged in (REST usable); None between connections
        self._runner: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._typing: dict[int, asyncio.Task[None]] = {}
        self._saved_endpoints: tuple[str, yarl.URL] | None = None
        self._starting = False  # start() still waits: a settings error goes to it, not to the log
        # catch-up: channel id → newest message id passed to the host, kept in `_seen_file`
        self._seen_file: Path | None = None  # known once logged in (named after the application)
        self._seen: dict[int, int] = {}
        self._seen_saved: dict[int, int] = {}
        self._save_task: asyncio.Task[None] | None = None
        self._catch_up_from: dict[int, int] = {}  # `_seen` as it was at the last READY
        self._live_since_ready: set[int] = set()  # message ids already passed since then, while catching up
        self._catching_up = False

    # --- connection ---------------------------------------------------------------------------

    @classmethod
    async def identify(cls, settings: Settings) -> str:
        return await whoami.discord(settings.extra)

    async def start(self) -> None:
        extra = self.host.settings.extra
        token = (extra.get("DISCORD_BOT_TOKEN") or "").strip()
        if not token:
            raise ConfigError(
                "DISCORD_BOT_TOKEN is not set: create an application at https://discord.com/developers/applications, "
                "add a bot, copy its token (Bot → Reset Token) into ~/.config/nanoclaw/credentials.env"
            )
        # discord.py reads its REST base and gateway URL from class attributes only (every request
        # builds a fresh `Route` from `Route.BASE`; every identify without a known gateway falls back
        # to `DEFAULT_GATEWAY`), so they are set here for the process and restored by stop().
        # One host runs one Discord channel, so nothing else shares them.
        self._saved_endpoints = (DiscordRoute.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        DiscordRoute.BASE = (extra.get("DISCORD_API_BASE") or DEFAULT_API_BASE).rstrip("/")
        self._starting = True
        self._runner = asyncio.create_task(self._run(token))
        connected = asyncio.create_task(self._connected.wait())
        try:
            await asyncio.wait({self._runner, connected}, timeout=START_WAIT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
            self._starting = False
        if self._runner.done() and self._runner.exception() is not None:
            await self.stop()
            self._runner.result()  # a refused token or missing intent: the owner must fix the settings
        elif not self._connected.is_set():
            log.warning("channel.start_pending", channel=self.type, why="no gateway connection yet; retrying")

    async def stop(self) -> None:
        for task in self._typing.values():
            task.cancel()
        self._typing.clear()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._save_task is not None:
            self._save_task.cancel()
            self._save_task = None
        self._save_seen()
        if self._saved_endpoints is not None:
            DiscordRoute.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved_endpoints
            self._saved_endpoints = None

    async def _run(self, token: str) -> None:
        """Log in and stay on the gateway; after a failure start over with exponential backoff.

        discord.py resumes a dropped gateway session by itself; everything it gives up on
        (connection refused, bad frames, timeouts) ends `connect` and lands here.
        """
        backoff = self.backoff()
        while True:
            client = _Client(self)
            error = "connection closed"
            try:
                await client.login(token)
                self._client = client
                if self._seen_file is None and client.application_id is not None:
                    self._load_seen(client.application_id)
                _, gateway, _ = await client.http.get_bot_gateway()
                DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
                await client.connect(reconnect=False)
            except asyncio.CancelledError:
                await client.close()
                raise
            except Exception as exc:
                reason = _settings_error(exc)
                if reason is not None:
                    await client.close()
                    if self._starting:
                        raise ConfigError(reason) from exc
                    log.error("channel.stopped", channel=self.type, error=reason)
                    return
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self._connected.clear()
                if self._client is client:
                    self._client = None
            await client.close()
            if client.was_connected:
                backoff.reset()
            await backoff.wait(error)

    def _on_connected(self, resumed: bool) -> None:
        self._connected.set()
        if resumed:
            log.info("channel.reconnect", channel=self.type, how="resume")  # the gateway replays the gap
        else:
            log.info("channel.connected", channel=self.type)
            self._catch_up_from = dict(self._seen)  # a fresh session: the gap is fetched once guilds are in
            self._live_since_ready.clear()
            self._catching_up = bool(self._catch_up_from)
        self.host.channel_ready(self.type)

    # --- catch-up after a fresh session -------------------------------------------------------

    def _load_seen(self, application_id: int) -> None:
        self._seen_file = self.host.settings.state_dir / f"discord-seen-{_digest(str(application_id))}.json"
        raw = read_position(self._seen_file, self.type)
        try:
            seen = {int(k): int(v) for k, v in raw["channels"].items()} if raw is not None else {}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("channel.position_unreadable", channel=self.type, path=str(self._seen_file),
                        error=type(exc).__name__)
            return
        self._seen.update(seen)
        self._seen_saved = dict(self._seen)

    def _note_seen(self, channel_id: int, message_id: int) -> None:
        if message_id <= self._seen.get(channel_id, 0):
            return
        self._seen[channel_id] = message_id
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.create_task(self._save_later())

    def _forget_channel(self, channel_id: int) -> None:
        self._seen.pop(channel_id, None)
        self._save_seen()

    async def _save_later(self) -> None:
        await asyncio.sleep(SEEN_SAVE_DELAY)
        self._save_seen()

    def _save_seen(self) -> None:
        if self._seen_file is None or self._seen == self._seen_saved:
            return
        snapshot = dict(self._seen)
        if write_position(self._seen_file, {"channels": {str(k): str(v) for k, v in snapshot.items()}}, self.type):
            self._seen_saved = snapshot

    async def _catch_up(self, client: _Client) -> None:
        """Pass what was written in known channels while no session was up (after READY, not RESUMED)."""
        start, self._catch_up_from = self._catch_up_from, {}
        try:
            await self._catch_up_channels(client, start)
        finally:
            self._catching_up = False
            self._live_since_ready.clear()

    async def _catch_up_channels(self, client: _Client, start: dict[int, int]) -> None:
        for channel_id, after in start.items():
            try:
                channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
                if not isinstance(channel, discord.abc.Messageable):  # not a channel with messages any more
                    log.info("discord.catch_up_channel_gone", channel_id=channel_id, status=None)
                    self._forget_channel(channel_id)
                    continue
                count = 0
                async for message in channel.history(after=discord.Object(after), oldest_first=True,
                                                     limit=CATCH_UP_MAX):
                    count += 1
                    if message.id not in self._live_since_ready:
                        await client.on_message(message)
            except (discord.NotFound, discord.Forbidden) as exc:
                log.info("discord.catch_up_channel_gone", channel_id=channel_id, status=getattr(exc, "status", None))
                self._forget_channel(channel_id)
                continue
            except (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                log.warning("discord.catch_up_failed", channel_id=channel_id, error=type(exc).__name__)
                continue
            if count:
                log.info("discord.caught_up", channel_id=channel_id, messages=count)
            if count >= CATCH_UP_MAX:
                log.warning("discord.catch_up_capped", channel_id=channel_id, limit=CATCH_UP_MAX)

    # --- inbound ------------------------------------------------------------------------------

    async def _on_message(self, client: _Client, message: discord.Message) -> None:
        me = client.user
        if me is None or message.author.id == me.id or message.type not in _CHAT_TYPES:
            return  # our own messages and system notices (joins, pins) are not conversation
        channel = message.channel
        if isinstance(channel, discord.Thread):
            platform_id, thread_id = str(channel.parent_id), str(channel.id)
        else:
            platform_id, thread_id = str(channel.id), None
        is_dm = message.guild is None
        text = re.sub(rf"<@!?{me.id}>", f"@{self.host.settings.assistant_name}", message.content)
        files, notes = await _download(message.attachments)
        event = InboundEvent(
            channel_type=self.type, platform_id=platform_id, message_id=str(message.id),
            text="\n".join([text, *notes]).strip(), sender_id=str(message.author.id),
            sender_name=message.author.display_name, thread_id=thread_id, is_dm=is_dm,
            chat_name=_chat_name(message), mentions_assistant=any(u.id == me.id for u in message.mentions),
            files=files, from_bot=message.author.bot,
        )
        log.debug("discord.message", chat=platform_id, thread=thread_id, text=event.text)
        await self.host.receive(event)
        if self._catching_up:
            self._live_since_ready.add(message.id)
        self._note_seen(channel.id, message.id)

    async def _on_interaction(self, interaction: discord.Interaction) -> None:
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        if custom_id.partition("|")[0] in (CREDENTIAL_PREFIX, REFUSE_PREFIX):
            await self._on_credential(interaction, custom_id)
            return
        if interaction.type is not discord.InteractionType.component:
            return
        parsed = parse_custom_id(custom_id)
        if parsed is None:
            log.warning("discord.unknown_interaction", id=interaction.id)
            return  # not our button: never acknowledged, so never mistaken for an answer
        card_id, label = parsed
        error = await self.host.answer(card_id, label, str(interaction.user.id))
        try:
            if error:
                await interaction.response.send_message(error, ephemeral=True)
            else:
                await interaction.response.defer()  # a deferred update: the card stays as it is
        except (discord.HTTPException, discord.InteractionResponded) as exc:
            log.warning("discord.interaction_ack_failed", id=interaction.id, error=str(exc))

    async def _on_credential(self, interaction: discord.Interaction, custom_id: str) -> None:
        """A credential card's button (open the modal, or refuse) or the modal's submission.

        Stateless like the question buttons: the request's one-time token rides in the custom_ids
        (the host decides whether it is still live), so nothing is kept here between the steps.
        """
        kind, _, rest = custom_id.partition("|")
        token, _, name = rest.partition("|")
        if not token:
            log.warning("discord.unknown_interaction", id=interaction.id)
            return
        if interaction.type is discord.InteractionType.component and kind == CREDENTIAL_PREFIX:
            try:
                await interaction.response.send_modal(credential_modal(token, name))
            except (discord.HTTPException, discord.InteractionResponded) as exc:
                log.warning("discord.interaction_ack_failed", id=interaction.id, error=str(exc))
            return
        if interaction.type is discord.InteractionType.component and kind == REFUSE_PREFIX:
            status = credentials.submit(self.host, self.type, token, None, str(interaction.user.id))
        elif interaction.type is discord.InteractionType.modal_submit and kind == CREDENTIAL_PREFIX:
            value = take_modal_value(interaction.data or {})
            if value is None:  # not what our modal sends: the request stays open
                log.warning("discord.credential_without_value", id=interaction.id)
                await self._tell(interaction, "Nothing was entered, so nothing was saved.")
                return
            status = credentials.submit(self.host, self.type, token, value, str(interaction.user.id))
            del value  # the vault has it now; nothing here keeps it
        else:
            log.warning("discord.unknown_interaction", id=interaction.id)
            return
        log.info("discord.credential", id=interaction.id, status=status.partition(":")[0])
        await self._tell(interaction, credentials.reply(status))
        if status.startswith("refused:"):
            return  # not this person's to answer: the request and its card stay open
        if status != "expired" or (interaction.message is not None and interaction.message.components):
            # an answered request's card already shows who answered: a late second answer leaves it
            await self._finish_card(interaction, token, status)


    async def _tell(self, interaction: discord.Interaction, text: str) -> None:
        """Answer an interaction with a message only the person who acted sees."""
        try:
            await interaction.response.send_message(text, ephemeral=True)
        except (discord.HTTPException, discord.InteractionResponded) as exc:
            log.warning("discord.interaction_ack_failed", id=interaction.id, error=str(exc))

    async def _finish_card(self, interaction: discord.Interaction, token: str, status: str) -> None:
        """Edit the credential card: its buttons go, its dead one-time link gives way to the outcome."""
        card = interaction.message
        if card is None or self._client is None or interaction.channel_id is None:
            return
        who = discord.utils.escape_mentions(discord.utils.escape_markdown(interaction.user.display_name))
        content = _finished_card(card.content, token, f"{credentials.outcome(status)} ({who})")
        try:
            target = self._client.get_partial_messageable(interaction.channel_id).get_partial_message(card.id)
            async with _calling():
                await target.edit(content=content, view=None)
        except (ChannelUnavailable, DestinationRefused) as exc:
            log.warning("discord.card_edit_failed", message_id=card.id, error=str(exc))

    # --- outbound -----------------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        target = self._messageable(message.route)
        text = message.text or ""
        if message.kind in ("card", "question") and message.title:
            text = f"**{message.title}**\n{text}".strip()
        credential = credential_request(message)
        if credential is not None:
            text = f"{text}\nOr press **{ENTER_LABEL}** to type it here: it goes to the vault, not into the chat."
        pieces = split_message(text, MAX_LENGTH) if text else [""]
        view = card_view(message, credential) if message.buttons or credential else None
        sent: discord.Message | None = None
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            options: dict[str, Any] = {"nonce": _nonce(message.id, index)}
            if last and view is not None:
                options["view"] = view
            if last and message.file is not None:
                options["file"] = discord.File(io.BytesIO(message.file.data), filename=message.file.name)
            async with _calling():
                sent = await target.send(piece or None, **options)
        if view is not None:
            view.stop()  # presses are answered from the custom_id (on_interaction): no view to keep in memory
        assert sent is not None
        return SendResult(str(sent.id))

    async def edit(self, route: Route, platform_message_id: str, text: str) -> None:
        if len(text) > MAX_LENGTH:
            text = text[: MAX_LENGTH - 1] + "…"  # an edit cannot add messages
        message = self._messageable(route).get_partial_message(_snowflake(platform_message_id))
        async with _calling():
            await message.edit(content=text)

    async def close_card(self, route: Route, platform_message_id: str, card_id: str, text: str, outcome: str) -> None:
        content = f"{text}\n\n{outcome}"
        if len(content) > MAX_LENGTH:
            content = content[-MAX_LENGTH:]  # the outcome matters most
        message = self._messageable(route).get_partial_message(_snowflake(platform_message_id))
        async with _calling():
            await message.edit(content=content, view=None)  # view=None: the buttons go

    async def react(self, route: Route, platform_message_id: str, emoji: str) -> None:
        message = self._messageable(route).get_partial_message(_snowflake(platform_message_id))
        async with _calling():
            await message.add_reaction(emoji)

    async def set_typing(self, route: Route, on: bool) -> None:
        channel_id = _snowflake(route.thread_id or route.platform_id)
        old = self._typing.pop(channel_id, None)
        if old is not None:
            old.cancel()
        if on and self._client is not None:  # while disconnected there is nobody to show it to
            self._typing[channel_id] = asyncio.create_task(self._keep_typing(self._messageable(route)))

    async def _keep_typing(self, target: discord.PartialMessageable) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + TYPING_MAX
        try:
            while loop.time() < until:
                await target.typing()
                await asyncio.sleep(TYPING_REFRESH)
        except (discord.HTTPException, OSError, asyncio.TimeoutError) as exc:
            log.info("discord.typing_failed", channel_id=target.id, error=type(exc).__name__)
        finally:
            if self._typing.get(target.id) is asyncio.current_task():
                del self._typing[target.id]

    def _messageable(self, route: Route) -> discord.PartialMessageable:
        channel_id = _snowflake(route.thread_id or route.platform_id)
        if self._client is None:
            raise ChannelUnavailable("Discord is not connected")
        return self._client.get_partial_messageable(channel_id)


class _Client(discord.Client):
    """One login: a discord.py client whose events go to the channel."""

    def __init__(self, channel: DiscordChannel) -> None:
        # The bot never joins voice: silence discord.py's warnings about missing voice libraries.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: the owner enables it in the developer portal
        super().__init__(
            intents=intents,
            # The agent's text must never ping @everyone or roles; people it names may be pinged.
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=True),
            max_ratelimit_timeout=30.0,  # a longer rate limit is a ChannelUnavailable: the host retries later
            chunk_guilds_at_startup=False,
        )
        self.nanoclaw = channel
        self.was_connected = False
        # discord.py lets an exception of an event parser end the whole gateway loop; guard each
        # parser so one malformed dispatch is logged and skipped instead.
        parsers = self._connection.parsers
        for name, parser in list(parsers.items()):
            parsers[name] = _guarded(name, parser)
        hide_modal_values()

    async def on_connect(self) -> None:
        self.was_connected = True
        self.nanoclaw._on_connected(resumed=False)

    async def on_resumed(self) -> None:
        self.nanoclaw._on_connected(resumed=True)

    async def close(self) -> None:
        ready = getattr(self._connection, "_ready_task", None)
        if ready is not None:
            ready.cancel()  # discord.py would still dispatch "ready" (a catch-up) on this closed login
        await super().close()

    async def on_ready(self) -> None:  # after READY (not RESUMED), once its guilds have arrived
        if self.is_closed() or self.nanoclaw._client is not self:
            return
        try:
            await self.nanoclaw._catch_up(self)
        except Exception as exc:
            log.warning("discord.catch_up_failed", error=f"{type(exc).__name__}: {exc}")

    async def on_message(self, message: discord.Message) -> None:
        try:
            await self.nanoclaw._on_message(self, message)
        except Exception as exc:  # one bad message must not go unnoticed nor stop the others
            log.warning("discord.message_failed", message_id=message.id, error=f"{type(exc).__name__}: {exc}")

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        try:
            await self.nanoclaw._on_interaction(interaction)
        except Exception as exc:
            log.warning("discord.interaction_failed", id=interaction.id, error=f"{type(exc).__name__}: {exc}")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def _snowflake(value: str) -> int:
    if not value.isdigit():
        raise DestinationRefused(f"not a Discord id: {value!r}")
    return int(value)


def _settings_error(exc: Exception) -> str | None:
    """What the owner must fix when Discord refuses the bot for good (gateway close codes 4004, 4013, 4014)."""
    code = exc.code if isinstance(exc, discord.ConnectionClosed) else None
    if isinstance(exc, discord.LoginFailure) or code == 4004:
        return TOKEN_REFUSED
    if isinstance(exc, discord.PrivilegedIntentsRequired) or code in (4013, 4014):
        return INTENT_REFUSED
    return None


def _guarded(name: str, parser: Any) -> Any:
    def parse(data: Any) -> None:
        try:
            parser(data)
        except Exception as exc:
            log.warning("discord.malformed_event", kind=name, error=f"{type(exc).__name__}: {exc}")

    return parse


@asynccontextmanager
async def _calling() -> AsyncIterator[None]:
    """Maps a failed Discord call to the host's errors: retry later, or refused for good."""
    try:
        yield
    except discord.HTTPException as exc:
        if exc.status >= 500 or exc.status == 429:
            raise ChannelUnavailable(f"Discord answered {exc.status}") from exc
        raise DestinationRefused(f"Discord refused: {exc.status} {exc.text}") from exc
    except (discord.RateLimited, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        raise ChannelUnavailable(f"Discord unreachable: {type(exc).__name__}") from exc


async def _download(attachments: list[discord.Attachment]) -> tuple[tuple[FileAttachment, ...], list[str]]:
    files: list[FileAttachment] = []
    notes: list[str] = []
    for attachment in attachments:
        if attachment.size > MAX_FILE_BYTES:
            notes.append(f"[file {attachment.filename} not downloaded: larger than 50 MB]")
            continue
        try:
            data = await attachment.read()
        except (discord.HTTPException, OSError, asyncio.TimeoutError) as exc:
            log.warning("discord.download_failed", attachment=attachment.id, error=type(exc).__name__)
            notes.append(f"[file {attachment.filename} could not be downloaded]")
            continue
        files.append(FileAttachment(attachment.filename, data, attachment.content_type))
    return tuple(files), notes


def _chat_name(message: discord.Message) -> str | None:
    if message.guild is None:
        return f"DM with {message.author.display_name}"
    channel = message.channel
    if isinstance(channel, discord.Thread):
        channel = channel.parent or channel
    name = getattr(channel, "name", None)
    return f"{message.guild.name} #{name}" if name else message.guild.name


def _finished_card(content: str, token: str, outcome: str) -> str:
    """The card's text up to its one-time link (used now), then the outcome."""
    lines = content.splitlines()
    cut = next((i for i, line in enumerate(lines) if token in line), len(lines))
    text = "\n".join([*lines[:cut], outcome])
    return text if len(text) <= MAX_LENGTH else text[: MAX_LENGTH - len(outcome) - 2] + "…\n" + outcome


def _nonce(message_id: str, piece: int) -> str:
    """Discord drops a second message with the same nonce (enforce_nonce) for a few minutes:
    a retried send after a crash or timeout does not post twice."""
    return hashlib.sha256(f"{message_id}:{piece}".encode()).hexdigest()[:25]
